package interop

import (
	"bytes"
	"io"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	qraft "github.com/quorumkit/raft"
)

// Allocations of one node, leader or follower, of either library in the
// same run, with the rest of the cluster replaced by a fake peer that
// allocates one answer per request and nothing else. The side-by-side
// benchmark (cmd/sidebyside) counts the allocations of the whole process,
// three nodes and the clients together; these split them by role:
//
//   - BenchmarkLeaderApplyAllocs: a leader with two fake followers that
//     acknowledge every AppendEntries at once; allocations per committed
//     Apply of a 256-byte command, from 1 or 16 clients, minus the fake
//     followers' answers.
//   - BenchmarkFollowerAppendAllocs: a follower fed by a fake leader with
//     AppendEntries of 1 or 64 new 256-byte entries, each committing
//     everything sent so far, so the follower stores and applies every
//     entry; allocations per entry, minus what the fake leader made (the
//     entries themselves and its request).
//
// Both run on each library's InmemTransport, which hands over pointers
// (its hand-over, the library's own code, is counted with the node):
// decoding a request off the network is not counted here, and the wire
// benchmarks (BenchmarkAppendEntriesServer in wire_bench_test.go) measure
// it for both. Each library runs with DefaultConfig, its InmemStore and
// its InmemSnapshotStore.
//
//	cd interop && go test -run '^$' -bench 'Allocs$' -benchtime 20000x -count 3 .

// allocCommand is the 256-byte command every Apply and entry carries.
var allocCommand = bytes.Repeat([]byte{'a'}, 256)

// allocCounter reads the process's allocation counters.
type allocCounter struct{ mallocs, bytes uint64 }

func readAllocs() allocCounter {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return allocCounter{m.Mallocs, m.TotalAlloc}
}

// reportAllocsPer reports the allocations and bytes between from and to,
// less the driver's own (fakeAllocs, fakeBytes), per unit ("apply" or
// "entry").
func reportAllocsPer(b *testing.B, from, to allocCounter, fakeAllocs, fakeBytes float64, units int, unit string) {
	allocs := float64(to.mallocs-from.mallocs) - fakeAllocs
	byts := float64(to.bytes-from.bytes) - fakeBytes
	b.ReportMetric(allocs/float64(units), "allocs/"+unit)
	b.ReportMetric(byts/float64(units), "B/"+unit)
}

// sizeOf measures what one call of alloc allocates, in allocations and
// bytes (its size class), so the fake peers' own allocations can be taken
// out of a count.
func sizeOf(alloc func() any) (allocs, byts float64) {
	const n = 1000
	keep := alloc()
	before := readAllocs()
	for range n {
		keep = alloc()
	}
	after := readAllocs()
	runtime.KeepAlive(keep)
	return float64(after.mallocs-before.mallocs) / n, float64(after.bytes-before.bytes) / n
}

// allocTimeouts are the timeouts both roles run with: DefaultConfig's, with
// short timeouts for the leader (it elects itself quickly against the
// fake followers) and very long ones for the follower (it never campaigns
// during a run).
func allocTimeouts(leader bool) (heartbeat, election, lease time.Duration) {
	if leader {
		return 50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond
	}
	return time.Hour, time.Hour, 500 * time.Millisecond
}

// awaitLeadership waits for a node's LeaderCh to say it leads.
func awaitLeadership(b *testing.B, ch <-chan bool) {
	b.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case leads := <-ch:
			if leads {
				return
			}
		case <-deadline:
			b.Fatal("the node did not become leader within 30 s")
		}
	}
}

