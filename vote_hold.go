package raft

import "time"

// The startup vote hold (Config.StartupVoteHold).
//
// A server that follows a leader refuses to vote for anyone else until a
// HeartbeatTimeout passes without word from it (rpc.go, requestVote);
// leases rely on that (lease.go). A server that restarts has forgotten
// its leader, so for StartupVoteHold after it starts, measured on its own
// clock (clock.go), it grants no vote and no pre-vote. The hold covers
// votes for others; its own first campaign waits at least a
// HeartbeatTimeout anyway. A vote request flagged as a leadership
// transfer is let through: the leader that sent the TimeoutNow behind it
// stopped serving lease reads when it started the transfer.

// voteHoldLeft returns how much of the startup vote hold is left, zero
// once it is over or when there is none.
func (r *Raft) voteHoldLeft() time.Duration {
	hold := r.config().StartupVoteHold
	if hold <= 0 {
		return 0
	}
	return max(0, hold-r.clock.now().Sub(r.startedAt))
}

// voteHeld reports whether a vote (or a pre-vote, with transfer false)
// must be refused because of the startup vote hold, and logs why.
func (r *Raft) voteHeld(candidate ServerAddress, transfer bool) bool {
	if transfer {
		return false
	}
	left := r.voteHoldLeft()
	if left <= 0 {
		return false
	}
	r.logger.Debug("refusing to vote during the startup vote hold", "from", candidate, "left", left)
	return true
}
