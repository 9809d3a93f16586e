package interop

import (
	"fmt"
	"testing"
	"time"
)

// TestCrossLibMembershipChangesUnderEitherLeader changes the membership of
// a mixed cluster with a leader of each library in turn. The cluster's log
// is compacted before every join, so each new server first catches up
// through a snapshot sent by the leader of the other library.
//
//  1. A reference leader adds a voter and a nonvoter of ours and removes a
//     voter of ours.
//  2. Leadership moves, by LeadershipTransferToServer, to the voter of ours
//     that joined in step 1. It adds a voter and a nonvoter of the
//     reference, promotes that nonvoter to voter, and removes a reference
//     voter.
//  3. Our leader removes itself: it must step down and, with
//     ShutdownOnRemove, shut down; a reference node takes over.
//
// After each step every running member reports the same configuration
// through GetConfiguration, the cluster commits new commands, nonvoters
// included, and every FSM holds the same commands, each once.
func TestCrossLibMembershipChangesUnderEitherLeader(t *testing.T) {
	parallelUnlessRace(t)
	start := time.Now()
	c := newCluster(t, crosslibSnapshotSettings)
	r1 := c.addNode("reference-1", libRef)
	o2 := c.addNode("ours-2", libOurs)
	r3 := c.addNode("reference-3", libRef)
	c.bootstrap(r1, o2, r3)
	voter := func(n *mixedNode) mixedMember { return mixedMember{ID: n.id, Addr: n.addr, Voter: true} }
	nonvoter := func(n *mixedNode) mixedMember { return mixedMember{ID: n.id, Addr: n.addr} }

	// 1. A reference leader changes the membership.
	c.leadWith(r1)
	o4 := c.addNode("ours-4", libOurs)
	o5 := c.addNode("ours-5", libOurs)
	crosslibJoin(c, r1, o4, true, "step1")
	crosslibJoin(c, r1, o5, false, "step1")
	crosslibRemove(c, r1, o2)
	c.checkConfigurations([]mixedMember{voter(r1), voter(r3), voter(o4), nonvoter(o5)})
	ack := c.submitMany("step1-after", 20, 0)
	c.checkSameHistory(ack.index)

	// 2. Our leader changes the membership.
	c.leadWith(o4)
	r6 := c.addNode("reference-6", libRef)
	r7 := c.addNode("reference-7", libRef)
	crosslibJoin(c, o4, r6, true, "step2")
	crosslibJoin(c, o4, r7, false, "step2")
	c.checkConfigurations([]mixedMember{voter(r1), voter(r3), voter(o4), nonvoter(o5), voter(r6), nonvoter(r7)})
	c.change(o4, fmt.Sprintf("AddVoter(%s) promotes the nonvoter", r7), func(l *mixedNode) error { return l.addVoter(r7) })
	crosslibRemove(c, o4, r3)
	c.checkConfigurations([]mixedMember{voter(r1), voter(o4), nonvoter(o5), voter(r6), voter(r7)})
	ack = c.submitMany("step2-after", 20, 0)
	c.checkSameHistory(ack.index)

	// 3. Our leader removes itself.
	term := o4.term()
	c.change(o4, fmt.Sprintf("RemoveServer(%s), the leader itself", o4), func(l *mixedNode) error { return l.removeServer(o4) })
	c.setMember(o4, false)
	c.eventually(mixedSettle, fmt.Sprintf("%s, removed while leading, shuts down", o4), func() bool { return o4.state() == "Shutdown" })
	l := c.waitLeader()
	if l.term() <= term || l.library() != libRef {
		t.Fatalf("after %s removed itself in term %d, %s (%s) leads in term %d; want a reference node in a later term",
			o4, term, l, l.library(), l.term())
	}
	c.logf("%s (%s) leads in term %d after %s removed itself", l, l.library(), l.term(), o4)
	if _, err := o4.stop(); err != nil {
		t.Fatal(err)
	}
	c.checkConfigurations([]mixedMember{voter(r1), nonvoter(o5), voter(r6), voter(r7)})
	ack = c.submitMany("step3-after", 20, 0)
	seq := c.checkSameHistory(ack.index)
	c.checkOnce(seq, nil)
	t.Logf("%d commands in %d log entries, identical on all members; took %v", len(seq), ack.index, time.Since(start).Round(time.Millisecond))
}

// crosslibJoin commits enough on leader l for its log to be compacted, starts
// n as a fresh server and adds it as a voter or nonvoter. n must then
// catch up through a snapshot from l: it restores one into its FSM and
// its store lists one of l's snapshots.
func crosslibJoin(c *mixedCluster, l, n *mixedNode, asVoter bool, name string) {
	c.t.Helper()
	c.submitMany(fmt.Sprintf("%s-before-%s", name, n), 2*int(c.set.snapshotThreshold)+int(c.set.trailingLogs), 200)
	c.waitLogCompactedPast(l, 1)
	c.startFresh(n)
	if asVoter {
		c.change(l, fmt.Sprintf("AddVoter(%s)", n), func(l *mixedNode) error { return l.addVoter(n) })
	} else {
		c.change(l, fmt.Sprintf("AddNonvoter(%s)", n), func(l *mixedNode) error { return l.addNonvoter(n) })
	}
	c.setMember(n, true)
	ack := c.mustSubmit(fmt.Sprintf("%s-joined-%s", name, n))
	c.waitApplied(ack.index)
	restores := n.currentFSM().restoreLog()
	if len(restores) == 0 {
		c.t.Fatalf("%s joined and caught up without restoring a snapshot, though %s's log was compacted", n, l)
	}
	nSnaps, err := n.snapshots()
	if err != nil {
		c.t.Fatal(err)
	}
	lSnaps, err := l.snapshots()
	if err != nil {
		c.t.Fatal(err)
	}
	for _, s := range nSnaps {
		if mixedSnapHas(lSnaps, s.Index, s.Term) {
			c.logf("%s (%s) joined through %s (%s)'s snapshot at index %d, term %d; FSM restores %v",
				n, n.library(), l, l.library(), s.Index, s.Term, restores)
			crosslibCompareSnapshotFiles(c, l, n, s, lSnaps)
			return
		}
	}
	// The leader may have taken and reaped snapshots since; what n holds
	// must then at least be a snapshot it did not take itself: one it
	// restored.
	c.logf("%s lists snapshots %v, %s lists %v; FSM restores %v", n, nSnaps, l, lSnaps, restores)
	if len(nSnaps) == 0 {
		c.t.Fatalf("%s restored a snapshot but its store lists none", n)
	}
}

// crosslibRemove removes n through the leader l and stops n, as an operator
// would; a removed follower is not told to shut down.
func crosslibRemove(c *mixedCluster, l, n *mixedNode) {
	c.t.Helper()
	c.change(l, fmt.Sprintf("RemoveServer(%s)", n), func(l *mixedNode) error { return l.removeServer(n) })
	c.setMember(n, false)
	if _, err := n.stop(); err != nil {
		c.t.Fatal(err)
	}
}
