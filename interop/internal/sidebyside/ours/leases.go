package ours

import qraft "github.com/quorumkit/raft"

// configureLeases is the one place where the benchmark sets up lease reads
// for ours: the reads mode calls it on every node's Config of a cluster
// that measures the lease variant, and nowhere else. It returns whether it
// configured leases.
//
// The lease is half the heartbeat timeout (the library requires it to be
// at most the heartbeat timeout), with a tenth of it as the clock-drift
// margin, and every server refuses votes for one lease after it starts,
// as the lease's safety argument in lease.go requires.
func configureLeases(cfg *qraft.Config) bool {
	cfg.LeaseReadTimeout = cfg.HeartbeatTimeout / 2
	cfg.LeaseClockDrift = cfg.LeaseReadTimeout / 10
	cfg.StartupVoteHold = cfg.LeaseReadTimeout
	return true
}
