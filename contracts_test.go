package raft

import (
	"errors"
	"sync/atomic"
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

// An FSM that is also a ConfigurationStore, or a BatchingFSM too, strict
// about being called from one goroutine at a time and never after
// Shutdown, through snapshots, a snapshot install to a new voter, a removal
// and a restart.
func TestContract_StrictFSMsThroughSnapshotsAndMembership(t *testing.T) {
	for _, kind := range []string{configFSM, batchingFSM} {
		t.Run(kind, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { snapshotsAndMembership(t, kind) })
		})
	}
}

func snapshotsAndMembership(t *testing.T, kind string) {
	c := newTestCluster(t, 3, clusterOpts{fsmKind: kind, conf: func(conf *Config) {
		conf.TrailingLogs = 5
		conf.SnapshotThreshold = 10
		conf.SnapshotInterval = 20 * time.Millisecond
	}})
	defer c.shutdown()
	leader := c.waitForLeader()
	applyAll(t, leader, "a", 40)
	if err := leader.raft.Snapshot().Error(); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	// With nothing applied since, another snapshot is taken.
	if err := leader.raft.Snapshot().Error(); err != nil {
		t.Fatalf("second Snapshot: %v", err)
	}

	// A new voter needs the snapshot: the log was compacted.
	node := c.newNode("node3")
	c.start(node)
	if err := leader.raft.AddVoter(node.id, node.addr, 0, 0).Error(); err != nil {
		t.Fatalf("AddVoter: %v", err)
	}
	applyAll(t, leader, "b", 20)
	c.waitForSameFSMs(60)

	follower := followerOf(c, leader)
	if follower == node {
		follower = c.nodes[0]
		if follower == leader {
			follower = c.nodes[1]
		}
	}
	if err := leader.raft.RemoveServer(follower.id, 0, 0).Error(); err != nil {
		t.Fatalf("RemoveServer: %v", err)
	}
	c.stop(follower)
	applyAll(t, leader, "c", 20)
	c.stop(node)
	c.start(node)
	c.waitFor(10*time.Second, "the restarted node to catch up", func() bool {
		return node.fsm.len() == 80
	})
	var configs int
	switch f := leader.strict.fsm.(type) {
	case *strictConfigFSM:
		configs = f.configurations()
	case *strictBatchingFSM:
		configs = f.configurations()
	}
	if configs < 2 {
		t.Errorf("%d configuration entries reached the leader's FSM, want the AddVoter and the RemoveServer", configs)
	}
}

// Raft.Snapshot is refused, as by the reference, only until the FSM has
// been fed something since the node started: a node that applied nothing,
// one that applied only its bootstrap configuration and its leader's no-op,
// and one restarted from a snapshot that applied nothing since.
func TestContract_SnapshotRefusedUntilTheFSMIsFed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		refused := func(what string, r *Raft) {
			t.Helper()
			if err := r.Snapshot().Error(); !errors.Is(err, ErrNothingNewToSnapshot) {
				t.Fatalf("Snapshot %s: %v, want ErrNothingNewToSnapshot", what, err)
			}
		}
		idle := newTestCluster(t, 1, clusterOpts{noBootstrap: true})
		defer idle.shutdown()
		refused("of a node that applied nothing", idle.nodes[0].raft)

		c := newTestCluster(t, 1, clusterOpts{})
		defer c.shutdown()
		node := c.waitForLeader()
		c.waitFor(time.Second, "the no-op applied", func() bool { return node.raft.AppliedIndex() >= 2 })
		refused("after only the configuration and the no-op", node.raft)

		applyAll(t, node, "x", 3)
		if err := node.raft.Snapshot().Error(); err != nil {
			t.Fatalf("Snapshot after applying: %v", err)
		}
		if err := node.raft.Snapshot().Error(); err != nil {
			t.Fatalf("second Snapshot with nothing new: %v", err)
		}
		c.stop(node)
		c.start(node)
		c.waitForLeader()
		c.waitFor(time.Second, "the new term's no-op applied", func() bool {
			return node.raft.AppliedIndex() == node.raft.LastIndex()
		})
		refused("after a restart from a snapshot with nothing applied since", node.raft)
		applyAll(t, node, "y", 1)
		if err := node.raft.Snapshot().Error(); err != nil {
			t.Fatalf("Snapshot after applying again: %v", err)
		}
	})
}

