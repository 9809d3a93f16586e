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
// pre-vote on. Concurrent clients apply 10,000 commands through whichever
// node leads while leaders are killed (twice, unless leadership also moves
// by itself), so that a node of each library leads and a node of each
// library is killed and restarted on its stores. Every restarted node must catch up, every command must be
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
	// led records the libraries whose leaders acknowledged a command.
	led := map[mixedLib]bool{c.mustSubmit("first").node.lib: true}
	killed := map[mixedLib]bool{}

	load := startMixedLoad(c, total, clients, step)
	done := 0 // failovers carried out
	for attempt := 0; !(led[libOurs] && led[libRef] && killed[libOurs] && killed[libRef]); attempt++ {
		if attempt == 6 {
			t.Fatalf("six attempts did not give both libraries a turn at leading and at being killed: led %v, killed %v", led, killed)
		}
		load.waitAcked(min(1000+done*step, total-500))
		old := c.waitLeader()
		w := mixedPlanFailover(c, old, led, killed)
		if !c.failOver(old, w) {
			continue
		}
		// old acknowledged failOver's markers before it was killed.
		done++
		killed[old.lib], led[old.lib] = true, true
		load.open((done + 1) * step)
		c.restart(old, load.highestAcked())
		led[c.mustSubmit(fmt.Sprintf("after-failover-%d", done)).node.lib] = true
	}
	load.open(total)
	load.waitAcked(total)
	c.logf("all %d commands acknowledged after %v", total, time.Since(start).Round(time.Millisecond))

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
// library and seen a node of each library lead. Killing old is progress if
// no node of its library has been killed yet; the winner is then
// preferably of a library that has not led, else of the other library.
// Otherwise the winner is of the library still to be killed, so that the
// next failover kills it.
func mixedPlanFailover(c *mixedCluster, old *mixedNode, led, killed map[mixedLib]bool) *mixedNode {
	c.t.Helper()
	var pick *mixedNode
	score := -1
	for _, n := range c.others(old) {
		if !n.running() {
			continue
		}
		s := 0
		switch {
		case !killed[old.lib]:
			if !led[n.lib] {
				s += 2
			}
			if n.lib != old.lib {
				s++
			}
		case !killed[n.lib]:
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
