package raft

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// The cluster harness for tests: n nodes over InmemTransport and InmemStore,
// meant to run inside a synctest bubble, so that timeouts cost no wall time
// and no test depends on the machine's speed. Waiting is event-driven:
// every node's observer and every test FSM poke one channel, and waitFor
// re-checks its condition after each poke, with a fake-time deadline.

// testConfig returns a configuration with short timeouts, whose node checks
// its invariants after every step. In fake time the timeouts' absolute
// size does not matter, only their ratios.
func testConfig(t *testing.T, id ServerID) *Config {
	c := DefaultConfig()
	c.LocalID = id
	c.HeartbeatTimeout = 50 * time.Millisecond
	c.ElectionTimeout = 50 * time.Millisecond
	c.LeaderLeaseTimeout = 50 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.Logger = testLogger(t, string(id))
	// Every step of every test node's run loop checks the write path's
	// invariants (write_path_invariants.go).
	c.invariantCheck = &invariantCheck{broken: func(err error) { t.Errorf("%v", err) }}
	return c
}

// testLogger writes a node's logs to the test log. RAFT_TEST_LOG sets the
// level (default: warn).
func testLogger(t *testing.T, name string) hclog.Logger {
	level := hclog.Warn
	if l := os.Getenv("RAFT_TEST_LOG"); l != "" {
		level = hclog.LevelFromString(l)
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:   name,
		Level:  level,
		Output: testLogWriter{t},
	})
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// testFSM records every command it applies.
type testFSM struct {
	mu      sync.Mutex
	logs    []*Log
	changed func()
	// delay, in nanoseconds, is how long each Apply takes, for a slow FSM.
	delay atomic.Int64
}

func (f *testFSM) Apply(l *Log) interface{} {
	if d := f.delay.Load(); d > 0 {
		time.Sleep(time.Duration(d))
	}
	f.mu.Lock()
	f.logs = append(f.logs, l)
	n := len(f.logs)
	f.mu.Unlock()
	if f.changed != nil {
		f.changed()
	}
	return n
}

func (f *testFSM) Snapshot() (FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	data := make([][]byte, len(f.logs))
	for i, l := range f.logs {
		data[i] = l.Data
	}
	return &testSnapshot{data: data}, nil
}

func (f *testFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var data [][]byte
	if err := json.NewDecoder(rc).Decode(&data); err != nil {
		return err
	}
	f.mu.Lock()
	f.logs = f.logs[:0]
	for _, d := range data {
		f.logs = append(f.logs, &Log{Data: d})
	}
	f.mu.Unlock()
	return nil
}

// commands returns the Data of every applied command, in order.
func (f *testFSM) commands() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([][]byte, len(f.logs))
	for i, l := range f.logs {
		out[i] = l.Data
	}
	return out
}

func (f *testFSM) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.logs)
}

type testSnapshot struct{ data [][]byte }

func (s *testSnapshot) Persist(sink SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s.data); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *testSnapshot) Release() {}

// testNode is one server of a test cluster, with the stores that survive
// its restarts.
type testNode struct {
	id    ServerID
	addr  ServerAddress
	conf  *Config
	fsm   *testFSM
	logs  LogStore
	store *InmemStore
	snaps SnapshotStore
	trans *InmemTransport
	raft  *Raft
	// strict checks the running instance's calls into its parts
	// (strict_doubles_test.go); nil with clusterOpts.lax.
	strict *strictParts
}

type testCluster struct {
	t *testing.T
	// mu guards nodes and each node's raft field against client goroutines
	// (running); the test goroutine, the only writer, reads them freely.
	mu    sync.Mutex
	nodes []*testNode
	// changed (capacity one) is poked by observers and FSMs.
	changed chan struct{}
	// cut holds the pairs that cannot talk, as "from>to".
	cut  map[string]bool
	opts clusterOpts
}

// clusterOpts adjusts a test cluster.
type clusterOpts struct {
	// conf, when set, adjusts each node's configuration.
	conf func(*Config)
	// noBootstrap leaves the stores empty.
	noBootstrap bool
	// logs, when set, wraps each node's log store.
	logs func(id ServerID, s *InmemStore) LogStore
	// snaps, when set, makes each node's snapshot store.
	snaps func(id ServerID) SnapshotStore
	// lax runs the nodes on their parts as they are, without the strict
	// doubles that fail the test on a call the contract rules out.
	lax bool
	// fsmKind makes each node's strict FSM also a ConfigurationStore
	// (configFSM) or a BatchingFSM too (batchingFSM).
	fsmKind string
	// trans, when set with lax, wraps each node's transport.
	trans func(*InmemTransport) Transport
}

