package raft

import (
	"sync/atomic"
	"time"
)

// Handing Apply and Barrier requests to the leader.
//
// With BatchApplyCh off, an ApplyLog or Barrier call promises what an
// unbuffered hand-off would give: its timeout bounds how long the run loop
// takes to take the entry, and an entry not taken in time is answered
// ErrEnqueueTimeout and is never appended. Handing it over through an
// unbuffered channel keeps that promise, but then each call parks twice
// under load (in the send until the run loop receives, then on its
// answer), and every receive readies a caller that runs only to park
// again, on the run loop's processor, while the loop is batching.
//
// So applyCh is buffered (applyChCap) and a request carries its deadline
// and a state, on which the caller's wait and the run loop race with a
// compare-and-swap:
//
//   - applyQueued (the zero value): in applyCh or on its way there.
//   - applyTaken: the run loop took it before its deadline. Only a taken
//     request is appended, or refused by the run loop (ErrNotLeader...).
//   - applyExpired: its deadline passed first. Whoever moves it there
//     answers ErrEnqueueTimeout: the caller's Error, whose timer fires at
//     the deadline, or the run loop, which finds the deadline passed when
//     it receives the request (so a caller that never waits gets the same
//     answer). The run loop drops an expired request where it finds it.
//
// A request without a timeout has no deadline and only ever becomes taken.
// A queued request that the node never takes is answered ErrRaftShutdown
// by Error once the node has stopped, as any future. Requests leave
// applyCh in the order they entered it, so the entries of one goroutine
// keep their order. Memory stays bounded: a caller that finds applyCh full
// blocks in the send, under its timeout, as with an unbuffered channel.
//
// With BatchApplyCh on, the reference's buffered hand-off is kept as it
// is: MaxAppendEntries requests are queued and the timeout bounds only the
// wait for room in the queue (no deadline is set).

// The states of a request on its way to the run loop.
const (
	applyQueued uint32 = iota
	applyTaken
	applyExpired
)

// applyChMin is the least room in applyCh with BatchApplyCh off: more than
// the callers a busy leader usually has waiting, so that they seldom block
// in the send.
const applyChMin = 1024

// applyChCap returns the room in applyCh.
func applyChCap(c *Config) int {
	if c.BatchApplyCh {
		return c.MaxAppendEntries
	}
	return max(c.MaxAppendEntries, applyChMin)
}

// enqueueState is the part of a logFuture that its hand-off to the run loop
// uses (see the comment at the top of this file).
type enqueueState struct {
	// deadline is when the request expires if not taken; zero for none.
	// Written before the request is sent on applyCh, then only read.
	deadline time.Time
	state    atomic.Uint32
}

// take moves f from queued to taken, as the run loop receives it; now
// gives the time once for a whole batch. It reports false when f had
// expired (answering ErrEnqueueTimeout if its deadline passed just now):
// the run loop then drops f.
func (f *logFuture) take(now *lazyNow) bool {
	if !f.deadline.IsZero() && now.get().After(f.deadline) {
		f.expire()
		return false
	}
	return f.state.CompareAndSwap(applyQueued, applyTaken)
}

// expire moves f from queued to expired and answers it, unless the run
// loop took it first.
func (f *logFuture) expire() {
	if f.state.CompareAndSwap(applyQueued, applyExpired) {
		f.respond(ErrEnqueueTimeout)
	}
}

// Error waits for the answer. A request still queued with a deadline is
// expired by this wait when the deadline passes first.
func (f *logFuture) Error() error {
	if !f.deadline.IsZero() && f.state.Load() == applyQueued {
		f.waitTaken()
	}
	return f.deferError.Error()
}

// waitTaken waits until f is answered, the node stops or f's deadline
// passes, and then expires f unless the run loop took it.
func (f *logFuture) waitTaken() {
	t := time.NewTimer(time.Until(f.deadline))
	defer t.Stop()
	select {
	case <-f.doneCh:
	case <-f.stoppedCh:
	case <-t.C:
		f.expire()
	}
}

// lazyNow reads the clock once, the first time it is needed.
type lazyNow struct {
	t time.Time
}

func (n *lazyNow) get() time.Time {
	if n.t.IsZero() {
		n.t = time.Now()
	}
	return n.t
}
