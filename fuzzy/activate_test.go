package fuzzy

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestEpisodeTargetIsFinalWhenItComesInForce checks that a late-timeout-now
// episode aimed at a named server knows its target before the network
// sees it. The network's goroutines (every disk write, every message) read
// the fields of the episodes in force, so a target set after activation is
// a data race, which the race detector once found in a CI run of TestFuzzy.
func TestEpisodeTargetIsFinalWhenItComesInForce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const seed = 1
		sched := newSchedule(seed, time.Second)
		net := newNetwork(newLockedRand(seed), rpcTimeout, sched.diskBase)
		// Guarded by net.mu, under which onActivate runs.
		atActivation := make(map[*activeEpisode]string)
		net.onActivate = func(a *activeEpisode) { atActivation[a] = string(a.node) }
		c := newCluster(sched, net, newChecker(), &runStats{}, newLogRing(300), newEventLog())
		if err := c.bootstrap(); err != nil {
			t.Fatal(err)
		}
		for _, n := range c.nodes {
			c.restart(n)
		}
		defer c.shutdown()
		if !c.waitFor(recoveryTimeout, func() bool { return c.leader() != nil }) {
			t.Fatalf("no leader within %v", recoveryTimeout)
		}

		e := &episode{kind: faultLateTimeoutNow, toServer: true, delay: heartbeatTimeout, length: 10 * heartbeatTimeout}
		a := c.begin(e)
		if a == nil {
			t.Fatalf("the episode did not begin; events:\n%s", c.events.tail(20))
		}
		net.mu.Lock()
		seen, activated := atActivation[a]
		net.mu.Unlock()
		switch {
		case !activated:
			t.Errorf("the episode began but never came in force")
		case a.node == "":
			t.Errorf("the episode names no target")
		case seen != string(a.node):
			t.Errorf("the episode came in force aimed at %q, then its target became %q", seen, a.node)
		}
		c.end(a)
	})
}