// runClients makes n Apply calls from clients goroutines, each waiting for
// its answer before the next.
func runClients(b *testing.B, clients, n int, apply func() error) {
	var wg sync.WaitGroup
	var failed atomic.Value
	for c := range clients {
		count := n / clients
		if c < n%clients {
			count++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range count {
				if err := apply(); err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
}

// measureLeader warms a leader up with 1,000 Apply calls, then reports
// the allocations of b.N calls from clients goroutines per Apply, less the
// fake followers' answers (one answerOf each, counted by answers).
func measureLeader(b *testing.B, clients int, apply func() error, answers *atomic.Int64, answerOf func() any) {
	runClients(b, clients, 1000, apply) // the log, the maps, the pools
	answerAllocs, answerBytes := sizeOf(answerOf)
	b.ResetTimer()
	a0, from := answers.Load(), readAllocs()
	runClients(b, clients, b.N, apply)
	to, a1 := readAllocs(), answers.Load()
	b.StopTimer()
	n := float64(a1 - a0)
	reportAllocsPer(b, from, to, n*answerAllocs, n*answerBytes, b.N, "apply")
}

// measureFollower warms a follower up with 1,000 entries, then reports
// the allocations of b.N AppendEntries of batch entries per entry, less
// the fake leader's own per request: what request and answerOf make.
func measureFollower(b *testing.B, batch int, send func(), request, answerOf func() any) {
	for range 1000 / batch {
		send()
	}
	reqAllocs, reqBytes := sizeOf(request)
	respAllocs, respBytes := sizeOf(answerOf)
	b.ResetTimer()
	from := readAllocs()
	for range b.N {
		send()
	}
	to := readAllocs()
	b.StopTimer()
	n := float64(b.N)
	reportAllocsPer(b, from, to, n*(reqAllocs+respAllocs), n*(reqBytes+respBytes), b.N*batch, "entry")
}

// BenchmarkLeaderApplyAllocs: allocations per committed Apply on a leader.
func BenchmarkLeaderApplyAllocs(b *testing.B) {
	for _, clients := range []int{1, 16} {
		b.Run("library=reference/clients="+strconv.Itoa(clients), func(b *testing.B) { refLeaderAllocs(b, clients) })
		b.Run("library=ours/clients="+strconv.Itoa(clients), func(b *testing.B) { ourLeaderAllocs(b, clients) })
	}
}

// BenchmarkFollowerAppendAllocs: allocations per entry on a follower.
func BenchmarkFollowerAppendAllocs(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run("library=reference/batch="+strconv.Itoa(batch), func(b *testing.B) { refFollowerAllocs(b, batch) })
		b.Run("library=ours/batch="+strconv.Itoa(batch), func(b *testing.B) { ourFollowerAllocs(b, batch) })
	}
}

// --- Ours. ---

type ourNopFSM struct{}

func (ourNopFSM) Apply(*qraft.Log) any                       { return nil }
func (ourNopFSM) Snapshot() (qraft.FSMSnapshot, error)       { return ourNopSnapshot{}, nil }
func (ourNopFSM) Restore(rc io.ReadCloser) error             { return rc.Close() }
func (ourNopSnapshot) Persist(sink qraft.SnapshotSink) error { return sink.Close() }
func (ourNopSnapshot) Release()                              {}

type ourNopSnapshot struct{}

// ourFakeFollower acknowledges every request on t as a follower whose log
// always matches would, and counts its answers.
func ourFakeFollower(t *qraft.InmemTransport, answers *atomic.Int64, stop <-chan struct{}) {
	for {
		select {
		case rpc := <-t.Consumer():
			answers.Add(1)
			switch req := rpc.Command.(type) {
			case *qraft.AppendEntriesRequest:
				rpc.Respond(&qraft.AppendEntriesResponse{Term: req.Term, LastLog: req.PrevLogEntry + uint64(len(req.Entries)), Success: true}, nil)
			case *qraft.RequestVoteRequest:
				rpc.Respond(&qraft.RequestVoteResponse{Term: req.Term, Granted: true}, nil)
			case *qraft.RequestPreVoteRequest:
				rpc.Respond(&qraft.RequestPreVoteResponse{Term: req.Term, Granted: true}, nil)
			default:
				rpc.Respond(nil, io.ErrUnexpectedEOF)
			}
		case <-stop:
			return
		}
	}
}

func ourConfig(id string, leader bool) *qraft.Config {
	conf := qraft.DefaultConfig()
	conf.LocalID = qraft.ServerID(id)
	conf.Logger = hclog.NewNullLogger()
	conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = allocTimeouts(leader)
	return conf
}

func ourLeaderAllocs(b *testing.B, clients int) {
	addr, trans := qraft.NewInmemTransport("leader")
	servers := []qraft.Server{{ID: "leader", Address: addr}}
	var answers atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	for _, id := range []string{"f1", "f2"} {
		a, t := qraft.NewInmemTransport(qraft.ServerAddress(id))
		trans.Connect(a, t)
		t.Connect(addr, trans)
		go ourFakeFollower(t, &answers, stop)
		servers = append(servers, qraft.Server{ID: qraft.ServerID(id), Address: a})
	}
	conf := ourConfig("leader", true)
	store, snaps := qraft.NewInmemStore(), qraft.NewInmemSnapshotStore()
	if err := qraft.BootstrapCluster(conf, store, store, snaps, trans, qraft.Configuration{Servers: servers}); err != nil {
		b.Fatal(err)
	}
	r, err := qraft.NewRaft(conf, ourNopFSM{}, store, store, snaps, trans)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = r.Shutdown().Error() }()
	awaitLeadership(b, r.LeaderCh())
	apply := func() error { return r.Apply(allocCommand, 0).Error() }
	measureLeader(b, clients, apply, &answers, func() any { return &qraft.AppendEntriesResponse{Success: true} })
}

func ourFollowerAllocs(b *testing.B, batch int) {
	addr, trans := qraft.NewInmemTransport("node")
	leaderAddr, leaderTrans := qraft.NewInmemTransport("leader")
	trans.Connect(leaderAddr, leaderTrans)
	leaderTrans.Connect(addr, trans)
	servers := []qraft.Server{{ID: "node", Address: addr}, {ID: "leader", Address: leaderAddr}, {ID: "third", Address: "third"}}
	conf := ourConfig("node", false)
	store, snaps := qraft.NewInmemStore(), qraft.NewInmemSnapshotStore()
	if err := qraft.BootstrapCluster(conf, store, store, snaps, trans, qraft.Configuration{Servers: servers}); err != nil {
		b.Fatal(err)
	}
	r, err := qraft.NewRaft(conf, ourNopFSM{}, store, store, snaps, trans)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = r.Shutdown().Error() }()
	last := uint64(1) // the bootstrap configuration, term 1
	request := func() *qraft.AppendEntriesRequest {
		req := &qraft.AppendEntriesRequest{
			RPCHeader: qraft.RPCHeader{ProtocolVersion: 3, ID: []byte("leader"), Addr: []byte(leaderAddr)},
			Term:      2, PrevLogEntry: last, PrevLogTerm: 1, LeaderCommitIndex: last + uint64(batch),
			Entries: make([]*qraft.Log, batch),
		}
		if last > 1 {
			req.PrevLogTerm = 2
		}
		for i := range req.Entries {
			req.Entries[i] = &qraft.Log{Index: last + 1 + uint64(i), Term: 2, Type: qraft.LogCommand, Data: allocCommand}
		}
		return req
	}
	send := func() {
		req := request()
		var resp qraft.AppendEntriesResponse
		if err := leaderTrans.AppendEntries("node", addr, req, &resp); err != nil {
			b.Fatal(err)
		}
		if !resp.Success {
			b.Fatalf("the follower refused entries %d to %d", last+1, last+uint64(batch))
		}
		last += uint64(batch)
	}
	// The fake leader's own per request: the request and its entries, and
	// the answer's struct that send declares.
	measureFollower(b, batch, send, func() any { return request() }, func() any { return &qraft.AppendEntriesResponse{} })
}

