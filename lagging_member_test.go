package raft

import (
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// A member that was down while a server was removed restarts with its old
// log, so it still counts the removed server as a voter and cannot refuse
// it as a non-member. The removed server's term climbed while it was cut
// off. Neither the removed server's vote requests reaching the member just
// after its restart, nor a pre-vote round of the member's own that asks the
// removed server, may hand that term to the member: its next answer to the
// leader would depose a leader that has a quorum.
func TestLaggingMember_NeverTakesARemovedServersTerm(t *testing.T) {
	cases := []struct {
		name string
		// memberPreVote is the lagging member's setting.
		memberPreVote bool
		// removedVotes: the removed server runs without pre-vote and sends
		// vote requests while the member has just restarted; otherwise it
		// runs with pre-vote (its term raised earlier) and the member, cut
		// off with it for a few heartbeat timeouts, asks it for pre-votes.
		removedVotes bool
	}{
		{"vote request at restart, member pre-vote on", true, true},
		{"vote request at restart, member pre-vote off", false, true},
		{"member's own pre-vote round", true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				testLaggingMember(t, tc.memberPreVote, tc.removedVotes)
			})
		})
	}
}

func testLaggingMember(t *testing.T, memberPreVote, removedVotes bool) {
	c := newTestCluster(t, 5, clusterOpts{conf: func(c *Config) {
		c.ShutdownOnRemove = false
		c.PreVoteDisabled = c.LocalID == "node3" && !memberPreVote
	}})
	defer c.shutdown()
	member, removed := c.node("node3"), c.node("node4")
	var leader *testNode
	for {
		leader = c.waitForLeader()
		if leader != member && leader != removed {
			break
		}
		if err := leader.raft.LeadershipTransfer().Error(); err != nil {
			t.Fatalf("moving leadership off %s: %v", leader.id, err)
		}
	}
	applyAll(t, leader, "a", 5)

	// The removed server is cut off and runs without pre-vote, with short
	// timeouts, so its term climbs fast.
	c.partition(removed)
	c.stop(removed)
	removed.conf.PreVoteDisabled = true
	removed.conf.HeartbeatTimeout = 5 * time.Millisecond
	removed.conf.ElectionTimeout = 5 * time.Millisecond
	removed.conf.LeaderLeaseTimeout = 5 * time.Millisecond
	c.start(removed)
	time.Sleep(40 * leader.conf.ElectionTimeout)
	if !removedVotes {
		// Its term stays raised; from now on it only asks for pre-votes.
		c.stop(removed)
		removed.conf.PreVoteDisabled = false
		c.start(removed)
	}
	applyAll(t, leader, "b", 5)

	// The member goes down, its log ahead of the removed server's, and the
	// removal commits without it.
	last := leader.raft.LastIndex()
	c.waitFor(time.Second, "the member to hold every entry", func() bool { return member.raft.LastIndex() >= last })
	c.stop(member)
	if err := leader.raft.RemoveServer(removed.id, 0, 0).Error(); err != nil {
		t.Fatal(err)
	}
	applyAll(t, leader, "c", 5)
	term := leader.raft.CurrentTerm()
	if rt := removed.raft.CurrentTerm(); rt < term+10 {
		t.Fatalf("the removed server's term should have climbed well past the leader's %d, it is %d", term, rt)
	}
	var failed, wrongTerm atomic.Int64
	writes := runWrites(c, leader, &failed)

	// The member restarts on its old log, reachable by the removed server
	// but not yet by the leader.
	clear(c.cut)
	c.partition(member, removed)
	c.start(member)
	if !inConfiguration(member.raft.pub.latestConfiguration(), removed.id) {
		t.Fatal("the restarted member should still count the removed server as a voter")
	}
	if removedVotes {
		// Its first vote request comes within two of its election
		// timeouts, well inside the member's heartbeat timeout; then the
		// leader may reach the member too.
		var asked atomic.Bool
		member.raft.RegisterObserver(NewObserver(nil, false, func(o *Observation) bool {
			if req, ok := o.Data.(RequestVoteRequest); ok && ServerID(req.ID) == removed.id {
				asked.Store(true)
				c.poke()
			}
			return false
		}))
		c.waitFor(member.conf.HeartbeatTimeout, "the removed server's vote request to reach the member", asked.Load)
	} else {
		// Long enough for the member's own pre-vote rounds.
		time.Sleep(5 * member.conf.HeartbeatTimeout)
	}
	c.heal()
	for i := 0; i < 40; i++ {
		time.Sleep(leader.conf.ElectionTimeout)
		for _, n := range c.running() {
			if n != removed && n.raft.CurrentTerm() != term {
				wrongTerm.Add(1)
			}
		}
	}
	n := writes.finish()
	if leader.raft.State() != Leader || leader.raft.CurrentTerm() != term {
		t.Fatalf("the leader was deposed: %v in term %d, want Leader in %d\n%s",
			leader.raft.State(), leader.raft.CurrentTerm(), term, c.describe())
	}
	if w := wrongTerm.Load(); w > 0 {
		t.Fatalf("a member's term moved (%d samples)\n%s", w, c.describe())
	}
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d writes failed", f, n)
	}
	if inConfiguration(member.raft.pub.latestConfiguration(), removed.id) {
		t.Fatalf("the member never learned of the removal\n%s", c.describe())
	}
}

// Every server of a cluster restarting at once treats its start as recent
// contact with a leader for one heartbeat timeout; no server's heartbeat
// timer fires sooner, so the first candidate is elected at once, as
// without the hold: within two heartbeat timeouts of the restart and in
// the first term after the old one.
func TestLaggingMember_WholeClusterRestartElectsAtOnce(t *testing.T) {
	for _, preVote := range []bool{true, false} {
		t.Run(fmt.Sprintf("pre-vote %v", preVote), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newTestCluster(t, 5, clusterOpts{conf: func(c *Config) { c.PreVoteDisabled = !preVote }})
				defer c.shutdown()
				leader := c.waitForLeader()
				applyAll(t, leader, "a", 3)
				// Every log is equally up to date, so any server can win.
				c.waitForSameFSMs(3)
				// Every server stops at the same instant, so none campaigns
				// while the others stop.
				for _, n := range c.nodes {
					n.raft.Shutdown()
				}
				c.shutdown()
				var term uint64
				for _, n := range c.nodes {
					stored, err := n.store.GetUint64(keyCurrentTerm)
					if err != nil {
						t.Fatal(err)
					}
					term = max(term, stored)
				}
				start := time.Now()
				for _, n := range c.nodes {
					c.start(n)
				}
				leader = c.waitForLeader()
				if took, limit := time.Since(start), 2*leader.conf.HeartbeatTimeout; took > limit {
					t.Fatalf("a leader was agreed %v after the restart, want within %v", took, limit)
				}
				if got := leader.raft.CurrentTerm(); got != term+1 {
					t.Fatalf("the leader was elected in term %d, want the first term after %d", got, term)
				}
			})
		})
	}
}

// neverCampaign makes r's heartbeat and election timeouts an hour, so it
// votes but does not campaign while a test runs. The hold after its start
// keeps the heartbeat timeout it started with (election.go), so it can
// vote as soon as it could before.
func neverCampaign(t *testing.T, r *Raft) {
	t.Helper()
	rc := r.ReloadableConfig()
	rc.HeartbeatTimeout, rc.ElectionTimeout = time.Hour, time.Hour
	if err := r.ReloadConfig(rc); err != nil {
		t.Fatal(err)
	}
}
