package raft

import (
	"sync"
	"time"
)

// maxReadLinger bounds how long the run loop waits after a verification round
// for the readers it answered to come back (afterRound, onFollowerReadDone).
const maxReadLinger = time.Millisecond

// maxIntakeReads bounds the capacity of the slice the intake keeps for
// reuse.
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
// When a round ends, the leader may linger before it starts the next one
// (afterRound), and a follower likewise when its leader's answer comes in
// (onFollowerReadDone): the calls that arrived while the round or request
// flew are waiting, but the readers it just answered (at once: their
// index was applied already) are on their way back, and without the wait
// they would miss the next round and wait for the one after it.
// Closed-loop readers would then split into two groups, each round
// serving one, and twice as many rounds would serve the same reads. The
// linger ends as soon as as many calls wait as the round answered plus
// those that waited already (want), or after as long as the round took
// (up to maxReadLinger), whichever comes first: a read waits at most one
// round longer than it would without the linger, the wait that the split
// in two groups costs every read.
//
// Calls that wait in the intake together share one future (join): every
// one of them needs a round (or a request to the leader) that starts after
// it was made, the run loop starts one for all of them once it takes them,
// and they all get the same answer, the index recorded for that round.
// A call then costs no future, no channel and no answer of its own: the
// run loop answers the shared future once, and its callers wake together.
// They wait on its answer alone, not also on the node's stop as other
// futures do (deferError.Error), which halves the cost of each wait: one
// goroutine per shared future waits for the stop instead, and answers the
// future ErrRaftShutdown if the node stopped without answering it
// (answerOnStop).
//
// The rule that no call is forgotten: collecting is set only by the run
// loop, only while it will come back (a pending round, or a linger whose
// timer wakes it); when it clears collecting, it wakes itself if calls are
// waiting (settleReadIntake). A caller that finds collecting unset, or
// finds want calls waiting, wakes the run loop, once per batch (poked).
type readIntake struct {
	// wakeCh (capacity one) wakes the run loop to take the waiting calls.
	wakeCh chan struct{}

	mu sync.Mutex
	// pending are the futures waiting for the run loop: the open one,
	// which new calls join, when there is one.
	pending []*readIndexFuture
	// open is the future that calls made now join, nil when the run loop
	// took the last one; calls counts the calls waiting. Under mu.
	open  *readIndexFuture
	calls int
	// poked is set while a wake-up is on its way.
	poked bool
	// collecting is set while the run loop will take the waiting calls
	// without being woken. Written by the run loop only, under mu.
	collecting bool
	// want, while positive, is how many waiting calls end a linger: the
	// call that brings calls to want wakes the run loop although
	// collecting is set. Under mu; set by the run loop, and lowered to 1
	// (any call wakes) by the linger timer.
	want int
	// lingerEnd is when the current linger ends; a timer of an earlier
	// linger that fires before it does nothing. Under mu.
	lingerEnd time.Time
	// lingering is set by the run loop while it lingers, until
	// lingerUntil; both the run loop's.
	lingering   bool
	lingerUntil time.Time
	// lingerTimer ends a linger; the run loop's, made on the first one.
	lingerTimer *time.Timer
	// spare is the run loop's: the slice the next batch goes into.
	spare []*readIndexFuture
}

func newReadIntake() *readIntake {
	return &readIntake{wakeCh: make(chan struct{}, 1)}
}

// join queues a ReadIndex call for the run loop and returns its future,
// which it shares with the calls waiting with it. stoppedCh is the node's,
// for a new future.
func (in *readIntake) join(stoppedCh <-chan struct{}) *readIndexFuture {
	in.mu.Lock()
	f := in.open
	if f == nil {
		f = &readIndexFuture{shared: true}
		f.init(stoppedCh)
		go f.answerOnStop()
		in.open = f
		in.pending = append(in.pending, f)
	}
	f.calls++
	in.calls++
	wake := (!in.collecting || (in.want > 0 && in.calls >= in.want)) && !in.poked
	if wake {
		in.poked = true
	}
	in.mu.Unlock()
	if wake {
		notify(in.wakeCh)
	}
	return f
}

// take returns the waiting calls, which the caller owns until it hands the
// slice back with giveBack. Run loop only.
func (in *readIntake) take() []*readIndexFuture {
	in.mu.Lock()
	batch := in.pending
	in.pending = in.spare
	in.spare = nil
	in.open, in.calls = nil, 0
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
// without being woken, and ends a linger; clearing collecting wakes the
// run loop when calls are waiting. Run loop only.
func (in *readIntake) setCollecting(c bool) {
	if c == in.collecting && !in.lingering {
		return
	}
	in.mu.Lock()
	if in.lingering {
		in.lingering = false
		in.want = 0
		in.lingerTimer.Stop()
	}
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

// linger keeps the run loop away from the intake until extra more calls
// wait than wait now, or d has passed, whichever comes first; the wake-up
// comes through wakeCh. Run loop only, while collecting is set.
func (in *readIntake) linger(extra int, d time.Duration) {
	in.mu.Lock()
	in.want = in.calls + extra
	in.lingerEnd = time.Now().Add(d)
	in.lingering, in.lingerUntil = true, in.lingerEnd
	in.mu.Unlock()
	if in.lingerTimer == nil {
		in.lingerTimer = time.AfterFunc(d, in.lingerExpired)
	} else {
		in.lingerTimer.Reset(d)
	}
}

// lingerExpired ends a linger whose time is up: the calls waiting, if
// any, wake the run loop now, and any call made later does.
func (in *readIntake) lingerExpired() {
	in.mu.Lock()
	if in.want == 0 || time.Now().Before(in.lingerEnd) {
		// No linger, or a later one than this timer was armed for.
		in.mu.Unlock()
		return
	}
	in.want = 1
	wake := len(in.pending) > 0 && !in.poked
	if wake {
		in.poked = true
	}
	in.mu.Unlock()
	if wake {
		notify(in.wakeCh)
	}
}

// afterRound comes back to the intake after the leader's verification
// rounds moved on, answering at once answered calls made on this node: if
// no round is pending any more, the calls waiting start the next one, now
// or after a linger for the answered readers (see readIntake).
func (r *Raft) afterRound(answered int) {
	in := r.intake
	if in.lingering && time.Now().Before(in.lingerUntil) {
		// The timer or the readers end it.
		return
	}
	lead := r.st.lead
	if lead == nil {
		r.onReadIntake()
		return
	}
	if len(lead.verifies) > 0 {
		// Its end brings the run loop back: one round in flight at a
		// time, every call that arrives meanwhile joins the next.
		return
	}
	if answered > 0 {
		if d := min(time.Since(lead.roundStarted), maxReadLinger); d > 0 {
			in.linger(answered, d)
			return
		}
	}
	r.onReadIntake()
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
// answer comes to onFollowerReadDone). It ends a linger.
func (r *Raft) settleReadIntake() {
	var c bool
	if lead := r.st.lead; lead != nil {
		c = len(lead.verifies) > 0
	} else {
		c = r.st.freads.sending
	}
	r.intake.setCollecting(c)
}
