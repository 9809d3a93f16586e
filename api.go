package raft

import "sync"

// Raft is a node of a Raft cluster. (Skeleton: the full type arrives with
// the run loop.)
type Raft struct {
	// RestoreCommittedLogs is Config.RestoreCommittedLogs.
	RestoreCommittedLogs bool

	observersMu sync.RWMutex
	observers   map[uint64]*Observer
	shutdownCh  chan struct{}
}

func (r *Raft) waitStopped() {}
