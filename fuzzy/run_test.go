package fuzzy

import (
	"fmt"
	"maps"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/quorumkit/raft"
)

// One run: a cluster, its clients and its fault schedule inside a synctest
// bubble; then, outside the bubble, the linearizability check.

// recoveryTimeout bounds, in fake time, how long a healed cluster may take
// to elect a leader, commit an entry and bring every server up to it.
const recoveryTimeout = 100 * heartbeatTimeout

// outcomeOf is what one run produced.
type runResult struct {
	sched    *schedule
	ops      []porcupine.Operation
	unknownN int
	failedN  int
	applied  int
	// snapshots counts the snapshots that landed on disks.
	snapshots int
	// restoresMade and restoresCommitted count the user restores.
	restoresMade, restoresCommitted int
	// droppedAtStart counts the uncommitted user restores that a server
	// loaded as it started and a leader's snapshot then replaced.
	droppedAtStart int
	// quorumStopped says why the run ended waiting for an operator, if it
	// did (cluster.quorumStopped).
	quorumStopped string
	simTime       time.Duration
	failures      []string
	events        *eventLog
	logs          *logRing
	desc          string
	stats         *runStats
}

// run plays one seed and reports any failure on t.
func run(t *testing.T, seed uint64, length time.Duration) *runResult {
	t.Helper()
	var res *runResult
	var live liveRun
	stopWatchdog := watchdog(seed, length, &live)
	// synctest.Test calls t.FailNow, which ends this goroutine, when the
	// bubble's test failed (the race detector found a race during it,
	// say): the watchdog must stop then too, or minutes later it crashes
	// the test binary with a false report of a hang.
	defer stopWatchdog()
	synctest.Test(t, func(t *testing.T) {
		res = runBubble(seed, length, &live)
	})
	stopWatchdog()
	if len(res.failures) == 0 {
		if err := checkLinearizable(res.ops, seed); err != nil {
			res.failures = append(res.failures, err.Error())
		}
	}
	if len(res.failures) > 0 {
		t.Error(res.report())
	}
	return res
}

// wallLimit bounds the wall time of one run's bubble. Fake time moves
// only when every goroutine of the bubble is blocked, so a livelock (a loop
// that never waits) stops the clock and the run would hang instead of
// failing; and a hang while the clock moves (a Shutdown that never
// returns, with the servers still heartbeating) would run forever too.
// RAFT_FUZZY_WALL_LIMIT overrides it.
func wallLimit() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("RAFT_FUZZY_WALL_LIMIT")); err == nil && d > 0 {
		return d
	}
	return 3 * time.Minute
}

// liveRun lets the watchdog, outside the bubble, see the run inside it.
type liveRun struct {
	mu sync.Mutex
	c  *cluster // guarded by mu
}

func (l *liveRun) set(c *cluster) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.c = c
}

// describe returns the run's events and servers so far.
func (l *liveRun) describe() string {
	l.mu.Lock()
	c := l.c
	l.mu.Unlock()
	if c == nil {
		return ""
	}
	return fmt.Sprintf("servers:\n%s\nevents:\n%s\nlast log lines:\n%s", c.describe(), c.events.tail(100), c.logs.tail())
}

// watchdog crashes the test binary, with the seed, its schedule, what the
// run did so far and every goroutine's stack, if the run takes longer than
// wallLimit of wall time. It runs outside the bubble; the returned function
// stops it.
func watchdog(seed uint64, length time.Duration, live *liveRun) (stop func()) {
	limit := wallLimit()
	timer := time.AfterFunc(limit, func() {
		fmt.Fprintf(os.Stderr, "FAILED seed %d: the run took more than %v of wall time. Either fake time stopped "+
			"moving (a goroutine of the bubble never blocks: a livelock), or something hangs while time moves "+
			"(the events show where the schedule stopped; a crash waiting for Shutdown, say)\n\nschedule: %s\n%s\n"+
			"replay: RAFT_FUZZY_SEED=%d RAFT_FUZZY_LENGTH=%v go test ./fuzzy/ -run TestFuzzyReplay -v\n",
			seed, limit, newSchedule(seed, length), live.describe(), seed, length)
		debug.SetTraceback("all")
		panic(fmt.Sprintf("fuzzy: seed %d livelocked", seed))
	})
	return func() { timer.Stop() }
}