// --- The reference. ---

type refNopFSM struct{}

func (refNopFSM) Apply(*hraft.Log) any                       { return nil }
func (refNopFSM) Snapshot() (hraft.FSMSnapshot, error)       { return refNopSnapshot{}, nil }
func (refNopFSM) Restore(rc io.ReadCloser) error             { return rc.Close() }
func (refNopSnapshot) Persist(sink hraft.SnapshotSink) error { return sink.Close() }
func (refNopSnapshot) Release()                              {}

type refNopSnapshot struct{}

// refFakeFollower is ourFakeFollower for the reference's types.
func refFakeFollower(t *hraft.InmemTransport, answers *atomic.Int64, stop <-chan struct{}) {
	for {
		select {
		case rpc := <-t.Consumer():
			answers.Add(1)
			switch req := rpc.Command.(type) {
			case *hraft.AppendEntriesRequest:
				rpc.Respond(&hraft.AppendEntriesResponse{Term: req.Term, LastLog: req.PrevLogEntry + uint64(len(req.Entries)), Success: true}, nil)
			case *hraft.RequestVoteRequest:
				rpc.Respond(&hraft.RequestVoteResponse{Term: req.Term, Granted: true}, nil)
			case *hraft.RequestPreVoteRequest:
				rpc.Respond(&hraft.RequestPreVoteResponse{Term: req.Term, Granted: true}, nil)
			default:
				rpc.Respond(nil, io.ErrUnexpectedEOF)
			}
		case <-stop:
			return
		}
	}
}

