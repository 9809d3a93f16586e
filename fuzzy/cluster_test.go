package fuzzy

import (
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumkit/raft"
	"github.com/quorumkit/raft/internal/testhook"
)

// cluster runs the servers of one run, inside a synctest bubble: the
// initial configuration's voters and the spares, which run from the start
// with empty disks until an operation adds them. Each server keeps its disk
// (log, stable values and snapshots) for the whole run; each time it starts
// it is a new incarnation, with a fresh transport and a fresh FSM (the FSM
// is memory, lost in a crash), which restores the disk's newest snapshot.
type cluster struct {
	// quorumStopped, when set, says why the run ended waiting for an
	// operator's recovery (quorumLostToRestoreStops): the liveness checks
	// after healing are skipped, the safety checks are not.
	quorumStopped string
	sched         *schedule
	net           *network
	check         *checker
	stats         *runStats
	logs          *logRing
	// events is what the run did, printed with a failure.
	events *eventLog
	nodes  []*node
	// changed (capacity one) is poked by observers and FSMs; waiters
	// re-check their condition.
	changed chan struct{}
	// ops tracks the goroutines that wait for operations' answers.
	ops sync.WaitGroup
	// hist is the run's history; user restores are in it too.
	hist *history
	// changing is set while a membership change waits for its answer:
	// the harness makes one at a time (ops_test.go).
	changing atomic.Bool

	mu sync.Mutex // guards every node's cur and disk, and preVote
	// preVote overrides a server's pre-vote setting (removed-returns).
	preVote map[raft.ServerID]bool

	// leases turns lease reads on for every server (lease_test.go);
	// clockRate, when set, overrides each server's clock rate. Both are
	// set before the run starts.
	leases    bool
	clockRate func(raft.ServerID) float64
}

// node is one server.
type node struct {
	id   raft.ServerID
	addr raft.ServerAddress
	// disk is replaced when a wipe-disk episode wipes it; read it with
	// cluster.diskOf.
	disk *disk
	// starts counts incarnations.
	starts int
	// cur is the running incarnation, nil while the server is down.
	cur *incarnation
	// maxTerm is the highest term any incarnation published.
	maxTerm atomic.Uint64
	// uncommittedRestore is set when an incarnation stopped itself
	// because its FSM held a user restore the cluster did not commit: it
	// stays down until readmitWiped wipes it and adds it back.
	uncommittedRestore atomic.Bool
}

// incarnation is one life of a server, from start to crash.
type incarnation struct {
	node  *node
	name  string
	num   int
	raft  *raft.Raft
	fsm   *kvFSM
	trans *faultTransport
	// leaderSince is when it last became leader, in Unix nanoseconds of
	// fake time; 0 if never.
	leaderSince atomic.Int64
}

func newCluster(sched *schedule, net *network, check *checker, stats *runStats, logs *logRing, events *eventLog) *cluster {
	c := &cluster{
		sched:   sched,
		net:     net,
		check:   check,
		stats:   stats,
		logs:    logs,
		events:  events,
		changed: make(chan struct{}, 1),
		preVote: make(map[raft.ServerID]bool),
		leases:  leasesOn(sched.seed),
	}
	net.campaigning = c.campaigning
	net.stats = stats
	for i, id := range sched.all() {
		n := &node{
			id:   id,
			addr: raft.ServerAddress(fmt.Sprintf("addr-%d", i)),
		}
		n.disk = newDisk(id, net.disk, check)
		n.disk.logFaults = net
		net.register(n.id, n.addr)
		c.nodes = append(c.nodes, n)
	}
	return c
}

// bootstrap writes the initial configuration to the disk of every server
// in it; spares start empty.
func (c *cluster) bootstrap() error {
	var conf raft.Configuration
	for _, id := range c.sched.servers {
		n := c.node(id)
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: n.id, Address: n.addr})
	}
	for _, id := range c.sched.servers {
		n := c.node(id)
		h := c.diskOf(n).open()
		_, trans := raft.NewInmemTransport(n.addr)
		if err := raft.BootstrapCluster(c.config(n.id), h, h, h.snapshots(), trans, conf); err != nil {
			return fmt.Errorf("bootstrapping %s: %w", n.id, err)
		}
	}
	return nil
}

