package raft

import "time"

// The startup hold: what a server does with vote requests just after it
// starts.
//
// A server that follows a leader refuses to vote for anyone else until a
// HeartbeatTimeout passes without word from it (stickyRefusal in
// election.go); leases rely on that (lease.go). A server that restarts has
// forgotten its leader, so for a while after it starts, measured on its own
// clock (clock.go), it refuses vote and pre-vote requests before looking at
// their term, as if it had just heard from a leader: for one
// HeartbeatTimeout always (so that a member restarting behind a removal
// cannot take a removed server's raised term), and for
// Config.StartupVoteHold when that is longer (so that a lease granted
// before the restart runs out before this server votes again). Its own
// first campaign waits at least a HeartbeatTimeout anyway. A vote request
// flagged as a leadership transfer is let through: the leader that sent
// the TimeoutNow behind it stopped serving lease reads when it started the
// transfer.

// startHold returns how long after its start this server refuses vote and
// pre-vote requests: the longer of HeartbeatTimeout and
// Config.StartupVoteHold, as they were when it started (a HeartbeatTimeout
// reloaded later does not change it).
func (r *Raft) startHold() time.Duration { return r.startHoldFor }