func refConfig(id string, leader bool) *hraft.Config {
	conf := hraft.DefaultConfig()
	conf.LocalID = hraft.ServerID(id)
	conf.Logger = hclog.NewNullLogger()
	conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = allocTimeouts(leader)
	return conf
}

func refLeaderAllocs(b *testing.B, clients int) {
	addr, trans := hraft.NewInmemTransport("leader")
	servers := []hraft.Server{{ID: "leader", Address: addr}}
	var answers atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	for _, id := range []string{"f1", "f2"} {
		a, t := hraft.NewInmemTransport(hraft.ServerAddress(id))
		trans.Connect(a, t)
		t.Connect(addr, trans)
		go refFakeFollower(t, &answers, stop)
		servers = append(servers, hraft.Server{ID: hraft.ServerID(id), Address: a})
	}
	conf := refConfig("leader", true)
	store, snaps := hraft.NewInmemStore(), hraft.NewInmemSnapshotStore()
	if err := hraft.BootstrapCluster(conf, store, store, snaps, trans, hraft.Configuration{Servers: servers}); err != nil {
		b.Fatal(err)
	}
	r, err := hraft.NewRaft(conf, refNopFSM{}, store, store, snaps, trans)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = r.Shutdown().Error() }()
	awaitLeadership(b, r.LeaderCh())
	apply := func() error { return r.Apply(allocCommand, 0).Error() }
	measureLeader(b, clients, apply, &answers, func() any { return &hraft.AppendEntriesResponse{Success: true} })
}

func refFollowerAllocs(b *testing.B, batch int) {
	addr, trans := hraft.NewInmemTransport("node")
	leaderAddr, leaderTrans := hraft.NewInmemTransport("leader")
	trans.Connect(leaderAddr, leaderTrans)
	leaderTrans.Connect(addr, trans)
	servers := []hraft.Server{{ID: "node", Address: addr}, {ID: "leader", Address: leaderAddr}, {ID: "third", Address: "third"}}
	conf := refConfig("node", false)
	store, snaps := hraft.NewInmemStore(), hraft.NewInmemSnapshotStore()
	if err := hraft.BootstrapCluster(conf, store, store, snaps, trans, hraft.Configuration{Servers: servers}); err != nil {
		b.Fatal(err)
	}
	r, err := hraft.NewRaft(conf, refNopFSM{}, store, store, snaps, trans)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = r.Shutdown().Error() }()
	last := uint64(1)
	request := func() *hraft.AppendEntriesRequest {
		req := &hraft.AppendEntriesRequest{
			RPCHeader: hraft.RPCHeader{ProtocolVersion: 3, ID: []byte("leader"), Addr: []byte(leaderAddr)},
			Term:      2, PrevLogEntry: last, PrevLogTerm: 1, LeaderCommitIndex: last + uint64(batch),
			Entries: make([]*hraft.Log, batch),
		}
		if last > 1 {
			req.PrevLogTerm = 2
		}
		for i := range req.Entries {
			req.Entries[i] = &hraft.Log{Index: last + 1 + uint64(i), Term: 2, Type: hraft.LogCommand, Data: allocCommand}
		}
		return req
	}
	send := func() {
		req := request()
		var resp hraft.AppendEntriesResponse
		if err := leaderTrans.AppendEntries("node", addr, req, &resp); err != nil {
			b.Fatal(err)
		}
		if !resp.Success {
			b.Fatalf("the follower refused entries %d to %d", last+1, last+uint64(batch))
		}
		last += uint64(batch)
	}
	measureFollower(b, batch, send, func() any { return request() }, func() any { return &hraft.AppendEntriesResponse{} })
}
