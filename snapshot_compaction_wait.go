package raft

// Raft.Snapshot answers once the log compaction its snapshot allows has
// run, as the reference's does: an application that takes a snapshot to
// shrink its log (before a backup, or in a test that then reads the log
// store's FirstIndex) sees the log already shrunk when the future answers.
// The compaction itself still runs on the log compactor, off the write
// path (log_compactor.go); only the caller of Snapshot waits for it.
//
// A waiter is released when the compactions done reach the index that was
// the highest queued when its snapshot was recorded, or when no
// compaction is pending any more: one that failed is logged and forgotten
// (onCompactionDone), and a reset may drop one that was queued; the
// snapshot itself is stored either way, so Snapshot still answers nil.

// snapshotWaiter is a Raft.Snapshot call waiting for compaction.
type snapshotWaiter struct {
	// upTo is the compaction index the call waits for.
	upTo uint64
	// recorded is closed to answer the call (snapshotTaken.recorded).
	recorded chan struct{}
}

// compactionPending reports whether any compaction is queued or running,
// on the log compactor or as part of a write.
func (r *Raft) compactionPending() bool {
	for _, op := range r.st.writes.all() {
		if op.compactTo > 0 {
			return true
		}
	}
	return false
}

// releaseSnapshotWaiters answers the Snapshot calls whose compaction has
// run or can no longer run. The run loop calls it after every step while
// any call waits.
func (r *Raft) releaseSnapshotWaiters() {
	pending := r.compactionPending()
	kept := r.st.snapshotWaiters[:0]
	for _, w := range r.st.snapshotWaiters {
		if pending && r.st.writes.compacted < w.upTo {
			kept = append(kept, w)
			continue
		}
		close(w.recorded)
	}
	clear(r.st.snapshotWaiters[len(kept):])
	r.st.snapshotWaiters = kept
}