// runBubble runs the cluster part of a run. It must be called inside a
// bubble; when it returns every node is shut down, and the bubble's end
// proves no goroutine outlived them.
func runBubble(seed uint64, length time.Duration, live *liveRun) *runResult {
	sched := newSchedule(seed, length)
	rnd := newLockedRand(seed)
	net := newNetwork(rnd, rpcTimeout, sched.diskBase)
	check := newChecker()
	events := newEventLog()
	res := &runResult{sched: sched, events: events, logs: newLogRing(300), stats: &runStats{}}
	c := newCluster(sched, net, check, res.stats, res.logs, events)
	live.set(c)
	start := time.Now()
	defer func() {
		res.simTime = time.Since(start)
		res.failures = append(res.failures, check.violations()...)
	}()

	if err := c.bootstrap(); err != nil {
		check.violation("%v", err)
		return res
	}
	for _, n := range c.nodes {
		c.restart(n)
	}
	defer c.shutdown()

	hist := &history{}
	c.hist = hist
	stop := make(chan struct{})
	var clients sync.WaitGroup
	for i := range sched.clients {
		cl := newClient(i, c, hist, seed)
		clients.Go(func() { cl.run(stop) })
	}

	c.play(start)

	// Heal, restart whoever is down, and check that the cluster recovers.
	net.healAll()
	events.add("heal everything")
	c.reviveSelfStopped()
	for _, n := range c.nodes {
		if c.current(n) == nil {
			c.restart(n)
		}
	}
	lagging := c.laggingBehindRemovals()
	close(stop)
	clients.Wait()
	c.passUnconfirmedRestores()
	c.readmitWiped()
	if c.quorumStopped == "" {
		c.converge(lagging)
	}
	res.quorumStopped = c.quorumStopped
	check.checkApplySequences()
	check.checkSnapshots()
	res.checkCapabilities(c)
	res.desc = c.describe()
	res.ops = hist.operations()
	_, res.unknownN, res.failedN = hist.counts()
	res.applied = check.appliedCount()
	res.snapshots = check.snapshotCount()
	res.restoresMade, res.restoresCommitted = check.restoreCount()
	res.droppedAtStart = check.droppedAtStartCount()
	return res
}

// converge waits for one leader that all servers follow, commits a final
// entry, and waits until every member of the final configuration applied
// it; then their FSMs must hold the same state. Servers the configuration
// left out (spares never added, removed servers, running or not) are not
// waited for: they need not hear of anything after their removal.
func (c *cluster) converge(lagging []laggingPair) {
	deadline := time.Now().Add(recoveryTimeout)
	// A membership change still waiting for its answer could change the
	// configuration after it is read.
	if !c.waitFor(recoveryTimeout, func() bool { return !c.changing.Load() }) {
		c.check.violation("liveness: a membership change was not answered within %v of healing\n%s", recoveryTimeout, c.describe())
		return
	}
	leader, index, term, ok := c.commitBarrier(time.Until(deadline))
	if !ok {
		c.check.violation("liveness: no leader committed an entry within %v of healing\n%s", recoveryTimeout, c.describe())
		return
	}
	base := c.stabilityBaseline(leader, term)
	final := members(leader)
	c.events.add("barrier committed at index %d by %s; final configuration %v", index, leader.name, final)
	var want []*node
	for _, s := range final {
		want = append(want, c.node(s.ID))
	}
	ok = c.waitFor(time.Until(deadline), func() bool {
		for _, n := range want {
			inc := c.current(n)
			if inc == nil || inc.raft.AppliedIndex() < index {
				return false
			}
		}
		return true
	})
	if !ok {
		c.check.violation("liveness: not every member of %v applied index %d within %v of healing\n%s",
			final, index, recoveryTimeout, c.describe())
		return
	}
	c.checkStable(leader, term, base, lagging)
	var first *incarnation
	var state map[string]string
	for _, n := range want {
		inc := c.current(n)
		got := inc.fsm.state()
		if first == nil {
			first, state = inc, got
			continue
		}
		if !maps.Equal(got, state) {
			c.check.violation("%s and %s hold different states after applying index %d:\n  %v\n  %v",
				first.name, inc.name, index, state, got)
		}
	}
}

// commitBarrier waits for a leader that commits a barrier, for at most
// timeout, and returns it with the barrier's index and the term the leader
// held when it committed it (read before the barrier: read later, it could
// be the term of whatever deposed it).
func (c *cluster) commitBarrier(timeout time.Duration) (leader *incarnation, index, term uint64, ok bool) {
	ok = c.waitFor(timeout, func() bool {
		l := c.leader()
		if l == nil {
			return false
		}
		t := l.raft.CurrentTerm()
		f := l.raft.Barrier(enqueueTimeout)
		err, answered := wait(f, clientTimeout)
		if !answered || err != nil {
			return false
		}
		index = f.(raft.IndexFuture).Index()
		leader, term = l, t
		return true
	})
	return leader, index, term, ok
}

