package raft

import (
	"testing"
	"testing/synctest"
	"time"
)

// Tests of the contract with user code (ARCHITECTURE.md, "Calls into user
// code"), over the strict doubles of strict_doubles_test.go, which every
// cluster of cluster_test.go runs on.

// followerOf returns a running node other than leader.
func followerOf(c *testCluster, leader *testNode) *testNode {
	for _, n := range c.running() {
		if n != leader {
			return n
		}
	}
	c.t.Fatal("no follower")
	return nil
}

// A pipelined answer that fails ends the pipeline, which must then be
// closed once, by the replicator, after its last send: the strict pipeline
// panics on a second Close, as a pipeline that closes a channel does.
func TestContract_PipelineClosedOnceWhenAnAnswerFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "before", 20)
		c.waitForSameFSMs(20)

		follower := followerOf(c, leader)
		trans := follower.strict.trans
		trans.refuseAppends.Store(true)
		applyAll(t, leader, "during", 20)
		// The pipeline's answers failed, and the replicator went on trying
		// without it.
		c.waitFor(10*time.Second, "AppendEntries refused after the pipeline failed", func() bool {
			return trans.refused.Load() >= 3
		})
		trans.refuseAppends.Store(false)
		applyAll(t, leader, "after", 20)
		c.waitForSameFSMs(60)
	})
}

// A transport whose Consumer hands out a new channel (and a goroutine that
// feeds it) on every call, as some applications' wrappers do, must carry a
// whole cluster: the node asks for the channel once and keeps it.
func TestContract_ClusterOverFreshConsumerChannels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		for _, n := range c.running() {
			n.strict.trans.mu.Lock()
			calls := n.strict.trans.consumers
			n.strict.trans.mu.Unlock()
			if calls != 1 {
				t.Errorf("%s: Transport.Consumer called %d times, want 1", n.id, calls)
			}
		}
		applyAll(t, leader, "x", 50)
		c.waitForSameFSMs(50)

		// A follower restarted on a new transport is served too.
		follower := followerOf(c, leader)
		c.stop(follower)
		applyAll(t, leader, "y", 10)
		c.start(follower)
		c.waitForSameFSMs(60)
	})
}
