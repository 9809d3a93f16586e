package raft

import "time"

// The run loop's hot arms.
//
// A select with many cases locks every channel it names, twice when it has
// to wait, and the run loop's select names about twenty. Most steps under
// load are one of a few events: a batch of Apply calls, a report from the
// log writer, replication progress, the FSM goroutine taking its next task,
// the writer taking its next write, and on a follower the next RPC. Tried
// one at a time, a receive from an empty channel or a send nobody takes
// costs a few loads and no lock, and a ready one locks only its own
// channel. serveOne tries these first and falls back to the full select
// when none is ready, or after hotArmStreak steps in a row served here, so
// that a ready timer or a rarely used channel is still served within a
// bounded number of steps (the full select picks at random among the
// ready arms). Shutdown and heartbeats keep their place ahead of both.
//
// When no hot arm is ready, the loop yields once and tries them again
// before it waits. A step usually wakes another goroutine (the log writer,
// a replicator, the FSM goroutine, a client), which the scheduler runs next
// on this processor; its answer is then often ready when the loop comes
// back, and costs neither the full select's wait nor the sender's wake-up
// of a parked loop. Under load, applies that arrive meanwhile also join
// one batch instead of one step each.

// hotArmStreak bounds the steps in a row served by serveHotArm.
const hotArmStreak = 16

// serveHotArm handles one ready hot event and reports whether it found one.
// Its arguments are the ones serveOne computed for its select, nil for an
// arm that is off; each arm does what the same arm of the select does.
// With idle set the loop comes back from a yield, and a ready arm ends the
// idle time the yield began.
func (r *Raft) serveHotArm(writeCh chan *writeOp, nextWrite *writeOp, writePos int,
	fsmCh chan *fsmTask, nextFSM *fsmTask, progressCh <-chan struct{}, applyCh chan *logFuture, idle bool) bool {
	select {
	case res := <-r.writeDoneCh:
		r.endIdle(idle)
		r.onWriteDoneArm(res)
		return true
	default:
	}
	select {
	case <-progressCh:
		r.endIdle(idle)
		r.onProgressArm()
		return true
	default:
	}
	select {
	case fsmCh <- nextFSM:
		r.endIdle(idle)
		r.onFSMDispatched(nextFSM)
		return true
	default:
	}
	select {
	case writeCh <- nextWrite:
		r.endIdle(idle)
		r.st.writes.handedOff(writePos, time.Now())
		return true
	default:
	}
	select {
	case rpc := <-r.rpcCh:
		r.endIdle(idle)
		r.processRPC(rpc, false)
		return true
	default:
	}
	select {
	case f := <-applyCh:
		r.endIdle(idle)
		r.onApply(f)
		return true
	default:
	}
	return false
}

// endIdle tells the load meter that the loop has work again, if it was
// idle.
func (r *Raft) endIdle(idle bool) {
	if idle {
		r.st.load.working()
	}
}

// onWriteDoneArm handles a report of the log writer, then does what the
// next round of the select would do, without that round.
func (r *Raft) onWriteDoneArm(res writeResult) {
	r.onWriteDone(res)
	r.handOffWrite()
	r.dispatchFSM()
}

// onProgressArm handles replication progress on a leader.
func (r *Raft) onProgressArm() {
	r.onReplicationProgress()
	r.dispatchFSM()
}