// checkCapabilities fails a run in which a feature the fault transport
// should carry was never used: a wrapper that loses one would otherwise
// switch it off silently.
func (r *runResult) checkCapabilities(c *cluster) {
	if r.stats.heartbeatsFastPath.Load() == 0 {
		c.check.violation("no heartbeat took the fast path: the fault transport lost SetHeartbeatHandler")
	}
	if r.stats.pipelined.Load() == 0 {
		c.check.violation("no AppendEntries was pipelined: the fault transport lost pipelining")
	}
	if r.sched.preVote && r.stats.preVotes.Load() == 0 {
		c.check.violation("no pre-vote was sent: the fault transport lost pre-vote")
	}
	if n := r.stats.preVotesDisabled.Load(); n > 0 {
		c.check.violation("%d pre-votes were sent by servers with pre-vote disabled", n)
	}
}

// report describes a failed run: the seed, the schedule, what happened,
// and how to replay it.
func (r *runResult) report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "FAILED seed %d (%d operations in the history, %d unknown, %d failed)\n",
		r.sched.seed, len(r.ops), r.unknownN, r.failedN)
	for _, f := range r.failures {
		fmt.Fprintf(&b, "  - %s\n", f)
	}
	fmt.Fprintf(&b, "\nschedule: %s", r.sched)
	fmt.Fprintf(&b, "\nservers at the end:\n%s", r.desc)
	fmt.Fprintf(&b, "\nevents:\n%s", r.events.tail(200))
	fmt.Fprintf(&b, "\nlast log lines:\n%s", r.logs.tail())
	fmt.Fprintf(&b, "\nreplay: RAFT_FUZZY_SEED=%d RAFT_FUZZY_LENGTH=%v go test ./fuzzy/ -run TestFuzzyReplay -v\n",
		r.sched.seed, r.sched.length)
	return b.String()
}

// summary is a one-line description of a passed run.
func (r *runResult) summary() string {
	st := r.stats
	return fmt.Sprintf("seed %d: %d servers (+%d spares), leases %v, %d ops checked (%d unknown, %d failed, %d read-index reads, %d on followers, "+
		"%d lease reads, about %d from a lease), "+
		"%d commands applied, %v simulated; %d snapshots stored (%d by users), %d installed, %d restored at start; "+
		"membership changes committed: %d add-voter, %d add-nonvoter, %d remove, %d demote; %d transfers; "+
		"%d disks wiped, %d log writes failed while campaigning, %d late TimeoutNows (%d followed by a term rise), "+
		"%d open-loop writes (%d failed, most bytes held %s); %d user restores (%d returned nil, %d committed, %d loaded uncommitted at a start and dropped); kinds %v",
		r.sched.seed, len(r.sched.servers), len(r.sched.spares), leasesOn(r.sched.seed), len(r.ops), r.unknownN, r.failedN, st.readIndexReads.Load(), st.followerReads.Load(),
		st.leaseReads.Load(), st.leaseServed.Load(),
		r.applied, r.simTime.Round(time.Millisecond), r.snapshots, st.userSnapshots.Load(), st.installs.Load(), st.startRestores.Load(),
		st.changes[opAddVoter].Load(), st.changes[opAddNonvoter].Load(), st.changes[opRemove].Load(), st.changes[opDemote].Load(),
		st.transfers.Load(), st.wipes.Load(), st.campaignWriteFailures.Load(), st.lateTimeoutNows.Load(), st.lateTimeoutNowsObeyed.Load(),
		st.openLoopWrites.Load(), st.openLoopFailed.Load(), heldBytesText(st.maxHeldBytes.Load()),
		r.restoresMade, st.restores.Load(), r.restoresCommitted, r.droppedAtStart, kindList(r.sched)) + r.quorumStoppedText()
}

// quorumStoppedText adds to the summary why the run ended waiting for an
// operator, if it did.
func (r *runResult) quorumStoppedText() string {
	if r.quorumStopped == "" {
		return ""
	}
	return "; ended waiting for an operator's recovery (" + r.quorumStopped + "): safety checked, liveness not"
}

// heldBytesText prints the most bytes held, or says the library does not
// tell (see heldBytes).
func heldBytesText(n int64) string {
	if _, ok := heldBytes(nil); !ok {
		return "not exposed"
	}
	return fmt.Sprint(n)
}

func kindList(s *schedule) string {
	var out []string
	for k := range numFaultKinds {
		if s.kinds()[k] {
			out = append(out, k.String())
		}
	}
	return strings.Join(out, ",")
}
