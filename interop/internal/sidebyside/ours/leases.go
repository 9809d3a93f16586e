package ours

import qraft "github.com/quorumkit/raft"

// configureLeases is THE ONE PLACE where the benchmark sets up lease
// reads for ours: the reads mode calls it on every node's Config of a
// cluster that measures the lease variant, and nowhere else. It returns
// whether it configured leases.
//
// TO FILL when the lease branch (issue 16) lands: set LeaseReadTimeout,
// LeaseClockDrift and StartupVoteHold (at least the lease) on cfg, and
// return true. Until then it sets nothing and returns false, so that the
// reads mode reports the lease variant as unsupported rather than measure
// ReadLease falling back to a ReadIndex round trip under a lease label.
func configureLeases(cfg *qraft.Config) bool {
	_ = cfg
	return false
}
