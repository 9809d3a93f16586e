package raft

// The log compactor.
//
// After a snapshot of this node's own, the head of the log it covers is
// deleted. That DeleteRange may be large (SnapshotThreshold entries and
// more), so it does not run on the log writer, where every acknowledgement
// would wait behind it: the run loop hands it to this goroutine, which
// runs it beside the writer's StoreLogs calls. The reference does the
// same from its snapshot goroutine, so a LogStore written for it already
// takes a head DeleteRange concurrently with StoreLogs. The run loop
// orders a compaction with every op that deletes or resyncs
// (writeQueue.next and nextCompaction in log_writer.go), so two deletions
// never run at once.
//
// A compaction that fails is logged and forgotten: the entries it left
// are covered by the snapshot, and the next snapshot deletes them.

// runLogCompactor is the log compactor goroutine. It receives head
// compactions on compactCh and answers each on eventCh (compactionDone).
func (r *Raft) runLogCompactor() {
	for {
		select {
		case op := <-r.compactCh:
			res := writeResult{op: op, err: r.compact(op.compactTo, keyCompactLogs)}
			select {
			case r.eventCh <- compactionDone(res):
			case <-r.shutdownCh:
				return
			}
		case <-r.shutdownCh:
			return
		}
	}
}

// onCompactionDone handles the log compactor's report.
func (r *Raft) onCompactionDone(res writeResult) {
	if res.err != nil {
		r.logger.Error("failed to compact logs", "error", res.err)
	}
	r.st.writes.compactionDone(res.err == nil)
	// compactedTo counts only compactions done or still queued, so that
	// the next snapshot queues again one that failed (invariant I6).
	r.recountCompaction()
}
