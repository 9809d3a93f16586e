package raft

import (
	"fmt"
	"sync"
	"time"
)

// stuckCallWarnInterval is how often a Shutdown that is still waiting logs
// the call into the FSM it waits for.
const stuckCallWarnInterval = 5 * time.Second

// fsmCall is the call into the user's FSM that the FSM goroutine is making,
// if any, so that a Shutdown held up by it can name it. The FSM goroutine
// writes it; Shutdown's watcher reads it.
type fsmCall struct {
	mu sync.Mutex
	// name is the method called, empty when no call is under way.
	name string
	// from and to are the entries the call concerns (the snapshot's last
	// entry for Snapshot and Restore).
	from, to uint64
	since    time.Time
}

// begin records that the FSM goroutine is calling name for entries
// from..to, starting at since (the caller's start, which it measures too).
func (c *fsmCall) begin(name string, from, to uint64, since time.Time) {
	c.mu.Lock()
	c.name, c.from, c.to, c.since = name, from, to, since
	c.mu.Unlock()
}

// end records that the call returned.
func (c *fsmCall) end() {
	c.mu.Lock()
	c.name = ""
	c.mu.Unlock()
}

// describe names the call under way and how long it has been running, or
// returns "" when there is none.
func (c *fsmCall) describe() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.name == "" {
		return ""
	}
	at := fmt.Sprintf("at index %d", c.to)
	if c.from != c.to {
		at = fmt.Sprintf("for entries %d-%d", c.from, c.to)
	}
	return fmt.Sprintf("%s %s has not returned for %v", c.name, at, time.Since(c.since))
}

// warnWhileStopping runs beside a Shutdown until the node has stopped.
// Shutdown waits for a call into the FSM to return, however long it takes,
// because the FSM goroutine cannot be abandoned safely; every
// stuckCallWarnInterval this logs the call it is waiting for, so that a
// Shutdown that never returns says why.
func (r *Raft) warnWhileStopping() {
	t := time.NewTicker(stuckCallWarnInterval)
	defer t.Stop()
	for {
		select {
		case <-r.stoppedCh:
			return
		case <-t.C:
			if call := r.fsmCall.describe(); call != "" {
				r.logger.Warn(call + "; Shutdown waits for it")
			}
		}
	}
}
