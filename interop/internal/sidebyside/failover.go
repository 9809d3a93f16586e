package sidebyside

import (
	"fmt"
	"time"
)

// settleCommands is how many commands the leader commits, one at a time,
// before the kill, so that followers have heard from it and agree on the
// log: the cluster is in its steady state, not just after an election.
const settleCommands = 10

// settleAttempts bounds how often failover waits for a leader and settles
// again after the leader lost its place while settling.
const settleAttempts = 3

// failover kills the leader, gracefully (its Shutdown) or by a crash
// (Crash: no goodbye, connections dropped, stores stopped), and measures
// from the kill to the first command committed by the new leader.
func failover(c Cluster, crash bool, o Options, m *Measurement) error {
	leader, err := settleLeader(c, o)
	if err != nil {
		return err
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

// settleLeader waits for a leader and commits settleCommands through it, and
// returns it. A leader that loses its place meanwhile (a loaded machine
// can starve it of its lease) is no failover to measure: it waits for
// the next one and starts again, up to settleAttempts times.
func settleLeader(c Cluster, o Options) (Node, error) {
	var err error
	for range settleAttempts {
		var leader Node
		if leader, err = awaitLeader(c, o); err != nil {
			return nil, err
		}
		if err = settleOn(leader, o); err == nil {
			return leader, nil
		}
	}
	return nil, fmt.Errorf("committing before the kill (%d attempts): %w", settleAttempts, err)
}

func settleOn(leader Node, o Options) error {
	for i := range settleCommands {
		if err := leader.Apply(command(o.CmdSize, 0, uint64(i+1)), 0); err != nil {
			return err
		}
	}
	return nil
}
