package raft

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// Tests of leader election (Raft paper §5.2) and pre-vote (thesis §9.6).

func TestElection_OneLeaderPerTerm(t *testing.T) {
	for _, n := range []int{1, 3, 5} {
		t.Run(fmt.Sprintf("%d nodes", n), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newTestCluster(t, n, clusterOpts{})
				defer c.shutdown()
				var tl termLeaders
				for _, node := range c.nodes {
					tl.watch(node)
				}
				leader := c.waitForLeader()
				// Let several heartbeat intervals pass: the leader stays.
				time.Sleep(10 * leader.conf.HeartbeatTimeout)
				if got := c.waitForLeader(); got != leader {
					t.Fatalf("leadership moved from %s to %s in a healthy cluster", leader.id, got.id)
				}
				tl.check(t)
			})
		})
	}
}

func TestElection_KilledLeaderReplacedWithinThreeElectionTimeouts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		var tl termLeaders
		for _, node := range c.nodes {
			tl.watch(node)
		}
		old := c.waitForLeader()
		oldTerm := old.raft.CurrentTerm()
		c.stop(old)
		start := time.Now()
		leader := c.waitForLeader()
		elapsed := time.Since(start)
		if leader == old {
			t.Fatal("the stopped leader is still leading")
		}
		if limit := 3 * old.conf.ElectionTimeout; elapsed > limit {
			t.Fatalf("new leader after %v of fake time, want within %v", elapsed, limit)
		}
		if term := leader.raft.CurrentTerm(); term <= oldTerm {
			t.Fatalf("new leader's term %d is not after the old one %d", term, oldTerm)
		}
		tl.check(t)
	})
}

func TestElection_PartitionedLeaderStepsDownAndMajorityElects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 5, clusterOpts{})
		defer c.shutdown()
		var tl termLeaders
		for _, node := range c.nodes {
			tl.watch(node)
		}
		old := c.waitForLeader()
		var minority, majority []*testNode
		minority = append(minority, old)
		for _, n := range c.nodes {
			if n == old {
				continue
			}
			if len(minority) < 2 {
				minority = append(minority, n)
			} else {
				majority = append(majority, n)
			}
		}
		c.partition(minority...)
		c.waitFor(time.Second, "the old leader to step down", func() bool {
			return old.raft.State() != Leader
		})
		leader := c.waitForLeader(majority...)
		if leader.raft.CurrentTerm() <= 0 {
			t.Fatal("new leader has no term")
		}
		for _, n := range minority {
			if n.raft.State() == Leader {
				t.Fatalf("%s in the minority leads", n.id)
			}
		}
		c.heal()
		final := c.waitForLeader()
		if final.raft.CurrentTerm() < leader.raft.CurrentTerm() {
			t.Fatal("term went backwards")
		}
		tl.check(t)
	})
}

func TestPreVote_IsolatedNodeKeepsItsTermAndDoesNotDisruptOnReturn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		var away *testNode
		for _, n := range c.nodes {
			if n != leader {
				away = n
				break
			}
		}
		term := leader.raft.CurrentTerm()
		c.partition(away)
		// Many election timeouts pass while it is cut off.
		time.Sleep(40 * away.conf.ElectionTimeout)
		if got := away.raft.CurrentTerm(); got != term {
			t.Fatalf("isolated node's term moved from %d to %d while away", term, got)
		}
		c.heal()
		c.waitFor(time.Second, "the node to rejoin", func() bool {
			addr, _ := away.raft.LeaderWithID()
			return addr == leader.addr
		})
		if leader.raft.State() != Leader || leader.raft.CurrentTerm() != term {
			t.Fatalf("the leader was disrupted: state %v term %d, want Leader in term %d",
				leader.raft.State(), leader.raft.CurrentTerm(), term)
		}
	})
}
