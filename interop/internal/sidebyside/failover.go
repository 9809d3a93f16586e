package sidebyside

import (
	"fmt"
	"time"
)

// settleCommands is how many commands the leader commits, one at a time,
// before the kill, so that followers have heard from it and agree on the
// log: the cluster is in its steady state, not just after an election.
const settleCommands = 10

// failover kills the leader, gracefully (its Shutdown) or by a crash
// (Crash: no goodbye, connections dropped, stores stopped), and measures
// from the kill to the first command committed by the new leader.
func failover(c Cluster, crash bool, o Options, m *Measurement) error {
	leader, err := awaitLeader(c, o)
	if err != nil {
		return err
	}
	for i := range settleCommands {
		if err := leader.Apply(command(o.CmdSize, 0, uint64(i+1)), 0); err != nil {
			return fmt.Errorf("committing before the kill: %w", err)
		}
	}
	var survivors []Node
	for _, n := range c.Nodes() {
		if n != leader {
			survivors = append(survivors, n)
		}
	}
	watch := watchCommit(survivors, command(o.CmdSize, 0, settleCommands+1))
	start := time.Now()
	if crash {
		leader.Crash()
	} else if err := leader.Shutdown(); err != nil {
		watch.cancel()
		return fmt.Errorf("shutting the leader down: %w", err)
	}
	win, err := watch.wait(o.Timeout)
	if err != nil {
		return err
	}
	m.FailoverMs = ms(win.at.Sub(start))
	return nil
}
