package raft

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// applyAll applies n commands "<prefix>-<i>" on node and waits for each.
func applyAll(t *testing.T, node *testNode, prefix string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		f := node.raft.Apply([]byte(fmt.Sprintf("%s-%d", prefix, i)), time.Second)
		if err := f.Error(); err != nil {
			t.Fatalf("apply %d on %s: %v", i, node.id, err)
		}
	}
}

// waitForSameFSMs waits until every running node's FSM holds want commands
// and checks that they hold identical sequences.
func (c *testCluster) waitForSameFSMs(want int) {
	c.t.Helper()
	c.waitFor(30*time.Second, fmt.Sprintf("every FSM to apply %d commands", want), func() bool {
		for _, n := range c.running() {
			if n.fsm.len() < want {
				return false
			}
		}
		return true
	})
	var ref [][]byte
	var refID ServerID
	for _, n := range c.running() {
		got := n.fsm.commands()
		if len(got) != want {
			c.t.Fatalf("%s applied %d commands, want %d", n.id, len(got), want)
		}
		if ref == nil {
			ref, refID = got, n.id
			continue
		}
		for i := range got {
			if !bytes.Equal(got[i], ref[i]) {
				c.t.Fatalf("%s and %s differ at command %d: %q vs %q", n.id, refID, i, got[i], ref[i])
			}
		}
	}
}

func TestReplication_ConcurrentAppliesGiveIdenticalFSMs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		const clients, perClient = 10, 1000
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for cl := 0; cl < clients; cl++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < perClient; i++ {
					f := leader.raft.Apply([]byte(fmt.Sprintf("c%d-%d", cl, i)), 0)
					if err := f.Error(); err != nil {
						errs <- fmt.Errorf("client %d apply %d: %w", cl, i, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		c.waitForSameFSMs(clients * perClient)
	})
}
