package interop

import (
	"fmt"
	"testing"
	"time"
)

// mixedPreVoteTiming gives the isolated node time to campaign several
// times while the leader, still in touch with the other follower, keeps
// its lease comfortably on a loaded machine.
var mixedPreVoteTiming = mixedTiming{
	heartbeat: 500 * time.Millisecond,
	election:  500 * time.Millisecond,
	lease:     500 * time.Millisecond,
	commit:    20 * time.Millisecond,
}

// TestMixedClusterPreVoteIsolatedFollowerReturnsWithoutDeposingLeader cuts
// a follower of each library off a mixed cluster, in turn, while a leader
// of either library goes on committing with the other follower. The
// isolated node times out and campaigns, but with pre-vote it never raises
// its term; when it returns, the leader keeps its place and its term, and
// the node rejoins as its follower and catches up. Without pre-vote the
// returning node's higher term would depose the leader.
func TestMixedClusterPreVoteIsolatedFollowerReturnsWithoutDeposingLeader(t *testing.T) {
	cases := []struct {
		libs   []mixedLib
		leader mixedLib
	}{
		// The leader's library is the one with two nodes, so that its
		// followers are one of each library.
		{libs: []mixedLib{libOurs, libOurs, libRef}, leader: libOurs},
		{libs: []mixedLib{libOurs, libRef, libRef}, leader: libRef},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s led by %s", mixedShapeName(tc.libs), tc.leader), func(t *testing.T) {
			c := newMixedCluster(t, mixedPreVoteTiming, tc.libs...)
			l := c.waitLeader()
			if l.lib != tc.leader {
				var w *mixedNode
				for _, n := range c.others(l) {
					if n.lib == tc.leader {
						w = n
					}
				}
				if !c.failOver(l, w) {
					t.Fatalf("leadership moved by itself while failing over from %s to %s", l, w)
				}
				c.restart(l, c.mustSubmit("after-failover").index)
				l = w
			}
			for _, f := range c.others(l) {
				mixedIsolateAndReturn(c, l, f)
			}
			last := c.mustSubmit("last")
			c.checkSameHistory(last.index)
		})
	}
}

// mixedIsolateAndReturn cuts follower f off while l leads, lets f campaign
// in vain, brings it back and checks that l still leads in the same term
// and that f follows it again with every entry committed meanwhile.
func mixedIsolateAndReturn(c *mixedCluster, l, f *mixedNode) {
	c.t.Helper()
	if got := c.waitLeader(); got != l {
		c.t.Fatalf("%s leads, want %s; cluster: %s", got, l, c.describe())
	}
	term := l.term()
	// steady checks, at every poll while f is away and until it is back,
	// that nothing has moved: l leads, and no node has left l's term.
	steady := func() {
		c.t.Helper()
		if l.state() != "Leader" {
			c.t.Fatalf("%s was deposed while %s was away; cluster: %s", l, f, c.describe())
		}
		for _, n := range c.nodes {
			if got := n.term(); got != term {
				c.t.Fatalf("%s is in term %d, want %d: an election took place; cluster: %s", n, got, term, c.describe())
			}
		}
	}

	c.logf("cutting follower %s (%s) off; %s (%s) leads in term %d", f, f.lib, l, l.lib, term)
	f.currentLayer().partition()
	var last mixedAck
	for i := 0; i < 20; i++ {
		last = c.mustSubmit(fmt.Sprintf("while-%s-away-%d", f, i))
		if last.node != l {
			c.t.Fatalf("%s acknowledged a command, want %s; cluster: %s", last.node, l, c.describe())
		}
	}
	c.eventually(mixedSettle, fmt.Sprintf("isolated %s campaigns", f), func() bool {
		steady()
		return f.state() == "Candidate"
	})
	c.logf("%s campaigns in term %d", f, f.term())
	// Let it campaign a few more rounds. Every round is a pre-vote that
	// nobody answers, so its term must stay.
	away := time.Now().Add(3 * mixedPreVoteTiming.election)
	mixedPollUntil(time.Until(away), func() bool {
		steady()
		return false
	})

	c.logf("healing %s", f)
	f.currentLayer().heal()
	c.eventually(mixedSettle, fmt.Sprintf("%s follows %s again and has applied index %d", f, l, last.index), func() bool {
		steady()
		return f.state() == "Follower" && f.leaderID() == l.id && f.currentFSM().lastIndex() >= last.index
	})
	if ack := c.mustSubmit(fmt.Sprintf("after-%s-returned", f)); ack.node != l {
		c.t.Fatalf("%s acknowledged a command, want %s; cluster: %s", ack.node, l, c.describe())
	}
	steady()
	c.logf("%s is back; %s still leads in term %d", f, l, term)
}
