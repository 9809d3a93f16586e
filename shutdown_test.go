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
