package raft

import "time"

// handOffLeadership is Shutdown's first step on a leader configured with
// LeadershipTransferOnShutdown: it transfers leadership to the most
// up-to-date voter and waits for the transfer to end, for at most three
// election timeouts (the run loop itself gives up on a transfer after
// one election timeout to catch the target up and another for it to
// win). Whatever the outcome, Shutdown then goes on.
func (r *Raft) handOffLeadership() {
	conf := r.config()
	if !conf.LeadershipTransferOnShutdown || r.failed.Load() || r.State() != Leader {
		return
	}
	start := time.Now()
	f := r.LeadershipTransfer()
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	bound := time.NewTimer(3 * conf.ElectionTimeout)
	defer bound.Stop()
	select {
	case err := <-done:
		if err != nil {
			r.logger.Warn("shutting down without handing leadership over", "error", err)
			return
		}
		r.logger.Info("handed leadership over before shutting down", "took", time.Since(start))
	case <-bound.C:
		r.logger.Warn("shutting down without handing leadership over: the transfer did not end in time", "waited", time.Since(start))
	}
}