// gatedSnapshotFSM is a testFSM whose Snapshot tells entered when it starts
// and waits for gate.
type gatedSnapshotFSM struct {
	*testFSM
	entered chan struct{}
	gate    chan struct{}
}

func (f *gatedSnapshotFSM) Snapshot() (FSMSnapshot, error) {
	close(f.entered)
	<-f.gate
	return f.testFSM.Snapshot()
}

// An FSM snapshot that the FSM hands back while the node shuts down is
// still released, once, before Shutdown returns: the strict FSMSnapshot
// reports one that never is.
func TestContract_SnapshotTakenDuringShutdownIsReleased(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conf := testConfig(t, "solo")
		store := NewInmemStore()
		snaps := NewInmemSnapshotStore()
		_, trans := NewInmemTransport("addr-solo")
		boot := Configuration{Servers: []Server{{Suffrage: Voter, ID: "solo", Address: "addr-solo"}}}
		if err := BootstrapCluster(conf, store, store, snaps, trans, boot); err != nil {
			t.Fatal(err)
		}
		fsm := &gatedSnapshotFSM{testFSM: &testFSM{}, entered: make(chan struct{}), gate: make(chan struct{})}
		parts := newStrictParts(t, "solo", fsm, store, store, snaps, trans, plainFSM)
		r, err := NewRaft(conf, parts.fsm, parts.logs, parts.stable, parts.snaps, parts.trans)
		if err != nil {
			t.Fatal(err)
		}
		for !<-r.LeaderCh() {
		}
		if err := r.Apply([]byte("x"), time.Second).Error(); err != nil {
			t.Fatal(err)
		}
		snapDone := make(chan error, 1)
		go func() { snapDone <- r.Snapshot().Error() }()
		<-fsm.entered
		stopped := r.Shutdown()
		synctest.Wait() // the snapshot goroutine has seen the shutdown
		close(fsm.gate)
		if err := stopped.Error(); err != nil {
			t.Fatal(err)
		}
		parts.node.shutdownReturned()
		if err := <-snapDone; !errors.Is(err, ErrRaftShutdown) {
			t.Fatalf("Snapshot during Shutdown: %v, want ErrRaftShutdown", err)
		}
	})
}

// stuckLogStore is an InmemStore whose StoreLogs, once armed, tells entered
// and waits for gate.
type stuckLogStore struct {
	*InmemStore
	armed   atomic.Bool
	entered chan struct{}
	gate    chan struct{}
}

func (s *stuckLogStore) StoreLogs(logs []*Log) error {
	if s.armed.CompareAndSwap(true, false) {
		close(s.entered)
		<-s.gate
	}
	return s.InmemStore.StoreLogs(logs)
}

// A store call still stuck when Shutdown gives up on it returns later into
// a goroutine that exits: nothing else is called after Shutdown returned.
func TestContract_NothingCalledAfterShutdownGaveUpOnAStuckStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var stuck *stuckLogStore
		c := newTestCluster(t, 1, clusterOpts{logs: func(id ServerID, s *InmemStore) LogStore {
			stuck = &stuckLogStore{InmemStore: s, entered: make(chan struct{}), gate: make(chan struct{})}
			return stuck
		}})
		defer c.shutdown()
		node := c.waitForLeader()
		applyAll(t, node, "x", 5)
		stuck.armed.Store(true)
		applied := node.raft.Apply([]byte("stuck"), 0)
		<-stuck.entered
		c.stop(node) // gives up on the store call after the grace period
		if err := applied.Error(); err == nil {
			t.Fatal("an entry whose write never finished was applied")
		}
		close(stuck.gate)
		synctest.Wait() // the abandoned call returns; the strict doubles watch what follows
	})
}
