package raft

import (
	"time"

	"github.com/hashicorp/go-metrics"
)

// oldestLogAgeInterval is how often a leader reports the age of its oldest
// log entry.
const oldestLogAgeInterval = 10 * time.Second

// emitPeriodicMetrics reports gauges that are sampled rather than
// event-driven. It runs until shutdown.
func (r *Raft) emitPeriodicMetrics() {
	t := time.NewTicker(oldestLogAgeInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if r.State() == Leader {
				metrics.SetGauge([]string{"raft", "leader", "oldestLogAge"}, float32(r.oldestLogAge()/time.Millisecond))
			}
		case <-r.shutdownCh:
			return
		}
	}
}

// oldestLogAge returns the age of the first entry in the log store, or 0
// when it is unknown.
func (r *Raft) oldestLogAge() time.Duration {
	first, err := r.logs.FirstIndex()
	if err != nil || first == 0 {
		return 0
	}
	var l Log
	if err := r.logs.GetLog(first, &l); err != nil || l.AppendedAt.IsZero() {
		return 0
	}
	return time.Since(l.AppendedAt)
}
