package raft

import (
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// Entries and batches must fit what the network transport carries
// (rpc_size.go): a request over MaxRPCBytes closes its connection, so an
// entry too large would be sent again and again for ever.

const oversizedRPCLimit = 64 * 1024

// netRaftNode is a node of a cluster over NetworkTransport.
type netRaftNode struct {
	id    ServerID
	addr  ServerAddress
	raft  *Raft
	fsm   *testFSM
	trans *NetworkTransport
}

// netRaftCluster runs nodes over NetworkTransports on an in-memory
// network, each refusing requests over maxRPC bytes.
type netRaftCluster struct {
	t       *testing.T
	network *netPipeNetwork
	maxRPC  int64
	nodes   []*netRaftNode
	changed chan struct{}
}

func newNetRaftCluster(t *testing.T, n int, maxRPC int64) *netRaftCluster {
	c := &netRaftCluster{t: t, network: newNetPipeNetwork(), maxRPC: maxRPC, changed: make(chan struct{}, 1)}
	var cfg Configuration
	for i := 0; i < n; i++ {
		id := ServerID(fmt.Sprintf("node%d", i))
		addr := ServerAddress(fmt.Sprintf("10.0.0.%d:7000", i+1))
		c.nodes = append(c.nodes, &netRaftNode{id: id, addr: addr})
		cfg.Servers = append(cfg.Servers, Server{Suffrage: Voter, ID: id, Address: addr})
	}
	for _, node := range c.nodes {
		c.start(node, &cfg)
	}
	return c
}

// start runs node on fresh stores, bootstrapped with cfg when it is not nil.
func (c *netRaftCluster) start(node *netRaftNode, cfg *Configuration) {
	c.t.Helper()
	node.trans = NewNetworkTransportWithConfig(&NetworkTransportConfig{
		Stream:      c.network.listen(string(node.addr)),
		MaxPool:     3,
		Timeout:     time.Second,
		MaxRPCBytes: c.maxRPC,
		Logger:      testLogger(c.t, string(node.id)+"-net"),
	})
	conf := testConfig(c.t, node.id)
	store, snaps := NewInmemStore(), NewInmemSnapshotStore()
	if cfg != nil {
		if err := BootstrapCluster(conf, store, store, snaps, node.trans, *cfg); err != nil {
			c.t.Fatalf("bootstrapping %s: %v", node.id, err)
		}
	}
	node.fsm = &testFSM{changed: func() { notify(c.changed) }}
	r, err := NewRaft(conf, node.fsm, store, store, snaps, node.trans)
	if err != nil {
		c.t.Fatalf("starting %s: %v", node.id, err)
	}
	r.RegisterObserver(NewObserver(nil, false, func(*Observation) bool { notify(c.changed); return false }))
	node.raft = r
}

func (c *netRaftCluster) shutdown() {
	for _, n := range c.nodes {
		n.raft.Shutdown().Error()
	}
}

// waitFor waits, in fake time, until cond holds.
func (c *netRaftCluster) waitFor(timeout time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-c.changed:
		case <-tick.C:
		case <-deadline.C:
			c.t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

func (c *netRaftCluster) leader() *netRaftNode {
	c.t.Helper()
	var leader *netRaftNode
	c.waitFor(10*time.Second, "a leader", func() bool {
		for _, n := range c.nodes {
			if n.raft.State() == Leader {
				leader = n
				return true
			}
		}
		return false
	})
	return leader
}

// waitForCommands waits until every node's FSM applied want commands.
func (c *netRaftCluster) waitForCommands(want int) {
	c.t.Helper()
	c.waitFor(30*time.Second, fmt.Sprintf("every FSM to apply %d commands", want), func() bool {
		for _, n := range c.nodes {
			if n.fsm.len() < want {
				return false
			}
		}
		return true
	})
}

// answerWithin returns f's error, failing the test if f is not answered
// within d of fake time.
func answerWithin(t *testing.T, f Future, d time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("no answer within %v", d)
		return nil
	}
}

func TestApply_RefusesAnEntryTooLargeForTheTransport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newNetRaftCluster(t, 3, oversizedRPCLimit)
		defer c.shutdown()
		leader := c.leader()
		room := int(oversizedRPCLimit - leader.raft.appendEntriesOverhead() - entryWireOverhead)

		// A barrier first, so the leader's own no-op is in the log.
		if err := answerWithin(t, leader.raft.Barrier(time.Second), 5*time.Second); err != nil {
			t.Fatalf("barrier: %v", err)
		}
		before := leader.raft.LastIndex()
		for _, size := range []int{room + 1, 2 * oversizedRPCLimit} {
			err := answerWithin(t, leader.raft.Apply(make([]byte, size), time.Second), time.Second)
			if !errors.Is(err, ErrEntryTooLarge) {
				t.Fatalf("Apply of %d bytes through a transport limited to %d: got %v, want ErrEntryTooLarge", size, oversizedRPCLimit, err)
			}
		}
		if got := leader.raft.LastIndex(); got != before {
			t.Fatalf("a refused entry was appended: last index %d, was %d", got, before)
		}

		// The largest entry allowed does reach every follower through the
		// real encoder and size check.
		if err := answerWithin(t, leader.raft.Apply(make([]byte, room), time.Second), 5*time.Second); err != nil {
			t.Fatalf("Apply of the largest entry allowed (%d bytes): %v", room, err)
		}
		c.waitForCommands(1)
	})
}

func TestReplication_BatchesFitTheTransport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newNetRaftCluster(t, 3, oversizedRPCLimit)
		defer c.shutdown()
		leader := c.leader()

		// 40 entries of 8 KiB: together several times the transport's
		// limit, though far below MaxAppendEntriesBytes.
		const n, size = 40, 8 * 1024
		for i := 0; i < n; i++ {
			if err := answerWithin(t, leader.raft.Apply(make([]byte, size), time.Second), 5*time.Second); err != nil {
				t.Fatalf("apply %d: %v", i, err)
			}
		}
		// A new server catches up from the start of the log, in batches
		// as large as the byte bounds allow.
		joiner := &netRaftNode{id: "joiner", addr: "10.0.0.99:7000"}
		c.start(joiner, nil)
		c.nodes = append(c.nodes, joiner)
		if err := answerWithin(t, leader.raft.AddVoter(joiner.id, joiner.addr, 0, 0), 5*time.Second); err != nil {
			t.Fatalf("AddVoter: %v", err)
		}
		c.waitForCommands(n)
	})
}
