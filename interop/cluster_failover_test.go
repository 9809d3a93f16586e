package interop

import (
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
// pre-vote on. Concurrent clients apply 10,000 commands through whichever
// node leads while the leader is killed twice, so that a node of each
// library leads and a node of each library is killed and restarted on its
// stores. Every restarted node must catch up, every command must be
// acknowledged with the position it has in every node's FSM, and every
// node must hold the same log and apply the same commands in the same
// order.
func TestMixedClusterAppliesIdenticalSequencesThroughFailoversAndRestarts(t *testing.T) {
	for _, libs := range mixedClusterShapes {
		t.Run(mixedShapeName(libs), func(t *testing.T) {
			testMixedClusterFailovers(t, libs)
		})
	}
}

func testMixedClusterFailovers(t *testing.T, libs []mixedLib) {
	const (
		total   = 10000
		clients = 16
		// step is how many more commands each failover lets through; the
		// next failover starts once most of them are acknowledged, so
		// every leader serves clients and every kill hits a busy leader.
		step = 2500
	)
	start := time.Now()
	c := newMixedCluster(t, mixedFailoverTiming, libs...)
	first := c.waitLeader()
	c.logf("%s (%s) leads in term %d", first, first.lib, first.term())
	led := map[mixedLib]bool{first.lib: true}
	killed := map[mixedLib]bool{}

	load := startMixedLoad(c, total, clients, step)
	for i := 0; !(led[libOurs] && led[libRef] && killed[libOurs] && killed[libRef]); i++ {
		if i == 3 {
			t.Fatalf("three failovers did not give both libraries a turn at leading and at being killed: led %v, killed %v", led, killed)
		}
		load.waitAcked(1000 + i*step)
		old := c.waitLeader()
		w := mixedPickWinner(c, old, led)
		c.failOver(old, w)
		killed[old.lib], led[w.lib] = true, true
		load.open((i + 2) * step)
		c.restart(old, load.highestAcked())
	}
	load.open(total)
	load.waitAcked(total)
	c.logf("all %d commands acknowledged after %v", total, time.Since(start).Round(time.Millisecond))

	// Nothing is sent after the fence, so once every node has applied it
	// their histories must be equal.
	fence := c.mustSubmit("fence")
	seq := c.checkSameHistory(fence.index)
	load.checkAgainst(seq)
	for _, lib := range []mixedLib{libOurs, libRef} {
		if load.ackedBy[lib] == 0 {
			t.Errorf("no command was acknowledged by a leader of library %s", lib)
		}
	}
	t.Logf("%d commands in %d log entries, identical on all nodes; took %v",
		len(seq), fence.index, time.Since(start).Round(time.Millisecond))
}

// mixedPickWinner chooses who takes over from old: a node of a library that
// has not led yet if there is one, else one of the other library than
// old's, else any other running node.
func mixedPickWinner(c *mixedCluster, old *mixedNode, led map[mixedLib]bool) *mixedNode {
	c.t.Helper()
	var pick *mixedNode
	score := -1
	for _, n := range c.others(old) {
		if !n.running() {
			continue
		}
		s := 0
		if !led[n.lib] {
			s += 2
		}
		if n.lib != old.lib {
			s++
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
