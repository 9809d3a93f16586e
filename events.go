package raft

import "fmt"

// The run loop's rare events.
//
// Every channel the run loop selects on costs it on each wait: a select
// locks, queues on and dequeues from all of its channels whenever the
// loop parks and wakes, which on the write path happens several times per
// commit. Requests and reports that arrive seldom therefore share one
// unbuffered channel, Raft.eventCh, and the loop tells them apart by
// type. A send on it still completes only once the run loop has taken the
// value, as a send on a channel of its own did, so a sender's later
// messages cannot overtake it.

// runLoopEvent is a value sent on Raft.eventCh: one of *bootstrapFuture,
// *configurationFuture, snapshotTaken, installResult, restoreCopied,
// compactionDone or transferResult.
type runLoopEvent any

// compactionDone is the log compactor's report on a head compaction
// (log_compactor.go).
type compactionDone writeResult

// onEvent handles one value from eventCh.
func (r *Raft) onEvent(ev runLoopEvent) {
	switch ev := ev.(type) {
	case *bootstrapFuture:
		ev.respond(r.liveBootstrap(ev.configuration))
	case *configurationFuture:
		ev.configurations = r.st.configs.clone()
		ev.respond(nil)
	case snapshotTaken:
		r.onSnapshotTaken(ev)
	case installResult:
		r.onInstallDone(ev)
	case restoreCopied:
		r.onRestoreCopied(ev)
	case compactionDone:
		r.onCompactionDone(writeResult(ev))
	case transferResult:
		r.onTransferDone(ev)
	default:
		r.logger.Error("run loop: unexpected event", "type", fmt.Sprintf("%T", ev))
	}
}
