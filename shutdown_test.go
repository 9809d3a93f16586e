package raft

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func TestShutdown_IsIdempotentAndRefusesLaterCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		leader := c.waitForLeader()
		r := leader.raft
		if err := r.Shutdown().Error(); err != nil {
			t.Fatalf("first Shutdown: %v", err)
		}
		if err := r.Shutdown().Error(); err != nil {
			t.Fatalf("second Shutdown: %v", err)
		}
		if got := r.State(); got != Shutdown {
			t.Fatalf("state after Shutdown is %v", got)
		}
		if n := r.routines.running.Load() - r.routines.parked.Load(); n != 0 {
			t.Fatalf("%d goroutines still running after Shutdown returned", n)
		}
		for name, err := range map[string]error{
			"Apply":            r.Apply([]byte("x"), time.Second).Error(),
			"Barrier":          r.Barrier(time.Second).Error(),
			"VerifyLeader":     r.VerifyLeader().Error(),
			"BootstrapCluster": r.BootstrapCluster(Configuration{}).Error(),
		} {
			if !errors.Is(err, ErrRaftShutdown) {
				t.Errorf("%s after Shutdown: %v, want ErrRaftShutdown", name, err)
			}
		}
		leader.raft = nil
		c.shutdown()
		// Leaving the bubble checks that no goroutine outlives the nodes.
	})
}

// A node may begin shutting down by itself (ShutdownOnRemove, a fatal
// store error) before its owner calls Shutdown. The owner's Shutdown must
// still wait for every goroutine: the test cluster's membership test
// once ended its bubble with a replicator still running because the
// second call returned at once.
func TestShutdown_LaterCallWaitsForTheFirstToFinish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 10)
		r := leader.raft
		r.Shutdown() // begun elsewhere, not waited for
		if err := r.Shutdown().Error(); err != nil {
			t.Fatalf("second Shutdown: %v", err)
		}
		select {
		case <-r.stoppedCh:
		default:
			t.Fatal("the second Shutdown returned while the node's goroutines were still running")
		}
	})
}
