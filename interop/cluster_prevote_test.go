package interop

import (
	"fmt"
	"strings"
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
// the node rejoins as its follower and catches up. The leader commits
// while the node is away until it has compacted its log past the node's,
// so the node catches up from a snapshot the leader sends, between the
// libraries or within one, in the middle of its pre-vote campaign.
// Without pre-vote the returning node's higher term would depose the
// leader.
func TestMixedClusterPreVoteIsolatedFollowerReturnsWithoutDeposingLeader(t *testing.T) {
	parallelUnlessRace(t)
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
			parallelUnlessRace(t)
			c := newMixedCluster(t, mixedMemorySettings(mixedPreVoteTiming), tc.libs...)
			for _, followerLib := range []mixedLib{libOurs, libRef} {
				mixedIsolateFollowerOf(c, tc.leader, followerLib)
			}
			last := c.mustSubmit("last")
			c.checkSameHistory(last.index)
		})
	}
}

// mixedLeaderOf returns the leader once it is a node of lib, failing over
// to one if needed, and once every node follows it and has caught up.
func mixedLeaderOf(c *mixedCluster, lib mixedLib) *mixedNode {
	c.t.Helper()
	for attempt := 0; attempt < 3; attempt++ {
		l := c.waitLeader()
		if l.library() == lib {
			c.waitApplied(c.mustSubmit("leader-of-" + string(lib)).index)
			return l
		}
		var w *mixedNode
		for _, n := range c.others(l) {
			if n.library() == lib {
				w = n
			}
		}
		if c.failOver(l, w) {
			c.restart(l, c.mustSubmit("after-failover").index)
		}
	}
	c.t.Fatalf("no node of library %s took the lead in three attempts; cluster: %s", lib, c.describe())
	return nil
}

// mixedIsolateFollowerOf runs mixedIsolateAndReturn with a leader of
// leaderLib and its follower of followerLib. A leadership change while the
// follower is cut off cannot be the follower's doing, since it reaches no
// one; it means the machine starved the leader, and the scenario is tried
// again, up to three times, as it is when the follower caught up from
// entries rather than from a snapshot.
func mixedIsolateFollowerOf(c *mixedCluster, leaderLib, followerLib mixedLib) {
	c.t.Helper()
	for attempt := 0; attempt < 3; attempt++ {
		l := mixedLeaderOf(c, leaderLib)
		var f *mixedNode
		for _, n := range c.others(l) {
			if n.library() == followerLib {
				f = n
			}
		}
		if mixedIsolateAndReturn(c, l, f) {
			return
		}
	}
	c.t.Fatalf("in three attempts to isolate a follower of library %s, leadership moved by itself or the follower caught up without a snapshot", followerLib)
}

