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
// When no hot arm is ready, the loop waits in the full select at once. A
// yield before it (runtime.Gosched) was tried and left out: the yielding
// goroutine goes to the scheduler's global queue, behind every goroutine
// already runnable, and with 128 clients the leader's loop spent a third
// of the time waiting there (README, "Where the write path's time goes").

// hotArmStreak bounds the steps in a row served by serveHotArm.
const hotArmStreak = 16

// serveHotArm handles one ready hot event and reports whether it found one.
// Its arguments are the ones serveOne computed for its select, nil for an
// arm that is off; each arm does what the same arm of the select does.
func (r *Raft) serveHotArm(writeCh chan *writeOp, nextWrite *writeOp, writePos int,
	fsmCh chan *fsmTask, nextFSM *fsmTask, progressCh <-chan struct{}, applyCh chan *logFuture) bool {
	select {
	case res := <-r.writeDoneCh:
		r.onWriteDoneArm(res)
		return true
	default:
	}
	select {
	case <-progressCh:
		r.onProgressArm()
		return true
	default:
	}
	select {
	case fsmCh <- nextFSM:
		r.onFSMDispatched(nextFSM)
		return true
	default:
	}
	select {
	case writeCh <- nextWrite:
		r.st.writes.handedOff(writePos, time.Now())
		return true
	default:
	}
	select {
	case rpc := <-r.rpcCh:
		r.processRPC(rpc, false)
		return true
	default:
	}
	select {
	case f := <-applyCh:
		r.onApply(f)
		return true
	default:
	}
	return false
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
