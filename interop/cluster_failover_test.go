package interop

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// mixedClusterShapes are the two ways round of a three-node mixed cluster.
var mixedClusterShapes = [][]mixedLib{
	{libOurs, libOurs, libRef},
	{libOurs, libRef, libRef},
}

func mixedShapeName(libs []mixedLib) string {
	var parts []string
	for _, l := range libs {
		parts = append(parts, string(l))
	}
	return strings.Join(parts, "+")
}

// mixedFailoverTiming is quick but leaves room for a loaded machine: a
// follower waits 300-600ms for its leader, who heartbeats every 30-60ms.
var mixedFailoverTiming = mixedTiming{
	heartbeat: 300 * time.Millisecond,
	election:  300 * time.Millisecond,
	lease:     300 * time.Millisecond,
	commit:    20 * time.Millisecond,
}

// TestMixedClusterAppliesIdenticalSequencesThroughFailoversAndRestarts runs
// three-node clusters mixing both libraries, both ways round, with
// pre-vote on and both libraries snapshotting and compacting their logs
// every few dozen entries. Concurrent clients apply at least 10,000 commands
// through whichever node leads while leaders are killed (at least twice,
// more if leadership also moves by itself), so that a node of each library
// leads and a node of each library is killed and restarted on its stores.
// Each killed node stays down until the new leader has compacted its log
// past the killed node's last entry, so that it can only catch up from a
// snapshot the leader sends; the test goes on until that has happened
// across the libraries both ways, a leader of ours installing a snapshot
// on a reference node and a reference leader on one of ours, and checks
// each time that the restarted node did install one. (A restarted node may
// instead catch up from entries the leader read before compacting them;
// that round does not count, once checked to have lost nothing: see
// harness_catchup_test.go.) Every restarted node
// must catch up, every command must be acknowledged with the position it
// has in every node's FSM, and every node must hold the same log (what is
// left of it) and apply the same commands in the same order.
func TestMixedClusterAppliesIdenticalSequencesThroughFailoversAndRestarts(t *testing.T) {
	parallelUnlessRace(t)
	for _, libs := range mixedClusterShapes {
		t.Run(mixedShapeName(libs), func(t *testing.T) {
			parallelUnlessRace(t)
			testMixedClusterFailovers(t, libs)
		})
	}
}

// mixedInstall is a direction in which a snapshot was installed: from a
// leader of one library to a follower of the other.
type mixedInstall struct{ from, to mixedLib }

func (d mixedInstall) String() string { return fmt.Sprintf("%s leader to %s follower", d.from, d.to) }

var mixedInstallsWanted = []mixedInstall{{from: libOurs, to: libRef}, {from: libRef, to: libOurs}}

func testMixedClusterFailovers(t *testing.T, libs []mixedLib) {
	const (
		// total is how many commands the clients have acknowledged, at
		// least, when the test stops them.
		total   = 10000
		clients = 16
		// step is how many more commands each leader serves, at least,
		// before the next failover. The clients never pause, so every
		// kill hits a busy leader.
		step = 1000
	)
	start := time.Now()
	c := newMixedCluster(t, mixedMemorySettings(mixedFailoverTiming), libs...)
	first := c.waitLeader()
	c.logf("%s (%s) leads in term %d", first, first.library(), first.term())
	// led records the libraries whose leaders acknowledged a command,
	// installed the directions in which a restarted node caught up from a
	// snapshot.
	led := map[mixedLib]bool{c.mustSubmit("first").lib: true}
	killed := map[mixedLib]bool{}
	installed := map[mixedInstall]bool{}
	finished := func() bool {
		for _, d := range mixedInstallsWanted {
			if !installed[d] {
				return false
			}
		}
		return led[libOurs] && led[libRef] && killed[libOurs] && killed[libRef]
	}

	load := startMixedLoad(c, clients, 0)
	done := 0 // failovers carried out
	for attempt := 0; !finished(); attempt++ {
		if attempt == 8 {
			t.Fatalf("eight attempts did not give both libraries a turn at leading, at being killed and at installing a snapshot on the other: led %v, killed %v, installed %v",
				led, killed, installed)
		}
		load.waitMore(step)
		old := c.waitLeader()
		w := mixedPlanFailover(c, old, led, killed, installed)
		if !c.failOver(old, w) {
			continue
		}
		// old acknowledged failOver's markers before it was killed.
		done++
		killed[old.library()], led[old.library()] = true, true
		if d, ok := c.restartFromSnapshot(old, load); ok {
			installed[d] = true
		}
		led[c.mustSubmit(fmt.Sprintf("after-failover-%d", done)).lib] = true
	}
	load.waitAcked(total)
	load.finish()
	c.logf("all %d commands acknowledged after %v; snapshots installed: %v", load.acked.Load(), time.Since(start).Round(time.Millisecond), installed)

	// Nothing is sent after the fence, so once every node has applied it
	// their histories must be equal.
	fence := c.mustSubmit("fence")
	seq := c.checkSameHistory(fence.index)
	load.checkAgainst(seq)
	t.Logf("%d commands in %d log entries, identical on all nodes; took %v",
		len(seq), fence.index, time.Since(start).Round(time.Millisecond))
}

// mixedPlanFailover chooses who takes over from the leader old, so that
// each failover brings the test closer to having killed a node of each
// library, seen a node of each library lead, and seen a leader of each
// library install a snapshot on a restarted node of the other. The
// restarted node will be old, and its leader the winner, so a winner of
// the other library than old is worth most while that direction is
// missing. Then, killing old is progress if no node of its library has
// been killed yet; the winner is preferably of a library that has not
// led, else of the other library. Otherwise the winner is of the library
// still to be killed, so that the next failover kills it.
func mixedPlanFailover(c *mixedCluster, old *mixedNode, led, killed map[mixedLib]bool, installed map[mixedInstall]bool) *mixedNode {
	c.t.Helper()
	var pick *mixedNode
	score := -1
	for _, n := range c.others(old) {
		if !n.running() {
			continue
		}
		s := 0
		if n.library() != old.library() && !installed[mixedInstall{from: n.library(), to: old.library()}] {
			s += 4
		}
		switch {
		case !killed[old.library()]:
			if !led[n.library()] {
				s += 2
			}
			if n.library() != old.library() {
				s++
			}
		case !killed[n.library()]:
			s += 2
		}
		if s > score {
			pick, score = n, s
		}
	}
	if pick == nil {
		c.t.Fatalf("no running node can take over from %s; cluster: %s", old, c.describe())
	}
	return pick
}
