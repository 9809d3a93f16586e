// Package grpccluster runs a raft cluster over github.com/Jille/raft-grpc-transport.
//
// This file is not built in place (it lives under testdata): the interop
// test TestSuitesGRPCCluster (interop/suites_grpc_test.go) copies it into a
// temporary module twice, as written (on the reference library) and with
// its imports rewritten to ours, beside a copy of the transport rewritten
// the same way, and runs both.
package grpccluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	transport "github.com/Jille/raft-grpc-transport"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

const (
	// settle bounds every wait for a condition: generous, because reaching
	// it is a failure (on a loaded machine, under -race), never a measure.
	settle = 60 * time.Second
	// poll is the interval of the waits.
	poll = 10 * time.Millisecond
	// trailing is Config.TrailingLogs: small, so that a snapshot compacts
	// the log and a new voter needs the snapshot.
	trailing = 8
)

// entry is one command as an FSM applied it.
type entry struct {
	Index uint64
	Data  string
}

// fsm records the commands it applies, in order; its snapshot is the
// whole record.
type fsm struct {
	mu       sync.Mutex
	entries  []entry
	restores int
}

func (f *fsm) Apply(l *raft.Log) interface{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, entry{l.Index, string(l.Data)})
	return nil
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return snapshot(append([]entry(nil), f.entries...)), nil
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var entries []entry
	if err := json.NewDecoder(rc).Decode(&entries); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = entries
	f.restores++
	return nil
}

func (f *fsm) state() (entries []entry, restores int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]entry(nil), f.entries...), f.restores
}

// last is the index of the last command applied.
func (f *fsm) last() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.entries) == 0 {
		return 0
	}
	return f.entries[len(f.entries)-1].Index
}

type snapshot []entry

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode([]entry(s)); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s snapshot) Release() {}

// logBuffer collects the nodes' logs; they are shown if the test fails.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() < 4<<20 {
		b.buf.Write(p)
	}
	return len(p), nil
}

// node is one server: its files survive a restart, the rest is new each
// time it starts.
type node struct {
	id   raft.ServerID
	addr raft.ServerAddress
	dir  string

	mu      sync.Mutex
	r       *raft.Raft
	fsm     *fsm
	store   *raftboltdb.BoltStore
	manager *transport.Manager
	server  *grpc.Server
}

func (n *node) raft() *raft.Raft {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.r
}

func (n *node) machine() *fsm {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.fsm
}

type cluster struct {
	t    *testing.T
	logs *logBuffer

	mu    sync.Mutex
	nodes []*node
	acked map[string]uint64 // command -> index, for every acknowledged Apply
}

// all returns the nodes added so far.
func (c *cluster) all() []*node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*node(nil), c.nodes...)
}

func newCluster(t *testing.T) *cluster {
	c := &cluster{t: t, logs: &logBuffer{}, acked: map[string]uint64{}}
	t.Cleanup(func() {
		for _, n := range c.all() {
			c.stop(n)
		}
		if t.Failed() {
			c.logs.mu.Lock()
			t.Logf("nodes' logs:\n%s", c.logs.buf.String())
			c.logs.mu.Unlock()
		}
	})
	return c
}

// add makes a node with a listener on 127.0.0.1 and starts it.
func (c *cluster) add(id string) *node {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	n := &node{id: raft.ServerID(id), addr: raft.ServerAddress(lis.Addr().String()), dir: filepath.Join(c.t.TempDir(), id)}
	c.start(n, lis)
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	return n
}

// start starts n on its files; lis is nil on a restart, when n listens
// again on its address.
func (c *cluster) start(n *node, lis net.Listener) {
	t := c.t
	var err error
	if lis == nil {
		// The port was released by stop; take it again, waiting for the
		// condition (the port free) within a bound.
		deadline := time.Now().Add(settle)
		for {
			lis, err = net.Listen("tcp", string(n.addr))
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: listen again on %s: %v", n.id, n.addr, err)
			}
			time.Sleep(poll)
		}
	}
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(n.dir, "raft.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := raft.NewFileSnapshotStore(n.dir, 2, c.logs)
	if err != nil {
		t.Fatal(err)
	}
	m := transport.New(n.addr, []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())})
	s := grpc.NewServer()
	m.Register(s)
	go s.Serve(lis)

	conf := raft.DefaultConfig()
	conf.LocalID = n.id
	// DefaultConfig's timeouts: shorter ones make a loaded machine (-race,
	// another job beside) churn through elections.
	conf.CommitTimeout = 5 * time.Millisecond
	conf.TrailingLogs = trailing
	// Snapshots only when the test asks.
	conf.SnapshotThreshold = 1 << 40
	conf.SnapshotInterval = time.Hour
	conf.LogOutput = c.logs
	conf.LogLevel = "INFO"
	f := &fsm{}
	r, err := raft.NewRaft(conf, f, store, store, snaps, m.Transport())
	if err != nil {
		t.Fatalf("%s: NewRaft: %v", n.id, err)
	}
	n.mu.Lock()
	n.r, n.fsm, n.store, n.manager, n.server = r, f, store, m, s
	n.mu.Unlock()
}

