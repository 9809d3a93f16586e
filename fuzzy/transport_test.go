package fuzzy

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumkit/raft"
)

// faultTransport is one incarnation's transport: a raft.InmemTransport,
// embedded so that InmemTransport.Connect routes to it, with every outgoing
// request and every answer passed through the network model. Faults act on
// the sender's side: a request is dropped, delayed, duplicated or sent out
// of order on its way out, and its answer dropped or delayed on its way
// back. Incoming requests reach the embedded transport as usual, heartbeats
// through the heartbeat handler.
//
// It keeps every capability of what it wraps (pre-vote, pipelining, Close,
// the heartbeat fast path); capabilities() checks that at run time, and the
// run's counters prove each was used.
type faultTransport struct {
	*raft.InmemTransport
	net   *network
	id    raft.ServerID
	inc   int
	stats *runStats
	check *checker

	// deadCh is closed when the incarnation crashes: requests it is sending
	// give up at once.
	deadCh   chan struct{}
	deadOnce sync.Once

	mu        sync.Mutex
	pipelines []*faultPipeline // guarded by mu

	// consumers counts raft's Consumer calls: one per incarnation.
	consumers atomic.Int32

	// preVote is the incarnation's pre-vote setting; lateTimeoutNow,
	// when set, may deliver each TimeoutNow sent again, late
	// (targeted_test.go). Both are set before raft starts.
	preVote        bool
	lateTimeoutNow func(from raft.ServerID, target raft.ServerAddress, send func(raft.ServerAddress) error)
	// timeoutNowValid, when set, is called as a TimeoutNow is sent and
	// returns whether it may still be delivered (lease_test.go).
	timeoutNowValid func() func() bool
}

// Consumer returns the inner transport's channel; raft must ask once and
// keep it (ARCHITECTURE.md, "Calls into user code").
func (t *faultTransport) Consumer() <-chan raft.RPC {
	if t.consumers.Add(1) > 1 {
		t.check.violation("%s: Transport.Consumer called more than once", t.id)
	}
	return t.InmemTransport.Consumer()
}

var (
	_ raft.WithPreVote   = (*faultTransport)(nil)
	_ raft.WithReadIndex = (*faultTransport)(nil)
	_ raft.WithClose     = (*faultTransport)(nil)
	_ raft.WithPeers     = (*faultTransport)(nil)
)

var (
	errDropped = errors.New("fuzzy: message lost")
	errTimeout = errors.New("fuzzy: no answer within the RPC timeout")
	errDead    = errors.New("fuzzy: sender crashed")
)

func newFaultTransport(net *network, id raft.ServerID, addr raft.ServerAddress, inc int, stats *runStats, check *checker) *faultTransport {
	_, inner := raft.NewInmemTransportWithTimeout(addr, net.rpcTimeout)
	return &faultTransport{
		InmemTransport: inner,
		net:            net,
		id:             id,
		inc:            inc,
		stats:          stats,
		check:          check,
		deadCh:         make(chan struct{}),
	}
}

// capabilities checks that the transport, as raft sees it, offers every
// optional feature of the in-memory transport.
func capabilities(t raft.Transport) error {
	if _, ok := t.(raft.WithPreVote); !ok {
		return errors.New("the fault transport lost pre-vote")
	}
	if _, ok := t.(raft.WithClose); !ok {
		return errors.New("the fault transport lost Close")
	}
	if _, ok := t.(raft.WithReadIndex); !ok {
		return errors.New("the fault transport lost ReadIndex")
	}
	if _, ok := t.(interface{ pipelineWrapped() }); !ok {
		return errors.New("the fault transport does not wrap pipelines")
	}
	return nil
}

// kill makes the incarnation's in-flight sends give up.
func (t *faultTransport) kill() { t.deadOnce.Do(func() { close(t.deadCh) }) }

// SetHeartbeatHandler registers cb with the inner transport, counting the
// heartbeats that take the fast path.
func (t *faultTransport) SetHeartbeatHandler(cb func(raft.RPC)) {
	if cb == nil {
		t.InmemTransport.SetHeartbeatHandler(nil)
		return
	}
	t.InmemTransport.SetHeartbeatHandler(func(rpc raft.RPC) {
		t.stats.heartbeatsFastPath.Add(1)
		cb(rpc)
	})
}

