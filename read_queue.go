package raft

import (
	"slices"
	"sort"
	"sync"
	"sync/atomic"
)

// queueConfirmedRead hands a ReadIndex request whose index is confirmed,
// by this leader or by the leader a follower asked (follower_read.go), to
// the FSM path: it is answered once this node's FSM has applied its index.
//
// A read whose index the FSM has applied already is answered at once: the
// FSM's state only moves forward. One whose index is on its way to the FSM
// joins a marker task queued behind it, shared by every such read until
// the FSM goroutine takes it. The read joins the FSM task that covers its
// index if one is built and not yet taken: with the FSM goroutine's queue
// full, the task can be built up to the very index the read recorded, and
// no later task might ever come to answer it. A follower's reads may
// arrive below reads already waiting (a leader's grow with its commit
// index), so reads are kept in index order.
//
// It reports whether f was answered at once.
func (r *Raft) queueConfirmedRead(f *readIndexFuture) bool {
	if r.readsHeld() {
		// The FSM may hold a state that is not committed; the read waits
		// in st.reads until it is (unconfirmed_snapshot.go).
		r.st.reads = insertRead(r.st.reads, f)
		return false
	}
	if f.index <= r.pub.appliedIndex.Load() {
		f.respond(nil)
		return true
	}
	t := r.st.pendingFSM
	switch {
	case t != nil && t.restoreID == "" && t.from > 0 && f.index >= t.from && f.index <= t.to:
		t.reads = insertRead(t.reads, f)
	case f.index <= r.st.dispatched,
		t != nil && t.restoreID != "" && f.index <= t.to:
		// Everything up to the index is on its way to the FSM; a marker
		// behind it answers the read.
		r.readMarker().reads = append(r.readMarker().reads, f)
	default:
		r.st.reads = insertRead(r.st.reads, f)
	}
	return false
}

// readMarker returns a marker task (reads only) that the FSM goroutine
// takes after every task handed to it or queued so far: the last one
// queued, or the one built and not yet taken when nothing is queued behind
// it, or else a new one at the end of the queue.
func (r *Raft) readMarker() *fsmTask {
	if n := len(r.st.fsmQueue); n > 0 {
		if t := r.st.fsmQueue[n-1]; t.isMarker() {
			return t
		}
	} else if t := r.st.pendingFSM; t != nil && t.isMarker() {
		return t
	}
	t := &fsmTask{}
	r.st.fsmQueue = append(r.st.fsmQueue, t)
	return t
}

// insertRead inserts f into reads, kept in index order, after the reads
// at the same index.
func insertRead(reads []*readIndexFuture, f *readIndexFuture) []*readIndexFuture {
	i := sort.Search(len(reads), func(i int) bool { return reads[i].index > f.index })
	return slices.Insert(reads, i, f)
}

// readWaiters are reads answered once the FSM has applied their index,
// waiting outside the run loop: the FSM goroutine answers them after each
// task (runFSM, fsm.go). Lease reads served on the caller's goroutine
// wait here (lease_view.go); the run loop's reads wait in fsmTask.reads
// instead (queueConfirmedRead).
type readWaiters struct {
	// n counts the reads waiting, so the FSM goroutine takes the lock only
	// when there are some. It is raised before the applied index is
	// checked (wait), and the FSM goroutine publishes the applied index
	// before it reads n (release): either the read sees the index, or the
	// FSM goroutine sees the read.
	n     atomic.Int64
	mu    sync.Mutex
	reads []*readIndexFuture
}

// wait answers f once applied has reached f.index.
func (w *readWaiters) wait(f *readIndexFuture, applied *atomic.Uint64) {
	w.mu.Lock()
	w.n.Add(1)
	if f.index <= applied.Load() {
		w.n.Add(-1)
		w.mu.Unlock()
		f.respond(nil)
		return
	}
	w.reads = append(w.reads, f)
	w.mu.Unlock()
}

// release answers the waiting reads at or below applied, the FSM's
// published applied index. Called by the FSM goroutine after it published
// that index.
func (w *readWaiters) release(applied uint64) {
	if w.n.Load() == 0 {
		return
	}
	var done []*readIndexFuture
	w.mu.Lock()
	kept := w.reads[:0]
	for _, f := range w.reads {
		if f.index <= applied {
			done = append(done, f)
		} else {
			kept = append(kept, f)
		}
	}
	clear(w.reads[len(kept):])
	w.reads = kept
	w.n.Store(int64(len(kept)))
	w.mu.Unlock()
	for _, f := range done {
		f.respond(nil)
	}
}
