package raft

import (
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestVoteTally(t *testing.T) {
	cases := []struct {
		name      string
		voters    []ServerID
		answers   []voteResult
		won, lost bool
	}{
		{"single voter wins alone", []ServerID{"a"}, []voteResult{{from: "a", granted: true}}, true, false},
		{"two of three win", []ServerID{"a", "b", "c"},
			[]voteResult{{from: "a", granted: true}, {from: "b", granted: true}}, true, false},
		{"one of three is undecided", []ServerID{"a", "b", "c"},
			[]voteResult{{from: "a", granted: true}, {from: "b"}}, false, false},
		{"two refusals of three lose", []ServerID{"a", "b", "c"},
			[]voteResult{{from: "a", granted: true}, {from: "b"}, {from: "c"}}, false, true},
		{"repeated grants count once", []ServerID{"a", "b", "c"},
			[]voteResult{{from: "a", granted: true}, {from: "a", granted: true}}, false, false},
		{"non-voters do not count", []ServerID{"a", "b", "c"},
			[]voteResult{{from: "a", granted: true}, {from: "x", granted: true}}, false, false},
		{"two of four do not win", []ServerID{"a", "b", "c", "d"},
			[]voteResult{{from: "a", granted: true}, {from: "b", granted: true}, {from: "c"}}, false, false},
		{"two refusals of four lose", []ServerID{"a", "b", "c", "d"},
			[]voteResult{{from: "c"}, {from: "d"}}, false, true},
	}
	for _, c := range cases {
		tally := newVoteTally(c.voters)
		for _, a := range c.answers {
			tally.record(a.from, a.granted)
		}
		if tally.won() != c.won || tally.lost() != c.lost {
			t.Errorf("%s: won=%v lost=%v, want won=%v lost=%v", c.name, tally.won(), tally.lost(), c.won, c.lost)
		}
	}
}

func TestCandidateUpToDate(t *testing.T) {
	cases := []struct {
		ourIndex, ourTerm, candIndex, candTerm uint64
		want                                   bool
	}{
		{5, 2, 5, 2, true},
		{5, 2, 6, 2, true},
		{5, 2, 4, 2, false},
		{5, 2, 1, 3, true},
		{5, 3, 9, 2, false},
		{0, 0, 0, 0, true},
	}
	for _, c := range cases {
		if got := candidateUpToDate(c.ourIndex, c.ourTerm, c.candIndex, c.candTerm); got != c.want {
			t.Errorf("candidateUpToDate(%d,%d,%d,%d) = %v, want %v", c.ourIndex, c.ourTerm, c.candIndex, c.candTerm, got, c.want)
		}
	}
}

func entriesFrom(first uint64, terms ...uint64) []*Log {
	out := make([]*Log, len(terms))
	for i, t := range terms {
		out[i] = &Log{Index: first + uint64(i), Term: t}
	}
	return out
}

func TestMemLog(t *testing.T) {
	var m memLog
	m.reset(3, 1) // entries 1..3 are in the store
	if got := m.firstHeld(); got != 4 {
		t.Fatalf("firstHeld of an empty view = %d, want 4", got)
	}
	m.append(entriesFrom(4, 2, 2, 3))
	if i, term := m.last(); i != 6 || term != 3 {
		t.Fatalf("last = %d/%d, want 6/3", i, term)
	}
	if term, ok := m.term(5); !ok || term != 2 {
		t.Fatalf("term(5) = %d,%v", term, ok)
	}
	if _, ok := m.term(3); ok {
		t.Fatal("term(3) should come from the store")
	}
	got, ok := m.collect(nil, 5, 10, 1<<20)
	if !ok || len(got) != 2 || got[0].Index != 5 {
		t.Fatalf("collect(5) = %v,%v", got, ok)
	}
	// Truncation inside the held entries.
	m.truncate(5, 2)
	if i, term := m.last(); i != 4 || term != 2 || m.held() != 1 {
		t.Fatalf("after truncate(5): last %d/%d held %d", i, term, m.held())
	}
	// Truncation below what is held.
	m.append(entriesFrom(5, 4))
	m.truncate(2, 1)
	if i, term := m.last(); i != 1 || term != 1 || m.held() != 0 || m.firstHeld() != 2 {
		t.Fatalf("after truncate(2): last %d/%d held %d first %d", i, term, m.held(), m.firstHeld())
	}
	m.append(entriesFrom(2, 5, 5, 5, 5))
	m.trim(3)
	if m.firstHeld() != 4 || m.held() != 2 {
		t.Fatalf("after trim(3): first %d held %d", m.firstHeld(), m.held())
	}
	m.trim(100)
	if m.held() != 0 || m.firstHeld() != 6 {
		t.Fatalf("after trim(100): held %d first %d", m.held(), m.firstHeld())
	}
}

func TestMemLogCollectBounds(t *testing.T) {
	var m memLog
	entries := entriesFrom(1, 1, 1, 1, 1, 1)
	for _, e := range entries {
		e.Data = make([]byte, 100)
	}
	m.append(entries)
	if got, _ := m.collect(nil, 1, 3, 1<<20); len(got) != 3 {
		t.Fatalf("count bound: got %d entries, want 3", len(got))
	}
	if got, _ := m.collect(nil, 1, 10, 250); len(got) != 2 {
		t.Fatalf("byte bound: got %d entries, want 2", len(got))
	}
	if got, _ := m.collect(nil, 1, 10, 10); len(got) != 1 {
		t.Fatalf("an entry larger than the byte bound goes alone: got %d", len(got))
	}
	if _, ok := m.collect(nil, 9, 10, 10); ok {
		t.Fatal("collect beyond the end succeeded")
	}
}

func TestWriteQueue(t *testing.T) {
	var q writeQueue
	q.durable = 3
	q.enqueue(&writeOp{entries: entriesFrom(4, 1, 1), last: 5})
	q.enqueue(&writeOp{entries: entriesFrom(6, 1), last: 6})
	if len(q.queued) != 1 || len(q.queued[0].entries) != 3 || q.queued[0].last != 6 {
		t.Fatalf("appends were not merged: %+v", q.queued)
	}
	if i := q.next(); i != 0 || q.queued[i].last != 6 {
		t.Fatal("next() did not return the merged op")
	}
	q.handedOff(0, time.Now())
	// A truncation queued behind the in-flight op makes 5.. non-durable.
	q.enqueue(&writeOp{deleteFrom: 5, deleteTo: 6, entries: entriesFrom(5, 2), last: 5})
	if q.durable != 3 {
		t.Fatalf("durable after queueing a truncation at 5 = %d, want 3", q.durable)
	}
	if !q.addReply(pendingReply{}) || len(q.queued[0].replies) != 1 {
		t.Fatal("a reply was not attached to the last pending op")
	}
	q.completed()
	if q.durable != 4 {
		t.Fatalf("durable after the first op = %d, want 4 (5 and 6 are being replaced)", q.durable)
	}
	q.handedOff(0, time.Now())
	q.completed()
	if q.durable != 5 || q.pending() {
		t.Fatalf("durable after the truncation = %d, pending %v", q.durable, q.pending())
	}
	if q.addReply(pendingReply{}) {
		t.Fatal("addReply held a reply with nothing pending")
	}
	q.enqueue(&writeOp{entries: entriesFrom(6, 2), last: 6})
	q.handedOff(0, time.Now())
	q.inflight.take()
	q.enqueue(&writeOp{entries: entriesFrom(7, 2), last: 7})
	dropped := q.fail()
	if len(dropped) != 2 || !q.broken || q.pending() {
		t.Fatalf("fail dropped %d ops, broken %v, pending %v", len(dropped), q.broken, q.pending())
	}
}

// While the writer holds a plain append, the next plain append goes on
// deck behind it; later appends and replies join the op on deck until the
// writer takes it, and queue behind it after; nothing that deletes or
// resyncs goes on deck, and a failure drops the op on deck with the rest.
func TestWriteQueueOnDeck(t *testing.T) {
	var q writeQueue
	q.enqueue(&writeOp{entries: entriesFrom(1, 1), last: 1})
	q.handedOff(q.next(), time.Now())
	q.inflight.take()
	q.enqueue(&writeOp{entries: entriesFrom(2, 1), last: 2})
	i := q.next()
	if i != 0 {
		t.Fatalf("next() = %d with a plain append queued behind one in flight, want 0", i)
	}
	q.handedOff(i, time.Now())
	if q.onDeck == nil || q.onDeck.last != 2 {
		t.Fatalf("the second append is not on deck: %v", q.onDeck)
	}
	// Not taken yet: the third append and a reply join the op on deck.
	q.enqueue(&writeOp{entries: entriesFrom(3, 1), last: 3, commitIndex: 1, replies: []pendingReply{{}}})
	if len(q.queued) != 0 || q.onDeck.last != 3 || len(q.onDeck.entries) != 2 || q.onDeck.commitIndex != 1 || len(q.onDeck.replies) != 1 {
		t.Fatalf("the third append did not join the op on deck: on deck %v, %d queued", q.onDeck, len(q.queued))
	}
	if !q.addReply(pendingReply{}) || len(q.onDeck.replies) != 2 || len(q.onDeck.lateReplies) != 0 {
		t.Fatal("a reply was not attached to the op on deck the writer has not taken")
	}
	// Taken: later appends queue behind it, and replies go with them.
	q.onDeck.take()
	q.enqueue(&writeOp{entries: entriesFrom(4, 1), last: 4})
	if q.next() != -1 || len(q.queued) != 1 || q.onDeck.last != 3 {
		t.Fatal("an append joined an op on deck the writer took, or a third op was handed")
	}
	if !q.addReply(pendingReply{}) || len(q.queued[0].replies) != 1 {
		t.Fatal("a reply was not attached to the queued op")
	}
	if op := q.completed(); op.last != 1 || q.inflight == nil || q.inflight.last != 3 || q.onDeck != nil {
		t.Fatalf("completion did not move the op on deck in flight: done %v, in flight %v", op, q.inflight)
	}
	if q.durable != 1 {
		t.Fatalf("durable = %d, want 1", q.durable)
	}
	// A truncation never goes on deck, nor joins an append on deck.
	q.handedOff(q.next(), time.Now())
	q.completed()
	q.inflight.take()
	q.enqueue(&writeOp{deleteFrom: 4, deleteTo: 4, entries: entriesFrom(4, 2), last: 4})
	if q.next() != -1 {
		t.Fatal("a truncation was handed on deck")
	}
	// Nor goes anything on deck behind a truncation.
	q.completed()
	q.handedOff(q.next(), time.Now())
	q.inflight.take()
	q.enqueue(&writeOp{entries: entriesFrom(5, 2), last: 5})
	if q.next() != -1 {
		t.Fatal("an append was handed on deck behind a truncation")
	}
	q.completed()
	q.handedOff(q.next(), time.Now())
	q.inflight.take()
	q.enqueue(&writeOp{entries: entriesFrom(6, 2), last: 6})
	q.handedOff(q.next(), time.Now())
	q.enqueue(&writeOp{deleteFrom: 6, deleteTo: 6, entries: entriesFrom(6, 3), last: 6})
	if len(q.queued) != 1 || q.onDeck.last != 6 || len(q.onDeck.entries) != 1 {
		t.Fatal("a truncation joined the op on deck")
	}
	q.queued = nil
	// A reply with nothing queued waits for the op on deck, the writer's
	// to send before it takes the op and the run loop's after.
	q.onDeck.take()
	if !q.addReply(pendingReply{}) || len(q.onDeck.lateReplies) != 1 || len(q.inflight.lateReplies) != 0 {
		t.Fatal("a reply with nothing queued was not held for the op on deck")
	}
	if dropped := q.fail(); len(dropped) != 2 || q.inflight != nil || q.onDeck != nil || q.pending() {
		t.Fatalf("fail dropped %d ops, pending %v", len(dropped), q.pending())
	}
}

// An append handed to an idle writer that has not taken it yet (it may be
// waiting for the op to grow, see writeOp.waitToGrow) takes later appends
// and replies in, and waitToGrow returns as soon as it holds enough.
func TestWriteQueueInflightNotTakenJoins(t *testing.T) {
	var q writeQueue
	q.enqueue(&writeOp{entries: entriesFrom(1, 1), last: 1})
	q.handedOff(q.next(), time.Now())
	op := q.inflight
	done := make(chan struct{})
	go func() {
		op.waitToGrow(4, 3, time.Hour, nil)
		close(done)
	}()
	q.enqueue(&writeOp{entries: entriesFrom(2, 1), last: 2})
	if !q.addReply(pendingReply{}) {
		t.Fatal("a reply was not held")
	}
	select {
	case <-done:
		t.Fatal("waitToGrow returned with 2 of 3 entries")
	case <-time.After(10 * time.Millisecond):
	}
	q.enqueue(&writeOp{entries: entriesFrom(3, 1), last: 3})
	<-done
	op.take()
	if len(q.queued) != 0 || len(op.entries) != 3 || op.last != 3 || len(op.replies) != 1 {
		t.Fatalf("appends did not join the op in flight: %v, %d queued", op, len(q.queued))
	}
	q.enqueue(&writeOp{entries: entriesFrom(4, 1), last: 4})
	if len(q.queued) != 1 || op.last != 3 {
		t.Fatal("an append joined an op the writer took")
	}
}

// Head compactions go to the log compactor beside the writer's appends,
// never merge with them nor hold their replies, and are ordered with ops
// that delete.
func TestWriteQueueCompactions(t *testing.T) {
	var q writeQueue
	q.enqueue(&writeOp{entries: entriesFrom(1, 1), last: 1})
	q.handedOff(q.next(), time.Now())
	q.inflight.take()
	q.enqueue(newCompaction(1))
	q.enqueue(&writeOp{entries: entriesFrom(2, 1), last: 2})
	q.enqueue(newCompaction(2))
	if len(q.queued) != 3 {
		t.Fatalf("queued %d ops, want 3 (a compaction merges with no append)", len(q.queued))
	}
	if !q.addReply(pendingReply{}) || len(q.queued[1].replies) != 1 {
		t.Fatal("a reply was not attached to the last append")
	}
	if i := q.nextCompaction(); i != 0 {
		t.Fatalf("nextCompaction = %d, want 0: appends with the writer do not hold it", i)
	}
	q.compactionHandedOff(0)
	q.enqueue(newCompaction(3))
	if len(q.queued) != 2 || q.queued[1].compactTo != 3 {
		t.Fatalf("consecutive compactions were not merged: %v", q.queued)
	}
	if i := q.nextCompaction(); i != -1 {
		t.Fatalf("nextCompaction = %d with a compaction in flight", i)
	}
	q.completed()
	if i := q.next(); i != 0 || len(q.queued[0].entries) != 1 {
		t.Fatalf("next = %d, want the append queued before no compaction of its own", i)
	}
	q.handedOff(0, time.Now())
	q.completed()
	// A suffix delete waits for the compaction in flight and the one
	// queued before it; the compaction after it waits for it.
	q.enqueue(&writeOp{deleteFrom: 2, deleteTo: 2, entries: entriesFrom(2, 2), last: 2})
	q.enqueue(newCompaction(4))
	if i := q.next(); i != -1 {
		t.Fatalf("next = %d: a delete ran beside a compaction", i)
	}
	q.compactionDone(true)
	if i := q.next(); i != -1 {
		t.Fatalf("next = %d: a delete overtook a compaction queued before it", i)
	}
	q.compactionHandedOff(q.nextCompaction())
	q.compactionDone(false)
	if q.compacted != 1 {
		t.Fatalf("compacted = %d, want 1 (the failed compaction does not count)", q.compacted)
	}
	q.handedOff(q.next(), time.Now())
	if i := q.nextCompaction(); i != -1 {
		t.Fatalf("nextCompaction = %d beside a delete", i)
	}
	q.completed()
	if i := q.nextCompaction(); i != 0 {
		t.Fatalf("nextCompaction = %d after the delete, want 0", i)
	}
}

// TestReplicatorMismatchBackoff checks how a replicator steps back after a
// refused AppendEntries: to just after the follower's hint, never below
// what the follower already acknowledged, and with an immediate retry only
// when the retry asks something new.
func TestReplicatorMismatchBackoff(t *testing.T) {
	cases := []struct {
		name              string
		next, match, hint uint64
		noBackoff         bool
		wantNext          uint64
		wantResult        sendResult
	}{
		{"hint far behind", 50, 0, 10, true, 11, sendMismatch},
		{"hint ahead steps one", 50, 0, 80, true, 49, sendMismatch},
		{"floor at match", 50, 30, 30, true, 31, sendMismatch},
		{"refuses acknowledged entry", 31, 30, 30, true, 31, sendFailed},
		// A hint below the match index: the follower lost entries it
		// acknowledged, and is repaired from just after its last entry.
		{"went backwards", 50, 30, 10, true, 11, sendMismatch},
		{"went backwards from its next entry", 31, 30, 10, true, 11, sendMismatch},
		{"never below one", 1, 0, 0, true, 1, sendFailed},
		{"backoff asked", 50, 0, 10, false, 11, sendFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &replicator{r: &Raft{logger: hclog.NewNullLogger(), clock: realClock{}}, lead: &replicationShared{term: 3}, nextIndex: tc.next}
			s.match.Store(tc.match)
			req := &AppendEntriesRequest{Term: 3, PrevLogEntry: tc.next - 1}
			resp := &AppendEntriesResponse{Term: 3, LastLog: tc.hint, NoRetryBackoff: tc.noBackoff}
			got := s.handleResponse(req, resp)
			if got != tc.wantResult || s.nextIndex != tc.wantNext {
				t.Fatalf("got result %d next %d, want %d next %d", got, s.nextIndex, tc.wantResult, tc.wantNext)
			}
		})
	}
}