func (t *faultTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	return send(t, target, resp, func(out *raft.AppendEntriesResponse) error {
		return t.InmemTransport.AppendEntries(id, target, args, out)
	})
}

func (t *faultTransport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	t.check.onElection(t.id, args.Term, t.preVote)
	err := send(t, target, resp, func(out *raft.RequestVoteResponse) error {
		err := t.InmemTransport.RequestVote(id, target, args, out)
		if err == nil && out.Granted {
			// Every grant the voter made, including one whose answer is
			// then lost: a vote is a promise once it is sent.
			t.check.onVote(t.net.id(target), args.Term, string(t.id))
		}
		return err
	})
	return err
}

func (t *faultTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	t.stats.preVotes.Add(1)
	if !t.preVote {
		t.stats.preVotesDisabled.Add(1)
	}
	return send(t, target, resp, func(out *raft.RequestPreVoteResponse) error {
		return t.InmemTransport.RequestPreVote(id, target, args, out)
	})
}

func (t *faultTransport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	// A snapshot's bytes are a stream that can be read once: it is never
	// duplicated, only dropped or delayed (see send). The follower stores
	// it before it answers, which may take a slow disk's time: the sender
	// waits as long as the inner transport does.
	return send(t, target, resp, func(out *raft.InstallSnapshotResponse) error {
		return t.InmemTransport.InstallSnapshot(id, target, args, out, data)
	})
}

func (t *faultTransport) TimeoutNow(id raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	valid := func() bool { return true }
	if t.timeoutNowValid != nil {
		valid = t.timeoutNowValid()
	}
	if t.lateTimeoutNow != nil {
		copied := *args
		t.lateTimeoutNow(t.id, target, func(to raft.ServerAddress) error {
			if !valid() {
				return errDropped
			}
			return t.InmemTransport.TimeoutNow(id, to, &copied, new(raft.TimeoutNowResponse))
		})
	}
	return send(t, target, resp, func(out *raft.TimeoutNowResponse) error {
		if !valid() {
			return errDropped
		}
		return t.InmemTransport.TimeoutNow(id, target, args, out)
	})
}

// ReadIndex carries a follower's ReadIndex request to its leader through
// the network model, as any other request.
func (t *faultTransport) ReadIndex(id raft.ServerID, target raft.ServerAddress, args *raft.ReadIndexRequest, resp *raft.ReadIndexResponse) error {
	return send(t, target, resp, func(out *raft.ReadIndexResponse) error {
		return t.InmemTransport.ReadIndex(id, target, args, out)
	})
}

// Close closes the incarnation's pipelines and the inner transport.
func (t *faultTransport) Close() error {
	t.kill()
	t.mu.Lock()
	pipes := t.pipelines
	t.pipelines = nil
	t.mu.Unlock()
	for _, p := range pipes {
		p.shutdown()
	}
	return t.InmemTransport.Close()
}

// waitDelay waits d in fake time. A delay that has already run out takes no
// timer: under the race detector, goroutines of one synctest bubble that
// receive at once from timer channels whose time has already come crash
// Go 1.26's race runtime (README.md, "A Go runtime defect under -race").
func waitDelay(d time.Duration) {
	if d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	<-timer.C
}

// sleep waits d in fake time, or until the incarnation dies; it reports
// whether the incarnation is still alive.
func (t *faultTransport) sleep(d time.Duration) bool {
	if d <= 0 {
		select {
		case <-t.deadCh:
			return false
		default:
			return true
		}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-t.deadCh:
		return false
	}
}

// answer is what a delivery produced.
type answer[T any] struct {
	resp T
	err  error
}

