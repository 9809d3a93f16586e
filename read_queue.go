package raft

import (
	"slices"
	"sort"
)

// queueConfirmedRead hands a ReadIndex request whose index is confirmed,
// by this leader or by the leader a follower asked (follower_read.go), to
// the FSM path: it is answered once this node's FSM has applied its index.
//
// The read joins the FSM task that covers its index if one is built and
// not yet taken: with the FSM goroutine's queue full, the task can be built
// up to the very index the read recorded, and no later task might ever
// come to answer it. A follower's reads may arrive below reads already
// waiting (a leader's grow with its commit index), so reads are kept in
// index order.
func (r *Raft) queueConfirmedRead(f *readIndexFuture) {
	t := r.st.pendingFSM
	switch {
	case t != nil && t.restoreID == "" && t.from > 0 && f.index >= t.from && f.index <= t.to:
		t.reads = insertRead(t.reads, f)
	case f.index <= r.st.dispatched,
		t != nil && t.restoreID != "" && !t.userRestore && f.index <= t.to:
		// Everything up to the index is on its way to the FSM; a marker
		// behind it answers the read.
		r.st.fsmQueue = append(r.st.fsmQueue, &fsmTask{reads: []*readIndexFuture{f}})
	default:
		r.st.reads = insertRead(r.st.reads, f)
	}
}

// insertRead inserts f into reads, kept in index order, after the reads
// at the same index.
func insertRead(reads []*readIndexFuture, f *readIndexFuture) []*readIndexFuture {
	i := sort.Search(len(reads), func(i int) bool { return reads[i].index > f.index })
	return slices.Insert(reads, i, f)
}