// stop shuts n down and releases its port and files.
func (c *cluster) stop(n *node) {
	n.mu.Lock()
	r, store, m, s := n.r, n.store, n.manager, n.server
	n.r, n.store, n.manager, n.server = nil, nil, nil, nil
	n.mu.Unlock()
	if r == nil {
		return
	}
	if err := r.Shutdown().Error(); err != nil {
		c.t.Errorf("%s: Shutdown: %v", n.id, err)
	}
	s.Stop()
	m.Close()
	if err := store.Close(); err != nil {
		c.t.Errorf("%s: closing the store: %v", n.id, err)
	}
}

// waitFor waits until cond holds, failing the test after settle.
func (c *cluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(settle)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("still waiting after %v for %s", settle, what)
		}
		time.Sleep(poll)
	}
}

// leader waits for a running node that says it leads.
func (c *cluster) leader() *node {
	c.t.Helper()
	var l *node
	c.waitFor("a leader", func() bool {
		for _, n := range c.all() {
			if r := n.raft(); r != nil && r.State() == raft.Leader {
				l = n
				return true
			}
		}
		return false
	})
	return l
}

// apply submits cmd to whichever node leads; it returns whether the write
// was acknowledged, and records it if so.
func (c *cluster) apply(cmd string) bool {
	for _, n := range c.all() {
		r := n.raft()
		if r == nil || r.State() != raft.Leader {
			continue
		}
		f := r.Apply([]byte(cmd), 2*time.Second)
		if f.Error() != nil {
			return false
		}
		c.mu.Lock()
		c.acked[cmd] = f.Index()
		c.mu.Unlock()
		return true
	}
	return false
}

// write applies n new commands named prefix-k, retrying each (under a new
// name, since a write that was not acknowledged may still be applied)
// until it is acknowledged.
func (c *cluster) write(prefix string, n int) {
	c.t.Helper()
	for k := 0; k < n; k++ {
		attempt := 0
		c.waitFor(fmt.Sprintf("write %s-%d acknowledged", prefix, k), func() bool {
			attempt++
			return c.apply(fmt.Sprintf("%s-%d.%d", prefix, k, attempt))
		})
	}
}

// load writes in the background until the returned function is called.
func (c *cluster) load(prefix string) (stop func() int) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var acked int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k := 0; ; k++ {
			select {
			case <-done:
				return
			default:
			}
			if c.apply(fmt.Sprintf("%s-%d", prefix, k)) {
				acked++
			} else {
				time.Sleep(poll)
			}
		}
	}()
	return func() int {
		close(done)
		wg.Wait()
		return acked
	}
}

// converge waits until every running node's FSM applied every command the
// leader's had after a barrier, then checks that all applied the same
// sequence and that it holds every acknowledged write, once, at its index.
// (AppliedIndex is not enough: the reference advances it when it hands
// entries to the FSM, before the FSM applies them.)
func (c *cluster) converge() {
	c.t.Helper()
	var want []entry
	c.waitFor("a barrier on the leader", func() bool {
		l := c.leader()
		r := l.raft()
		if r == nil || r.Barrier(2*time.Second).Error() != nil {
			return false
		}
		want, _ = l.machine().state()
		return true
	})
	var last uint64
	if len(want) > 0 {
		last = want[len(want)-1].Index
	}
	for _, n := range c.all() {
		if n.raft() == nil {
			continue
		}
		c.waitFor(fmt.Sprintf("%s to apply up to %d", n.id, last), func() bool { return n.machine().last() >= last })
		got, _ := n.machine().state()
		got = upTo(got, last)
		if !equal(got, want) {
			c.t.Fatalf("%s applied a different sequence: %d entries, ending %v; the leader: %d entries, ending %v",
				n.id, len(got), tail(got), len(want), tail(want))
		}
	}
	at := map[string]uint64{}
	for _, e := range want {
		if _, dup := at[e.Data]; dup {
			c.t.Errorf("command %q applied twice", e.Data)
		}
		at[e.Data] = e.Index
	}
	c.mu.Lock()
	acked := make(map[string]uint64, len(c.acked))
	for cmd, index := range c.acked {
		acked[cmd] = index
	}
	c.mu.Unlock()
	for cmd, index := range acked {
		if got, ok := at[cmd]; !ok || got != index {
			c.t.Errorf("acknowledged write %q at index %d: applied at %d (present %v)", cmd, index, got, ok)
		}
	}
	c.t.Logf("%d nodes agree on %d entries up to index %d; %d acknowledged writes all there", c.running(), len(want), last, len(acked))
}