// send carries one request from t to target through the network model and
// waits for its answer. call makes the actual in-memory RPC, filling its
// argument. A request that is not lost runs on a goroutine of its own, so
// a sender that gives up (timeout, crash) does not stop it from arriving
// late, as a real network would deliver it.
func send[T any](t *faultTransport, target raft.ServerAddress, resp *T, call func(*T) error) error {
	to := t.net.id(target)
	h := t.net.plan(t.id, to)
	if h.drop || !t.net.alive(t.id, t.inc) {
		// Lost on the way: the sender learns nothing until it gives up,
		// anywhere from a refused connection to a full timeout.
		t.sleep(t.net.rnd.duration(0, t.net.rpcTimeout))
		return errDropped
	}
	done := make(chan answer[T], 1)
	deliver := func(delay time.Duration, ch chan answer[T]) {
		waitDelay(delay)
		if !t.net.linkUp(t.id, to) || !t.net.alive(t.id, t.inc) {
			ch <- answer[T]{err: errDropped}
			return
		}
		var out T
		err := call(&out)
		ch <- answer[T]{out, err}
	}
	t.net.goFlight(func() { deliver(h.delay, done) })
	if h.duplicate && !isSnapshot(resp) {
		t.stats.duplicated.Add(1)
		t.net.goFlight(func() { deliver(h.dupDelay, make(chan answer[T], 1)) })
	}

	wait := 2 * t.net.rpcTimeout
	if isSnapshot(resp) {
		wait = 10 * t.net.rpcTimeout
	}
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	var a answer[T]
	select {
	case a = <-done:
	case <-timeout.C:
		return errTimeout
	case <-t.deadCh:
		return errDead
	}
	if errors.Is(a.err, errDropped) {
		t.sleep(t.net.rnd.duration(0, t.net.rpcTimeout))
		return a.err
	}
	if a.err != nil {
		return a.err
	}
	// The way back.
	back := t.net.plan(to, t.id)
	if back.drop || !t.net.linkUp(to, t.id) {
		t.sleep(t.net.rnd.duration(0, t.net.rpcTimeout))
		return errDropped
	}
	if !t.sleep(back.delay) {
		return errDead
	}
	*resp = a.resp
	return nil
}

func isSnapshot(resp any) bool {
	_, ok := resp.(*raft.InstallSnapshotResponse)
	return ok
}

// runStats counts what the transports, clients and operations did in one
// run.
type runStats struct {
	// quorumLostToStops counts runs that ended waiting for an operator:
	// servers stopped for an uncommitted user restore held the quorum
	// (restore_test.go).
	quorumLostToStops  atomic.Int64
	heartbeatsFastPath atomic.Int64
	preVotes           atomic.Int64
	pipelined          atomic.Int64
	duplicated         atomic.Int64
	reordered          atomic.Int64
	// installs counts the snapshots FSMs restored while running (installed
	// from a leader), startRestores those restored as a server started.
	installs      atomic.Int64
	startRestores atomic.Int64
	// userSnapshots and openedSnapshots count user snapshots taken, and
	// read back; changes counts the membership changes that committed,
	// by kind; transfers the leadership transfers that succeeded.
	userSnapshots   atomic.Int64
	restores        atomic.Int64
	openedSnapshots atomic.Int64
	changes         [numFaultKinds]atomic.Int64
	transfers       atomic.Int64
	// readIndexReads counts the reads that went through ReadIndex;
	// followerReads those of them made on a follower.
	readIndexReads atomic.Int64
	// leaseReads counts the reads that went through ReadLease, and
	// leaseServed those its server answered from its lease.
	leaseReads    atomic.Int64
	leaseServed   atomic.Int64
	followerReads atomic.Int64
	// preVotesDisabled counts pre-votes sent by servers that run without
	// pre-vote.
	preVotesDisabled atomic.Int64
	// lateTimeoutNows counts late TimeoutNow copies delivered, and
	// lateTimeoutNowsObeyed those after which their receiver's term rose.
	lateTimeoutNows       atomic.Int64
	lateTimeoutNowsObeyed atomic.Int64
	// openLoopWrites and openLoopFailed count the slow-fsm load's writes
	// and those answered with an error; maxHeldBytes is the most bytes a
	// leader held (see heldBytes).
	openLoopWrites atomic.Int64
	openLoopFailed atomic.Int64
	maxHeldBytes   atomic.Int64
	// wipes counts the disks wiped; campaignWriteFailures the log
	// writes failed on candidates and new leaders.
	wipes                 atomic.Int64
	campaignWriteFailures atomic.Int64
}
