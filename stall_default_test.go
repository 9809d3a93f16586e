package raft

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// Issue 18 item 2: with the default LogWriteStallTimeout (30 s before) a
// leader whose disk stalled kept writes unavailable for 30.2 s. With
// DefaultConfig's timings, a leader whose StoreLogs never returns makes
// writes unavailable for at most LogWriteStallTimeout + 3 × ElectionTimeout
// (the bound Config.LogWriteStallTimeout documents), measured in fake time
// from the first write the stalled leader takes to the first write the
// new leader commits.
func TestStall_DefaultBoundsTheWriteGap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		def := DefaultConfig()
		stores := make(map[ServerID]*controlledStore)
		c := newTestCluster(t, 3, clusterOpts{
			conf: func(c *Config) {
				c.HeartbeatTimeout = def.HeartbeatTimeout
				c.ElectionTimeout = def.ElectionTimeout
				c.LeaderLeaseTimeout = def.LeaderLeaseTimeout
				c.CommitTimeout = def.CommitTimeout
				c.LogWriteStallTimeout = def.LogWriteStallTimeout
			},
			logs: func(id ServerID, s *InmemStore) LogStore {
				cs := newControlledStore(s)
				stores[id] = cs
				return cs
			},
		})
		defer c.shutdown()
		old := c.waitForLeader()
		applyAll(t, old, "a", 5)
		c.waitForSameFSMs(5)

		release := stores[old.id].holdWrites()
		defer release()
		start := time.Now()
		// Its followers store and commit this entry, but its own FSM
		// cannot apply it before its disk answers: the future waits.
		old.raft.Apply([]byte("stuck"), 0)
		<-stores[old.id].entered
		var gap time.Duration
		for i := 0; ; i++ {
			leader := c.waitForLeader(c.others(old)...)
			err := leader.raft.Apply([]byte(fmt.Sprintf("b-%d", i)), def.ElectionTimeout).Error()
			if err == nil {
				gap = time.Since(start)
				break
			}
		}
		bound := def.LogWriteStallTimeout + 3*def.ElectionTimeout
		t.Logf("writes resumed on a new leader %v after the stall (bound %v)", gap, bound)
		if gap > bound {
			t.Fatalf("writes were unavailable for %v, more than LogWriteStallTimeout + 3 × ElectionTimeout = %v", gap, bound)
		}
		if gap < def.LogWriteStallTimeout {
			t.Fatalf("writes resumed after %v, before the stall timeout %v", gap, def.LogWriteStallTimeout)
		}
	})
}
