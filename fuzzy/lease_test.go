package fuzzy

import (
	"errors"
	"hash/fnv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/quorumkit/raft"
	"github.com/quorumkit/raft/internal/testhook"
)

// Lease reads (the raft package's lease.go) in the harness.
//
// Every server runs on a clock that drifts from fake time by up to
// maxClockDrift, different for each server and each seed, within the
// margin the lease takes off (leaseDrift). In runs with an odd seed every
// server also has leases on, with the startup vote hold, so ReadLease
// answers from the lease while it is held; in the others ReadLease always
// takes the ReadIndex path.
//
// The lease's argument assumes a TimeoutNow is delivered while the leader
// that sent it still leads in the term it sent it in, or never: the
// request carries no term, so a server cannot tell a stale one. In runs
// with leases on, the network drops a TimeoutNow (late copies of the
// late-timeout-now fault included) once its sender no longer leads in
// that term. The other runs keep the fault unrestricted.

const (
	// leaseDrift is the servers' LeaseClockDrift: a tenth of the lease.
	leaseDrift = heartbeatTimeout / 10
	// maxClockDrift bounds how much faster or slower than fake time a
	// server's clock runs. Two servers then measure an interval of
	// heartbeatTimeout-leaseDrift at most (1.04/0.96)·90ms ≈ 97.5ms apart
	// in the worst case, inside the 100ms lease.
	maxClockDrift = 0.04
)

// leasesOn reports whether a run of seed runs with leases on.
func leasesOn(seed uint64) bool { return seed%2 == 1 }

// clockRate returns the rate of id's clock in a run of seed, within
// maxClockDrift of 1. It is derived from the seed without drawing from
// the schedule's random numbers, so the schedule of a seed is unchanged.
func clockRate(seed uint64, id raft.ServerID) float64 {
	h := fnv.New64a()
	var b [8]byte
	for i := range b {
		b[i] = byte(seed >> (8 * i))
	}
	h.Write(b[:])
	h.Write([]byte(id))
	unit := float64(h.Sum64()%10001) / 10000 // 0..1
	return 1 - maxClockDrift + 2*maxClockDrift*unit
}

// leaseConfig sets a server's clock and, in runs with leases on, its
// lease settings.
func (c *cluster) leaseConfig(conf *raft.Config) {
	rate := clockRate(c.sched.seed, conf.LocalID)
	if c.clockRate != nil {
		rate = c.clockRate(conf.LocalID)
	}
	testhook.ScaleClock(conf, rate)
	if !c.leases {
		return
	}
	conf.LeaseReadTimeout = heartbeatTimeout
	conf.LeaseClockDrift = leaseDrift
	conf.StartupVoteHold = heartbeatTimeout
}

// timeoutNowValidity returns, for incarnation num of n, what its transport
// calls as it sends a TimeoutNow: a check that the TimeoutNow may still be
// delivered, because its sender still leads in the term it was sent in.
// nil when leases are off: every TimeoutNow may be delivered, however
// late.
func (c *cluster) timeoutNowValidity(n *node, num int) func() func() bool {
	if !c.leases {
		return nil
	}
	return func() func() bool {
		inc := c.current(n)
		if inc == nil || inc.num != num {
			return func() bool { return false }
		}
		term := inc.raft.CurrentTerm()
		return func() bool {
			now := c.current(n)
			ok := now == inc && inc.raft.State() == raft.Leader && inc.raft.CurrentTerm() == term
			if !ok {
				c.events.add("a TimeoutNow from %s (term %d) dropped: its sender no longer leads in that term", inc.name, term)
			}
			return ok
		}
	}
}

// leaseRead asks the server for a lease read (raft.ReadLease): on a leader
// holding its lease, the commit index with no round trip; otherwise the
// ReadIndex path. Either way the index covers every write that completed
// before the call, and the read of the same incarnation's FSM once it
// applied the index is linearizable (see readIndexRead).
type leaseRead struct{}

func (leaseRead) name() string { return "lease" }

func (leaseRead) read(cl *client, inc *incarnation, key string) (kvOutput, outcome) {
	before := testhook.LeaseReads(inc.raft)
	f := inc.raft.ReadLease(enqueueTimeout)
	err, answered := wait(f, clientTimeout)
	if !answered {
		return kvOutput{}, unknown
	}
	if how := classify(err); how != done {
		if how == failed || errors.Is(err, raft.ErrRaftShutdown) {
			cl.redirect(inc)
		}
		return kvOutput{}, how
	}
	index := f.Index()
	if applied := inc.raft.AppliedIndex(); applied < index {
		cl.c.check.violation("%s answered ReadLease with index %d while its FSM had applied only up to %d", inc.name, index, applied)
	}
	if !cl.c.waitFor(clientTimeout, func() bool { return inc.raft.AppliedIndex() >= index }) {
		return kvOutput{}, unknown
	}
	cl.c.stats.leaseReads.Add(1)
	if testhook.LeaseReads(inc.raft) > before {
		// Another client's read on the same server may have moved the
		// count: an approximation, for the report only.
		cl.c.stats.leaseServed.Add(1)
	}
	v, ok := inc.fsm.get(key)
	return kvOutput{Value: v, Exists: ok}, done
}