func (c *cluster) running() int {
	k := 0
	for _, n := range c.all() {
		if n.raft() != nil {
			k++
		}
	}
	return k
}

func upTo(es []entry, index uint64) []entry {
	for i, e := range es {
		if e.Index > index {
			return es[:i]
		}
	}
	return es
}

func equal(a, b []entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func tail(es []entry) []entry {
	if len(es) > 3 {
		return es[len(es)-3:]
	}
	return es
}

// TestGRPCCluster runs three voters over the gRPC transport, then adds a
// fourth from a snapshot, moves the leadership and restarts a follower,
// with writes going on; after each step every node applies the same
// sequence, holding every acknowledged write.
func TestGRPCCluster(t *testing.T) {
	c := newCluster(t)
	n1, n2, n3 := c.add("n1"), c.add("n2"), c.add("n3")
	boot := raft.Configuration{Servers: []raft.Server{
		{Suffrage: raft.Voter, ID: n1.id, Address: n1.addr},
		{Suffrage: raft.Voter, ID: n2.id, Address: n2.addr},
		{Suffrage: raft.Voter, ID: n3.id, Address: n3.addr},
	}}
	if err := n1.raft().BootstrapCluster(boot).Error(); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}

	// Replication.
	c.write("replicate", 100)
	c.converge()

	// A snapshot on every node, which compacts each one's log, then a new
	// voter that can only catch up from a snapshot, whoever leads.
	c.write("before-snapshot", 20)
	c.converge()
	for _, n := range c.all() {
		c.waitFor(fmt.Sprintf("a snapshot on %s", n.id), func() bool {
			err := n.raft().Snapshot().Error()
			if err != nil {
				t.Logf("snapshot on %s: %v", n.id, err)
			}
			return err == nil
		})
		c.waitFor(fmt.Sprintf("%s's log compacted", n.id), func() bool {
			first, err := n.store.FirstIndex()
			return err == nil && first > 1
		})
	}
	c.write("after-snapshot", 5)
	stopLoad := c.load("during-add")
	n4 := c.add("n4")
	c.waitFor("n4 added as a voter", func() bool {
		r := c.leader().raft()
		return r != nil && r.AddVoter(n4.id, n4.addr, 0, 2*time.Second).Error() == nil
	})
	c.waitFor("n4 to restore a snapshot", func() bool { _, k := n4.machine().state(); return k > 0 })
	t.Logf("load during the add: %d writes acknowledged", stopLoad())
	c.converge()

	// Leadership transfer, with writes going on.
	stopLoad = c.load("during-transfer")
	old := c.leader()
	c.waitFor("a leadership transfer", func() bool {
		r := old.raft()
		return r != nil && (r.State() != raft.Leader || r.LeadershipTransfer().Error() == nil)
	})
	c.waitFor("a new leader", func() bool { return c.leader() != old })
	c.write("after-transfer", 10)
	t.Logf("load during the transfer: %d writes acknowledged", stopLoad())
	c.converge()

	// A follower restarts on its files, missing writes while it is down.
	stopLoad = c.load("during-restart")
	var f *node
	for _, n := range c.all() {
		if n != c.leader() {
			f = n
			break
		}
	}
	c.stop(f)
	c.write("while-down", 30)
	c.start(f, nil)
	c.write("after-restart", 10)
	t.Logf("load during the restart of %s: %d writes acknowledged", f.id, stopLoad())
	c.converge()

	// Once more with all four, after the restart.
	c.write("final", 10)
	c.converge()
}