func newTestCluster(t *testing.T, n int, opts clusterOpts) *testCluster {
	t.Helper()
	c := &testCluster{t: t, changed: make(chan struct{}, 1), cut: make(map[string]bool), opts: opts}
	var cfg Configuration
	for i := 0; i < n; i++ {
		node := c.newNode(ServerID(fmt.Sprintf("node%d", i)))
		cfg.Servers = append(cfg.Servers, Server{Suffrage: Voter, ID: node.id, Address: node.addr})
	}
	for _, node := range c.nodes {
		if !opts.noBootstrap {
			if err := BootstrapCluster(node.conf, node.logs, node.store, node.snaps, c.newTransport(node), cfg); err != nil {
				t.Fatalf("bootstrapping %s: %v", node.id, err)
			}
		}
	}
	for _, node := range c.nodes {
		c.start(node)
	}
	return c
}

// newNode adds a node with empty stores to the cluster, without starting
// it. Its address is "addr-" and its ID.
func (c *testCluster) newNode(id ServerID) *testNode {
	node := &testNode{
		id:    id,
		addr:  ServerAddress("addr-" + string(id)),
		store: NewInmemStore(),
		snaps: NewInmemSnapshotStore(),
	}
	node.logs = node.store
	if c.opts.logs != nil {
		node.logs = c.opts.logs(id, node.store)
	}
	if c.opts.snaps != nil {
		node.snaps = c.opts.snaps(id)
	}
	node.conf = testConfig(c.t, id)
	if c.opts.conf != nil {
		c.opts.conf(node.conf)
	}
	c.mu.Lock()
	c.nodes = append(c.nodes, node)
	c.mu.Unlock()
	return node
}

// node returns the node with id.
func (c *testCluster) node(id ServerID) *testNode {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	c.t.Fatalf("no node %s", id)
	return nil
}

// newTransport gives node a fresh transport at its address.
func (c *testCluster) newTransport(node *testNode) *InmemTransport {
	_, node.trans = NewInmemTransport(node.addr)
	return node.trans
}

// start runs node on its stores, connected to every peer that is running.
func (c *testCluster) start(node *testNode) {
	c.t.Helper()
	c.newTransport(node)
	node.fsm = &testFSM{changed: c.poke}
	var (
		fsm    FSM           = node.fsm
		logs   LogStore      = node.logs
		stable StableStore   = node.store
		snaps  SnapshotStore = node.snaps
		trans  Transport     = node.trans
	)
	if !c.opts.lax {
		node.strict = newStrictParts(c.t, string(node.id), fsm, logs, stable, snaps, node.trans, c.opts.fsmKind)
		fsm, logs, stable, snaps, trans = node.strict.fsm, node.strict.logs, node.strict.stable, node.strict.snaps, node.strict.trans
	} else if c.opts.trans != nil {
		trans = c.opts.trans(node.trans)
	}
	r, err := NewRaft(node.conf, fsm, logs, stable, snaps, trans)
	if err != nil {
		c.t.Fatalf("starting %s: %v", node.id, err)
	}
	c.mu.Lock()
	node.raft = r
	c.mu.Unlock()
	r.RegisterObserver(NewObserver(nil, false, func(*Observation) bool { c.poke(); return false }))
	c.reconnect()
}

// poke tells waiters that something changed.
func (c *testCluster) poke() { notify(c.changed) }

// reconnect routes every pair of running nodes that is not cut. A stopped
// node is unreachable, as a crashed server would be.
func (c *testCluster) reconnect() {
	for _, a := range c.nodes {
		for _, b := range c.nodes {
			if a == b || a.raft == nil {
				continue
			}
			if b.raft == nil || c.cut[string(a.id)+">"+string(b.id)] {
				a.trans.Disconnect(b.addr)
			} else {
				a.trans.Connect(b.addr, b.trans)
			}
		}
	}
}

// partition cuts every link between the given group and the others.
func (c *testCluster) partition(group ...*testNode) {
	in := make(map[*testNode]bool)
	for _, n := range group {
		in[n] = true
	}
	for _, a := range c.nodes {
		for _, b := range c.nodes {
			if in[a] != in[b] {
				c.cut[string(a.id)+">"+string(b.id)] = true
			}
		}
	}
	c.reconnect()
}

// heal restores every link.
func (c *testCluster) heal() {
	clear(c.cut)
	c.reconnect()
}

// stop shuts node down and waits until it stopped.
func (c *testCluster) stop(node *testNode) {
	c.t.Helper()
	if node.raft == nil {
		return
	}
	if err := node.raft.Shutdown().Error(); err != nil {
		c.t.Fatalf("shutting down %s: %v", node.id, err)
	}
	if node.strict != nil {
		node.strict.node.shutdownReturned()
	}
	c.mu.Lock()
	node.raft = nil
	c.mu.Unlock()
	c.reconnect()
}