// TestLeaseMarginMatters shows what the drift margin protects against, in
// a fixed scenario checked like any run. A leader is cut off from the two
// other servers of a three-server cluster after a write; they elect a new
// leader, which overwrites the key; then a client reads the key from the
// old leader with ReadLease. With every clock within the margin the old
// leader's lease has run out by then and the read cannot complete: the
// history is linearizable. With the old leader's clock running at a
// twentieth of the others' speed, far beyond the margin, its lease
// outlives the new leader's election, the read returns the overwritten
// value, and the checker rejects the history.
func TestLeaseMarginMatters(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rate  float64 // the old leader's clock rate; the others run at 1
		stale bool
	}{
		{"drift within the margin", 1 - maxClockDrift, false},
		{"drift beyond the margin", 0.05, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ops []porcupine.Operation
			var read kvOutput
			var how outcome
			synctest.Test(t, func(t *testing.T) {
				ops, read, how = leaseScenario(t, tc.rate)
			})
			err := checkLinearizable(ops, 0)
			switch {
			case tc.stale && err == nil:
				t.Fatalf("the checker accepted a history with a read from an expired lease (read %+v, outcome %v)", read, how)
			case tc.stale && (how != done || read.Value != "old"):
				t.Fatalf("the cut-off leader's lease read gave %+v (outcome %v), want the stale value", read, how)
			case !tc.stale && err != nil:
				t.Fatalf("drift within the margin: %v", err)
			case !tc.stale && how == done:
				t.Fatalf("the cut-off leader answered a lease read after the others elected a new leader: %+v", read)
			}
			if tc.stale {
				t.Logf("as expected, the checker caught the stale read: %v", err)
			}
		})
	}
}

// leaseScenario plays the scenario of TestLeaseMarginMatters with the old
// leader's clock at rate, and returns the history, the old leader's lease
// read and its outcome.
func leaseScenario(t *testing.T, rate float64) ([]porcupine.Operation, kvOutput, outcome) {
	const seed = 1
	sched := newSchedule(seed, time.Second)
	sched.servers = []raft.ServerID{"n0", "n1", "n2"}
	sched.spares = nil
	sched.episodes = nil
	sched.clients = 2
	sched.strict = false
	sched.preVote = true
	sched.diskBase = 0
	net := newNetwork(newLockedRand(seed), rpcTimeout, 0)
	check := newChecker()
	stats := &runStats{}
	logs := newLogRing(300)
	events := newEventLog()
	c := newCluster(sched, net, check, stats, logs, events)
	c.leases = true
	const slow = "n0"
	c.clockRate = func(id raft.ServerID) float64 {
		if id == slow {
			return rate
		}
		return 1
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\nevents:\n%s\nservers:\n%s\nlogs:\n%s", append(args, events.tail(100), c.describe(), logs.tail())...)
	}
	if err := c.bootstrap(); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes {
		c.restart(n)
	}
	defer c.shutdown()

	// Make the slow server the leader.
	if !c.waitFor(10*time.Second, func() bool { return c.leader() != nil }) {
		fail("no leader")
	}
	if l := c.leader(); l.node.id != slow {
		if err := l.raft.LeadershipTransferToServer(slow, c.node(slow).addr).Error(); err != nil {
			fail("transfer to %s: %v", slow, err)
		}
	}
	if !c.waitFor(10*time.Second, func() bool { l := c.leader(); return l != nil && l.node.id == slow }) {
		fail("%s did not become the leader", slow)
	}
	old := c.leader()

	hist := &history{}
	writer, reader := newClient(0, c, hist, seed), newClient(1, c, hist, seed)
	put := func(inc *incarnation, value string) {
		t.Helper()
		in := kvInput{Op: opPut, Key: "k", Value: value}
		call := hist.stamp()
		out, how := writer.apply(inc, kvCommand{Op: opPut, Key: "k", Value: value})
		hist.record(writer.id, in, out, call, hist.stamp(), how)
		if how != done {
			fail("writing %s through %s: outcome %v", value, inc.name, how)
		}
	}
	put(old, "old")
	// A lease read on the leader before the cut: served from its lease.
	if out, how := (leaseRead{}).read(reader, old, "k"); how != done || out.Value != "old" {
		fail("lease read before the cut: %+v, %v", out, how)
	}
	if testhook.LeaseReads(old.raft) == 0 {
		fail("the leader answered no read from its lease")
	}

	// Cut the old leader off; the others elect a new one, which
	// overwrites the key.
	cut := &activeEpisode{ep: &episode{kind: faultIsolateLeader, length: time.Hour}, start: time.Now(), cut: make(map[link]bool)}
	for _, id := range sched.servers {
		if id != slow {
			cut.cut[link{slow, id}] = true
			cut.cut[link{id, slow}] = true
		}
	}
	net.activate(cut)
	var next *incarnation
	if !c.waitFor(10*time.Second, func() bool {
		for _, inc := range c.running() {
			if inc != old && inc.raft.State() == raft.Leader {
				next = inc
				return true
			}
		}
		return false
	}) {
		fail("no new leader")
	}
	put(next, "new")
	if old.raft.State() != raft.Leader {
		t.Logf("%s stepped down before the read", old.name)
	}

	call := hist.stamp()
	in := kvInput{Op: opGet, Key: "k"}
	out, how := (leaseRead{}).read(reader, old, "k")
	hist.record(reader.id, in, out, call, hist.stamp(), how)
	if v := check.violations(); len(v) > 0 {
		fail("violations: %v", v)
	}
	return hist.operations(), out, how
}