// TestMemLogSlidingKeepsItsArrays appends and trims as a busy leader does
// and checks that memLog keeps answering right, stops moving to new arrays
// once warm, and keeps no dropped entry in its array.
func TestMemLogSlidingKeepsItsArrays(t *testing.T) {
	var m memLog
	m.reset(0, 1)
	var arr **Log
	for round := 0; round < 3000; round++ {
		first := m.lastIndex + 1
		m.append(entriesFrom(first, 1, 1, 1, 1, 1, 1, 1))
		if round%5 == 4 {
			m.truncate(m.lastIndex, 1) // drop the last one now and then
		}
		if m.held() > 200 {
			m.trim(m.lastIndex - 120)
		}
		if round%97 == 0 {
			m.trimToBudget(m.lastIndex, 0) // empties it
		}
		// Model: entries firstHeld..lastIndex, charged as a running sum.
		lo := m.firstHeld()
		for idx := lo; idx <= m.lastIndex; idx++ {
			if l, ok := m.get(idx); !ok || l.Index != idx {
				t.Fatalf("round %d: get(%d) = %v, %v", round, idx, l, ok)
			}
		}
		if m.held() > 0 {
			if got, want := m.chargeThrough(m.lastIndex), int64(m.held())*entryMemoryBytes(&Log{}); got != want {
				t.Fatalf("round %d: charge %d, want %d", round, got, want)
			}
		}
		off := cap(m.entriesArr) - cap(m.entries)
		for k, e := range m.entriesArr[:cap(m.entriesArr)] {
			if (k < off || k >= off+len(m.entries)) && e != nil {
				t.Fatalf("round %d: slot %d outside the window keeps entry %d", round, k, e.Index)
			}
		}
		if len(m.charged) != len(m.entries) {
			t.Fatalf("round %d: %d charges for %d entries", round, len(m.charged), len(m.entries))
		}
		if round == 500 {
			arr = &m.entriesArr[:1][0]
		}
		if round > 500 && &m.entriesArr[:1][0] != arr {
			t.Fatalf("round %d: memLog moved to a new array", round)
		}
	}
}

// TestFSMApplierStampIsNow checks that the cheap stamp the FSM goroutine
// measures FSM.Apply from is the current time on the monotonic clock.
func TestFSMApplierStampIsNow(t *testing.T) {
	a := fsmApplier{epoch: time.Now()}
	for range 100 {
		before := time.Now()
		s := a.stamp()
		after := time.Now()
		if s.Before(before) || s.After(after) {
			t.Fatalf("stamp %v outside [%v, %v]", s, before, after)
		}
		if d := after.Sub(s); d < 0 || d > after.Sub(before) {
			t.Fatalf("time.Now minus stamp = %v, outside [0, %v]", d, after.Sub(before))
		}
	}
}