// mixedIsolateAndReturn cuts follower f off while l leads, commits until
// l has compacted its log past f's, lets f campaign in vain, brings it
// back and checks that l still leads in the same term and that f follows
// it again with every entry committed meanwhile, through a snapshot. It
// returns false, with f healed, if leadership moved while f was cut off,
// or after it returned without f starting an election, or if f caught up
// from entries l had read before compacting them (checked to lose none).
func mixedIsolateAndReturn(c *mixedCluster, l, f *mixedNode) bool {
	c.t.Helper()
	term := l.term()
	// steady reports whether nothing has moved: l leads, and no node has
	// left l's term.
	steady := func() error {
		if l.state() != "Leader" {
			return fmt.Errorf("%s no longer leads", l)
		}
		for _, n := range c.allNodes() {
			if got := n.term(); got != term {
				return fmt.Errorf("%s is in term %d, want %d: an election took place", n, got, term)
			}
		}
		return nil
	}
	// whileAway and afterReturn apply steady before and after f is healed.
	// While f is away, its own term must stay; anything else that moves
	// is not its doing and marks the attempt as disturbed.
	disturbed := false
	whileAway := func() bool {
		c.t.Helper()
		if got := f.term(); got != term {
			c.t.Fatalf("isolated %s moved from term %d to %d: its campaigns did not stay in pre-vote; cluster: %s", f, term, got, c.describe())
		}
		if err := steady(); err != nil {
			c.logf("while %s was cut off: %v; cluster: %s", f, err, c.describe())
			disturbed = true
		}
		return disturbed
	}
	// After f returns, a move is f's doing if f started an election: it
	// is then back in its old term and can only raise it by winning a
	// pre-vote. Otherwise the machine starved the leader (its followers'
	// heartbeat timeouts are wall-clock time) and the attempt is disturbed.
	fElections := c.sink.counter(mixedElectionStarts(f))
	afterReturn := func() bool {
		c.t.Helper()
		if err := steady(); err != nil {
			if fElections.n.Load() > 0 {
				c.t.Fatalf("after %s returned: %v, after %s started an election; cluster: %s", f, err, f, c.describe())
			}
			c.logf("after %s returned: %v, though %s started no election; cluster: %s", f, err, f, c.describe())
			disturbed = true
		}
		return disturbed
	}

	c.logf("cutting follower %s (%s) off; %s (%s) leads in term %d", f, f.library(), l, l.library(), term)
	restoresBefore := len(f.currentFSM().restoreLog())
	f.currentLayer().partition()
	// The leader goes on committing, at least 20 entries, until it has
	// compacted its log past the end of f's, so that f, on its return,
	// catches up from a snapshot (or, rarely, from entries its leader read
	// before compacting: harness_catchup_test.go). f is cut off, so its log and snapshot
	// store stop moving once the requests it was serving at the cut are
	// done; commit checks again before f returns.
	compactedPastF := func() bool {
		own, _, _ := f.newestSnapshot()
		return l.firstIndex() > max(f.storedLastIndex(), own.Index)+1
	}
	var last mixedAck
	sent := 0
	commit := func(atLeast int) {
		c.t.Helper()
		for i := 0; !disturbed && (i < atLeast || !compactedPastF()); i++ {
			if i == 5000 {
				c.t.Fatalf("%s committed 5000 entries without compacting its log past %s's; cluster: %s", l, f, c.describe())
			}
			last = c.mustSubmit(fmt.Sprintf("while-%s-away-%d", f, sent))
			sent++
			if last.node != l || whileAway() {
				disturbed = true
			}
		}
	}
	commit(20)
	if !disturbed {
		c.eventually(mixedSettle, fmt.Sprintf("isolated %s campaigns", f), func() bool {
			return whileAway() || f.state() == "Candidate"
		})
	}
	if !disturbed {
		c.logf("%s campaigns in term %d", f, f.term())
		// Let it campaign three more rounds. Every round is a pre-vote
		// that nobody answers, so its term must stay.
		rounds := mixedCampaignRounds(c, f)
		c.eventually(mixedSettle, fmt.Sprintf("isolated %s campaigns three more rounds", f), func() bool {
			return whileAway() || rounds.n.Load() >= 3
		})
		c.logf("%s started %d more rounds, still in term %d", f, rounds.n.Load(), f.term())
		commit(0)
	}
	own, _, _ := f.newestSnapshot()
	fEnd := max(f.storedLastIndex(), own.Index)
	c.logf("healing %s, whose log ends at %d", f, fEnd)
	f.currentLayer().heal()
	if disturbed {
		c.logf("leadership moved while %s was cut off, by no doing of its own; trying again", f)
		return false
	}

	c.eventually(mixedSettle, fmt.Sprintf("%s follows %s again and has applied index %d", f, l, last.index), func() bool {
		return afterReturn() || f.state() == "Follower" && f.leaderID() == l.id && f.currentFSM().lastIndex() >= last.index
	})
	if !disturbed {
		if ack := c.mustSubmit(fmt.Sprintf("after-%s-returned", f)); ack.node != l && !afterReturn() {
			c.t.Fatalf("%s acknowledged a command, want %s; cluster: %s", ack.node, l, c.describe())
		}
		afterReturn()
	}
	if disturbed {
		c.logf("leadership moved after %s returned, by no doing of its own; trying again", f)
		return false
	}
	// l led in term throughout and had compacted its log past f's end
	// before f returned, so f caught up from its snapshot, unless l had
	// read the entries before compacting them and sent them after the heal
	// (see harness_catchup_test.go).
	restores := f.currentFSM().restoreLog()[restoresBefore:]
	if len(restores) == 0 {
		if err := c.checkCaughtUpFromEntries(f, l, fEnd, last.index); err != nil {
			c.t.Fatalf("%s caught up with %s, which had compacted its log past %s's end, without restoring a snapshot, and lost entries doing so: %v; cluster: %s", f, l, f, err, c.describe())
		}
		c.logf("%s caught up from entries %s had read before compacting them, without a gap; trying again for a snapshot", f, l)
		return false
	}
	c.logf("%s is back, after installing a snapshot from %s (FSM restores %+v); %s still leads in term %d", f, l, restores, l, term)
	return true
}

// mixedCampaignRounds counts the election rounds n starts from now on, by
// the line each library logs at the start of one: ours when it enters a
// pre-vote, the reference when it enters the candidate state, where it
// holds its pre-vote.
func mixedCampaignRounds(c *mixedCluster, n *mixedNode) *mixedLogCounter {
	who := " " + n.id + "."
	what := "entering pre-vote"
	if n.library() == libRef {
		what = "entering candidate state"
	}
	return c.sink.counter(func(line string) bool {
		return strings.Contains(line, who) && strings.Contains(line, what)
	})
}

// mixedElectionStarts matches the line either library logs when n, having
// won a pre-vote, starts a real election, raising its term.
func mixedElectionStarts(n *mixedNode) func(line string) bool {
	who := " " + n.id + "."
	return func(line string) bool {
		return strings.Contains(line, who) && strings.Contains(line, "pre-vote successful, starting election")
	}
}