// config is a server's configuration. The timeouts are short, which costs
// nothing in fake time; only their ratios shape the run.
func (c *cluster) config(id raft.ServerID) *raft.Config {
	conf := raft.DefaultConfig()
	conf.LocalID = id
	conf.HeartbeatTimeout = heartbeatTimeout
	conf.ElectionTimeout = heartbeatTimeout
	conf.LeaderLeaseTimeout = heartbeatTimeout
	conf.CommitTimeout = heartbeatTimeout / 10
	conf.MaxAppendEntries = c.sched.maxAppendEntries
	conf.BatchApplyCh = c.sched.batchApplyCh
	conf.PreVoteDisabled = !c.preVoteOf(id)
	conf.LogWriteStallTimeout = stallTimeout
	conf.SnapshotThreshold = c.sched.snapshotThreshold
	conf.TrailingLogs = c.sched.trailingLogs
	conf.SnapshotInterval = c.sched.snapshotInterval
	conf.Logger = c.logs.logger(string(id))
	// Every step of the node's run loop checks the write path's
	// invariants (the raft package's write_path_invariants.go); a break is
	// a violation of the run, reported with the node's state.
	testhook.CheckInvariants(conf, func(err error) {
		c.check.violation("%v", err)
	})
	c.leaseConfig(conf)
	return conf
}

// preVoteOf returns whether id runs pre-vote.
func (c *cluster) preVoteOf(id raft.ServerID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if on, ok := c.preVote[id]; ok {
		return on
	}
	return c.sched.preVote
}

// setPreVote sets id's pre-vote setting from its next start on.
func (c *cluster) setPreVote(id raft.ServerID, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.preVote[id] = on
}

// diskOf returns n's disk.
func (c *cluster) diskOf(n *node) *disk {
	c.mu.Lock()
	defer c.mu.Unlock()
	return n.disk
}

func (c *cluster) poke() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// current returns n's running incarnation, or nil.
func (c *cluster) current(n *node) *incarnation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return n.cur
}

// running returns the running incarnations.
func (c *cluster) running() []*incarnation {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*incarnation
	for _, n := range c.nodes {
		if n.cur != nil {
			out = append(out, n.cur)
		}
	}
	return out
}

func (c *cluster) node(id raft.ServerID) *node {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	panic(fmt.Sprintf("fuzzy: no server %q", id))
}

// start runs a new incarnation of n on its disk.
func (c *cluster) start(n *node) error {
	n.starts++
	name := fmt.Sprintf("%s#%d", n.id, n.starts)
	inc := &incarnation{node: n, name: name, num: n.starts}
	conf := c.config(n.id)
	conf.Logger = c.logs.watchingLogger(string(n.id), n)
	inc.trans = newFaultTransport(c.net, n.id, n.addr, n.starts, c.stats, c.check)
	inc.trans.preVote = !conf.PreVoteDisabled
	inc.trans.lateTimeoutNow = c.lateTimeoutNow
	inc.trans.timeoutNowValid = c.timeoutNowValidity(n, n.starts)
	var trans raft.Transport = inc.trans
	if c.sched.strict {
		trans = newStrictTransport(inc.trans)
	}
	if err := capabilities(trans); err != nil {
		return err
	}
	inc.fsm = newKVFSM(name, c.check, c.stats, c.poke)
	inc.fsm.slow = func() time.Duration { return c.net.fsmDelay(n.id) }
	h := c.diskOf(n).open()
	r, err := raft.NewRaft(conf, inc.fsm, h, h, h.snapshots(), trans)
	if err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	inc.raft = r
	inc.fsm.started.Store(true)
	// A server's term is durable before it is published, so a restart
	// never starts below a term an earlier incarnation published.
	if term, prev := r.CurrentTerm(), n.maxTerm.Load(); term < prev {
		c.check.violation("%s started in term %d, but an earlier incarnation had published term %d", name, term, prev)
	}
	r.RegisterObserver(raft.NewObserver(nil, false, func(o *raft.Observation) bool {
		c.observe(inc, o)
		return false
	}))
	c.net.setUp(n.id, n.starts)
	c.mu.Lock()
	n.cur = inc
	for _, other := range c.nodes {
		if other == n || other.cur == nil {
			continue
		}
		inc.trans.Connect(other.addr, other.cur.trans)
		other.cur.trans.Connect(n.addr, inc.trans)
	}
	c.mu.Unlock()
	c.events.add("start %s (term %d)", name, r.CurrentTerm())
	return nil
}

// observe runs on the observed node's goroutines, synchronously: the term
// read here is the one the observed change happened in.
func (c *cluster) observe(inc *incarnation, o *raft.Observation) {
	term := inc.raft.CurrentTerm()
	for {
		old := inc.node.maxTerm.Load()
		if term <= old || inc.node.maxTerm.CompareAndSwap(old, term) {
			break
		}
	}
	if s, ok := o.Data.(raft.RaftState); ok && s == raft.Leader {
		c.check.onLeader(inc.node.id, term)
		c.onLeaderChecks(inc, term)
		c.events.add("%s leads term %d", inc.name, term)
	}
	c.poke()
}

