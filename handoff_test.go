package raft

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// shutdownWriteGap shuts the leader of a 3-node cluster down, with
// LeadershipTransferOnShutdown set to handOff, and returns how long writes
// were unavailable, in fake time: from the Shutdown call to the first
// write the next leader commits.
func shutdownWriteGap(t *testing.T, handOff bool) (gap, electionTimeout time.Duration) {
	t.Helper()
	var conf *Config
	c := newTestCluster(t, 3, clusterOpts{
		conf: func(c *Config) {
			c.LeadershipTransferOnShutdown = handOff
			conf = c
		},
	})
	defer c.shutdown()
	old := c.waitForLeader()
	applyAll(t, old, "a", 20)
	start := time.Now()
	c.stop(old)
	for i := 0; ; i++ {
		leader := c.waitForLeader()
		if leader.raft.Apply([]byte(fmt.Sprintf("b-%d", i)), conf.ElectionTimeout).Error() == nil {
			return time.Since(start), conf.ElectionTimeout
		}
	}
}

// Issue 13: a leader shut down on purpose used to leave its followers to
// notice after their election timeout and hold an election. With
// LeadershipTransferOnShutdown it hands leadership over first: writes
// resume within a small fraction of an election timeout. Without it, as
// before, they wait at least one election timeout.
func TestHandOff_ShutdownWithTransferKeepsTheWriteGapSmall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gap, et := shutdownWriteGap(t, true)
		t.Logf("write gap with the hand-off: %v (election timeout %v)", gap, et)
		if gap > et/10 {
			t.Fatalf("writes were unavailable for %v, want at most a tenth of the election timeout %v", gap, et)
		}
	})
}

func TestHandOff_ShutdownWithoutTransferWaitsForAnElection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gap, et := shutdownWriteGap(t, false)
		t.Logf("write gap without the hand-off: %v (election timeout %v)", gap, et)
		if gap < et {
			t.Fatalf("writes resumed after %v, less than an election timeout %v, with no hand-off", gap, et)
		}
	})
}
