package raft

import "sync"

// maxIntakeReads bounds the ReadIndex calls waiting in the intake; a call
// that finds it full takes readIndexCh instead, which blocks (up to the
// call's timeout) while the run loop is busy.
const maxIntakeReads = 4 * maxReadBatch

// readIntake is where ReadIndex calls made on this node wait for the run
// loop, without a turn of it per call.
//
// A turn of the run loop (its select over every channel it serves) costs
// more than the rest of a ReadIndex on the leader, and the calls of
// closed-loop readers arrive one by one, each as its reader wakes from the
// previous answer: sent down a channel, each call woke the run loop. Here
// a call wakes the run loop only when nothing else will bring it back to
// the intake: while a verification round that serves reads is pending on
// the leader, or a request to the leader is in flight on a follower, the
// run loop takes every call that arrived meanwhile when that round ends
// (onReplicationProgress, leader.go) or that answer comes in
// (onFollowerReadDone, follower_read.go). Those calls could not have used
// the pending round anyway: each needs a round that starts after it was
// made, and they all share the next one.
//
// The rule that no call is forgotten: collecting is set only by the run
// loop, only while it will come back; when it clears collecting, it wakes
// itself if calls are waiting (settleReadIntake). A caller that finds
// collecting unset wakes the run loop, once per batch (poked).
type readIntake struct {
	// wakeCh (capacity one) wakes the run loop to take the waiting calls.
	wakeCh chan struct{}

	mu      sync.Mutex
	pending []*readIndexFuture
	// poked is set while a wake-up is on its way.
	poked bool
	// collecting is set while the run loop will take the waiting calls
	// without being woken. Written by the run loop only, under mu.
	collecting bool
	// spare is the run loop's: the slice the next batch goes into.
	spare []*readIndexFuture
}

func newReadIntake() *readIntake {
	return &readIntake{wakeCh: make(chan struct{}, 1)}
}

// add queues f for the run loop and reports whether it did: false when
// the intake is full.
func (in *readIntake) add(f *readIndexFuture) bool {
	in.mu.Lock()
	if len(in.pending) >= maxIntakeReads {
		in.mu.Unlock()
		return false
	}
	in.pending = append(in.pending, f)
	wake := !in.collecting && !in.poked
	if wake {
		in.poked = true
	}
	in.mu.Unlock()
	if wake {
		notify(in.wakeCh)
	}
	return true
}

// take returns the waiting calls, which the caller owns until it hands the
// slice back with giveBack. Run loop only.
func (in *readIntake) take() []*readIndexFuture {
	in.mu.Lock()
	batch := in.pending
	in.pending = in.spare
	in.spare = nil
	in.poked = false
	in.mu.Unlock()
	return batch
}

// giveBack returns a batch's slice for reuse, its futures cleared. Run
// loop only.
func (in *readIntake) giveBack(batch []*readIndexFuture) {
	clear(batch)
	if cap(batch) <= maxIntakeReads {
		in.spare = batch[:0]
	}
}

// setCollecting records whether the run loop will come back to the intake
// without being woken; clearing it wakes the run loop when calls are
// waiting. Run loop only.
func (in *readIntake) setCollecting(c bool) {
	if c == in.collecting {
		return
	}
	in.mu.Lock()
	in.collecting = c
	wake := !c && len(in.pending) > 0 && !in.poked
	if wake {
		in.poked = true
	}
	in.mu.Unlock()
	if wake {
		notify(in.wakeCh)
	}
}

// onReadIntake takes the calls waiting in the intake, when woken or when
// it comes back to it, and records whether it will come back on its own.
func (r *Raft) onReadIntake() {
	in := r.intake
	batch := in.take()
	if len(batch) > 0 {
		r.onLocalReadIndexes(batch)
	}
	in.giveBack(batch)
	r.settleReadIntake()
}

// settleReadIntake records whether the run loop will come back to the
// intake on its own: while a verification round is pending on the leader
// (it ends in onReplicationProgress, or the leadership does, in
// stopLeading), or a request to the leader is in flight on a follower (its
// answer comes to onFollowerReadDone).
func (r *Raft) settleReadIntake() {
	var c bool
	if lead := r.st.lead; lead != nil {
		c = len(lead.verifies) > 0
	} else {
		c = r.st.freads.sending
	}
	r.intake.setCollecting(c)
}