// crash stops n at once: its links go dead, its disk keeps only what had
// landed, and the node is shut down.
func (c *cluster) crash(n *node) {
	c.mu.Lock()
	inc := n.cur
	n.cur = nil
	d := n.disk
	if inc != nil {
		for _, other := range c.nodes {
			if other.cur != nil {
				other.cur.trans.Disconnect(n.addr)
			}
		}
	}
	c.mu.Unlock()
	if inc == nil {
		return
	}
	c.net.setUp(n.id, 0)
	inc.trans.kill()
	d.crash()
	// Whatever term it published was durable before it was published.
	if term := inc.raft.CurrentTerm(); term > n.maxTerm.Load() {
		n.maxTerm.Store(term)
	}
	c.awaitShutdown(inc)
	c.events.add("crash %s (term %d, disk term %d)", inc.name, inc.raft.CurrentTerm(), d.currentTerm())
}

// shutdownTimeout bounds, in fake time, how long a node may take to shut
// down. Shutdown does not wait for store calls, and every other goroutine
// of a node must stop promptly.
const shutdownTimeout = 50 * heartbeatTimeout

// awaitShutdown shuts inc down and waits for it. A Shutdown that does not
// return is a bug that would otherwise hang the run while the other
// servers' timers keep fake time moving; it crashes the test binary with
// the run so far and every goroutine's stack.
func (c *cluster) awaitShutdown(inc *incarnation) {
	done := make(chan struct{})
	go func() {
		inc.raft.Shutdown().Error()
		close(done)
	}()
	t := time.NewTimer(shutdownTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		fmt.Fprintf(os.Stderr, "FAILED seed %d: Shutdown of %s did not return within %v of fake time\n\nschedule: %s\n"+
			"servers:\n%s\nevents:\n%s\nlast log lines:\n%s\n"+
			"replay: RAFT_FUZZY_SEED=%d RAFT_FUZZY_LENGTH=%v go test ./fuzzy/ -run TestFuzzyReplay -v\n",
			c.sched.seed, inc.name, shutdownTimeout, c.sched, c.describe(), c.events.tail(100), c.logs.tail(),
			c.sched.seed, c.sched.length)
		debug.SetTraceback("all")
		panic(fmt.Sprintf("fuzzy: seed %d: Shutdown of %s hung", c.sched.seed, inc.name))
	}
}

// reviveSelfStopped restarts the servers that shut themselves down (after
// a failed write of their term, say), as a supervisor would.
func (c *cluster) reviveSelfStopped() {
	for _, n := range c.nodes {
		inc := c.current(n)
		if inc == nil || inc.raft.State() != raft.Shutdown {
			continue
		}
		c.events.add("%s shut itself down", inc.name)
		c.crash(n)
		c.restart(n)
	}
}

// leader returns the running incarnation that leads in the highest term,
// or nil.
func (c *cluster) leader() *incarnation {
	var best *incarnation
	for _, inc := range c.running() {
		if inc.raft.State() != raft.Leader {
			continue
		}
		if best == nil || inc.raft.CurrentTerm() > best.raft.CurrentTerm() {
			best = inc
		}
	}
	return best
}

// waitFor waits until cond holds, re-checking whenever something changes
// and every few milliseconds of fake time, for at most timeout.
func (c *cluster) waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(heartbeatTimeout / 10)
	defer tick.Stop()
	for !cond() {
		select {
		case <-c.changed:
		case <-tick.C:
		case <-deadline.C:
			return cond()
		}
	}
	return true
}

// shutdown stops every running server cleanly, then waits for every
// message still in flight. Disks are crashed last, which wakes store calls
// that Shutdown left parked in a slow write, so that nothing is left
// running when the bubble ends.
func (c *cluster) shutdown() {
	for _, inc := range c.running() {
		c.awaitShutdown(inc)
	}
	c.mu.Lock()
	for _, n := range c.nodes {
		n.cur = nil
	}
	c.mu.Unlock()
	for _, n := range c.nodes {
		c.diskOf(n).crash()
	}
	c.net.flights.Wait()
	c.ops.Wait()
}

// describe summarises every server, for failure reports.
func (c *cluster) describe() string {
	var out string
	for _, n := range c.nodes {
		inc := c.current(n)
		if inc == nil {
			out += fmt.Sprintf("  %s: down (disk term %d)\n", n.id, c.diskOf(n).currentTerm())
			continue
		}
		s := inc.raft.Stats()
		var voters, others []raft.ServerID
		for _, m := range members(inc) {
			if m.Suffrage == raft.Voter {
				voters = append(voters, m.ID)
			} else {
				others = append(others, m.ID)
			}
		}
		out += fmt.Sprintf("  %s: %s term=%s last=%s commit=%s applied=%s snapshot=%s voters=%v nonvoters=%v\n", inc.name,
			s["state"], s["term"], s["last_log_index"], s["commit_index"], s["applied_index"], s["last_snapshot_index"],
			voters, others)
	}
	return out
}