// shutdown stops every node.
func (c *testCluster) shutdown() {
	for _, n := range c.nodes {
		c.stop(n)
	}
}

// running returns the nodes that are running.
func (c *testCluster) running() []*testNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*testNode
	for _, n := range c.nodes {
		if n.raft != nil {
			out = append(out, n)
		}
	}
	return out
}

// leaderRaft returns a running node that believes it leads, or nil; it is
// safe to call from client goroutines.
func (c *testCluster) leaderRaft() *Raft {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if n.raft != nil && n.raft.State() == Leader {
			return n.raft
		}
	}
	return nil
}

// anyLeader waits until some running node leads and returns it, without
// requiring every node to know it (nodes not yet in the configuration
// never will).
func (c *testCluster) anyLeader() *Raft {
	c.t.Helper()
	var leader *Raft
	c.waitFor(10*time.Second, "a leader", func() bool {
		leader = c.leaderRaft()
		return leader != nil
	})
	return leader
}

// anyLeaderNode is anyLeader for tests that want the node, not just its
// Raft.
func (c *testCluster) anyLeaderNode() *testNode {
	c.t.Helper()
	var leader *testNode
	c.waitFor(10*time.Second, "a leader", func() bool {
		if ls := c.leaders(); len(ls) > 0 {
			leader = ls[0]
		}
		return leader != nil
	})
	return leader
}

// waitFor waits until cond holds, re-checking whenever something changes
// and at least every tick of fake time, and fails the test after timeout.
func (c *testCluster) waitFor(timeout time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	// Some conditions (a term, an index) change without an observation;
	// the tick bounds how late they are noticed.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-c.changed:
		case <-tick.C:
		case <-deadline.C:
			c.t.Fatalf("timed out after %v waiting for %s\n%s", timeout, what, c.describe())
		}
	}
}

// describe summarises every node, for failure messages.
func (c *testCluster) describe() string {
	var b bytes.Buffer
	for _, n := range c.nodes {
		if n.raft == nil {
			fmt.Fprintf(&b, "  %s: stopped\n", n.id)
			continue
		}
		s := n.raft.Stats()
		fmt.Fprintf(&b, "  %s: %s term=%s last=%s commit=%s applied=%s fsm=%d\n", n.id, s["state"], s["term"],
			s["last_log_index"], s["commit_index"], s["applied_index"], n.fsm.len())
	}
	return b.String()
}

// leaders returns the running nodes that believe they lead.
func (c *testCluster) leaders() []*testNode {
	var out []*testNode
	for _, n := range c.running() {
		if n.raft.State() == Leader {
			out = append(out, n)
		}
	}
	return out
}

// waitForLeader waits until exactly one of the given nodes (all running
// nodes by default) leads and the others follow it, and returns it.
func (c *testCluster) waitForLeader(nodes ...*testNode) *testNode {
	c.t.Helper()
	if len(nodes) == 0 {
		nodes = c.running()
	}
	var leader *testNode
	c.waitFor(10*time.Second, "a single agreed leader", func() bool {
		leader = nil
		for _, n := range nodes {
			if n.raft.State() == Leader {
				if leader != nil {
					return false
				}
				leader = n
			}
		}
		if leader == nil {
			return false
		}
		term := leader.raft.CurrentTerm()
		for _, n := range nodes {
			addr, _ := n.raft.LeaderWithID()
			if addr != leader.addr || n.raft.CurrentTerm() != term {
				return false
			}
		}
		return true
	})
	return leader
}

// termLeaders tracks every leader seen per term, to check election safety:
// at most one leader per term.
type termLeaders struct {
	mu   sync.Mutex
	seen map[uint64]map[ServerID]bool
}

// watch records node's leaderships as they happen.
func (tl *termLeaders) watch(node *testNode) {
	r := node.raft
	r.RegisterObserver(NewObserver(nil, false, func(o *Observation) bool {
		if s, ok := o.Data.(RaftState); ok && s == Leader {
			tl.mu.Lock()
			defer tl.mu.Unlock()
			if tl.seen == nil {
				tl.seen = make(map[uint64]map[ServerID]bool)
			}
			term := r.CurrentTerm()
			if tl.seen[term] == nil {
				tl.seen[term] = make(map[ServerID]bool)
			}
			tl.seen[term][node.id] = true
		}
		return false
	}))
}

// check fails the test if any term had two leaders.
func (tl *termLeaders) check(t *testing.T) {
	t.Helper()
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for term, ids := range tl.seen {
		if len(ids) > 1 {
			t.Errorf("term %d had %d leaders: %v", term, len(ids), ids)
		}
	}
}
