package raft

import (
	"errors"
	"fmt"
	"strings"

	"github.com/quorumkit/raft/internal/testhook"
)

// The write path's invariants.
//
// The run loop's view of the log is shared, through messages, with five
// asynchronous stages: the log writer (log_writer.go), the log compactor
// (log_compactor.go), the FSM goroutine
// (fsm.go), the snapshot goroutines (snapshot.go) and, on a leader, the
// replicators (replication.go). The run loop alone owns the fields below;
// the invariants tie them together. checkInvariants tests every one of
// them; tests run it after every step of the run loop (afterStep), so a
// reset that forgets one fails the test at once, with the state.
//
// The fields: st.log (memLog, the appended view), st.writes (queued and
// in-flight ops, the compaction with the compactor; durable, floor,
// broken, compacted), st.dispatched,
// st.pendingFSM, st.fsmQueue, st.fsmStoreReads, st.commitIndex,
// st.lastSnapshotIndex/Term, st.compactedTo, st.futures, st.reads,
// st.restoring, st.unconfirmedSnapshot, st.heldRestore, st.role, st.lead,
// st.candidate.
//
//	I1  role: lead is set exactly on a leader; candidate only on a
//	    candidate (one whose pre-vote round failed waits without it).
//	I2  memLog: held entries are contiguous and the last one is
//	    (lastIndex, lastTerm).
//	I3  snapshot floor: writes.floor == lastSnapshotIndex, and
//	    floor <= durable <= log.lastIndex: what the newest snapshot covers
//	    counts as durable, and nothing past the appended view is.
//	I4  quiet writer: with no op queued or in flight and the log not
//	    broken, durable == log.lastIndex: the view is exactly the store.
//	I5  broken: writes.broken is set exactly while a resync op is queued
//	    or in flight.
//	I6  compaction: compactedTo == max(writes.compacted, the compactTo of
//	    every pending op) and compactedTo <= lastSnapshotIndex: a
//	    compaction the run loop counts on is done or still queued, and
//	    never goes past the newest snapshot.
//	I7  FSM order: dispatched <= max(min(commitIndex, durable),
//	    lastSnapshotIndex); a pending entry task past dispatched starts at
//	    dispatched+1.
//	I8  store reads: an op that deletes an index the FSM goroutine may
//	    still read from the store (in a range of fsmStoreReads, past the
//	    applied index) waits (waitApplied) until the FSM has passed it;
//	    one the writer or compactor has taken waited for it.
//	I9  futures: in increasing index order, every one past dispatched (so
//	    an entry task will answer it); off the leader, every one at or
//	    below commitIndex (stopLeading answered the rest).
//	I10 reads: ReadIndex requests in index order.
//	I11 restore: a user restore runs only on the leader that started it.
//	I12 unconfirmed snapshot (unconfirmed_snapshot.go): it is the newest
//	    snapshot, and the FSM has applied nothing past it; a leader whose
//	    Restore waits for its no-op holds it at restoredAt, with termStart
//	    just past it and the commit index below (one Restore at a time).
//	I13 the FSM takes only committed states while the node runs (the
//	    snapshot loaded at start is the exception unconfirmed_snapshot.go
//	    describes): a restore held until its snapshot is confirmed
//	    (heldRestore) is that of the unconfirmed snapshot, dispatched is
//	    its index, the FSM has applied less, and no entry task is built
//	    behind it.
//
// The resets. Each kind re-establishes every invariant in one function:
//
//   - failed write: onWriteFailed drops the queue and queues a resync that
//     carries what the dropped ops still owed (a suffix to delete again, a
//     compaction); onResync adopts the store's end as the ops queued after
//     the resync will leave it;
//   - snapshot adopted (installed from the leader): adoptSnapshot;
//   - user restore: adoptUserRestore (with onUserRestore for the stage
//     before it), or failUserRestore, which steps down once the snapshot
//     may be in the store;
//   - step-down: stopLeading.

// afterStep checks the invariants after a step of the run loop, when a
// test asked for it, and reports the first break. It does nothing in
// production, where invariantBroken is nil.
func (r *Raft) afterStep() {
	if r.invariantBroken == nil || r.failed.Load() {
		// A node stopping after a fatal error (a failed resync, say) may
		// be left between two states; it serves nothing more.
		return
	}
	if err := r.checkInvariants(); err != nil {
		broken := r.invariantBroken
		r.invariantBroken = nil // once is enough: later breaks follow from it
		broken(fmt.Errorf("%s: %w\n%s", r.localID, err, r.describeWritePath()))
	}
}

// errInvariant marks a broken invariant of the write path.
var errInvariant = errors.New("write-path invariant broken")

// checkInvariants returns every invariant of the write path that does not
// hold, or nil. It reads only the run loop's state (and the FSM's
// published applied index), so it may run after any step.
func (r *Raft) checkInvariants() error {
	st := &r.st
	var bad []string
	fail := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }

	// I1
	if (st.role == Leader) != (st.lead != nil) {
		fail("I1: role %v with leader state %v", st.role, st.lead != nil)
	}
	if st.candidate != nil && st.role != Candidate {
		fail("I1: role %v with candidate state", st.role)
	}
	// I2
	for i, e := range st.log.entries {
		if e.Index != st.log.entries[0].Index+uint64(i) {
			fail("I2: memLog entry %d has index %d after %d", i, e.Index, st.log.entries[0].Index)
			break
		}
	}
	if n := len(st.log.entries); n > 0 {
		if e := st.log.entries[n-1]; e.Index != st.log.lastIndex || e.Term != st.log.lastTerm {
			fail("I2: memLog ends with (%d, %d), view ends at (%d, %d)", e.Index, e.Term, st.log.lastIndex, st.log.lastTerm)
		}
	}
	// I3
	w := &st.writes
	if w.floor != st.lastSnapshotIndex {
		fail("I3: write floor %d, newest snapshot %d", w.floor, st.lastSnapshotIndex)
	}
	if w.durable < w.floor || w.durable > st.log.lastIndex {
		fail("I3: durable %d outside [floor %d, last %d]", w.durable, w.floor, st.log.lastIndex)
	}
	// I4
	if !w.pending() && !w.broken && w.durable != st.log.lastIndex {
		fail("I4: writer idle but durable %d != last %d", w.durable, st.log.lastIndex)
	}
	// I5
	resyncs := 0
	compacting := w.compacted
	for _, op := range w.all() {
		if op.resync {
			resyncs++
		}
		compacting = max(compacting, op.compactTo)
	}
	if w.broken != (resyncs == 1) || resyncs > 1 {
		fail("I5: broken %v with %d resync ops pending", w.broken, resyncs)
	}
	// I6
	if st.compactedTo != compacting {
		fail("I6: compactedTo %d, but compactions done or pending reach %d", st.compactedTo, compacting)
	}
	if st.compactedTo > st.lastSnapshotIndex {
		fail("I6: compactedTo %d past the newest snapshot %d", st.compactedTo, st.lastSnapshotIndex)
	}
	// I7
	bound := max(min(st.commitIndex, w.durable), st.lastSnapshotIndex)
	if st.dispatched > bound {
		fail("I7: dispatched %d past commit %d / durable %d / snapshot %d", st.dispatched, st.commitIndex, w.durable, st.lastSnapshotIndex)
	}
	if t := st.pendingFSM; t != nil && t.restoreID == "" && t.from > 0 && t.to > st.dispatched && t.from != st.dispatched+1 {
		fail("I7: pending FSM task starts at %d, dispatched %d", t.from, st.dispatched)
	}
	// I8
	applied := r.pub.appliedIndex.Load()
	for _, op := range w.all() {
		lo, hi := op.deletes()
		if hi == 0 {
			continue
		}
		if need := readsBefore(st.fsmStoreReads, lo, hi); need > applied && op.waitApplied < need {
			fail("I8: op deleting %d-%d does not wait for the FSM to read up to %d (applied %d, store reads %v)", lo, hi, need, applied, st.fsmStoreReads)
		}
	}
	// I9
	var prev uint64
	for _, f := range st.futures {
		i := f.log.Index
		if i <= prev {
			fail("I9: future %d after %d", i, prev)
		}
		prev = i
		if i <= st.dispatched {
			fail("I9: future %d at or below dispatched %d: no task will answer it", i, st.dispatched)
		}
		if st.lead == nil && i > st.commitIndex {
			fail("I9: follower keeps future %d past commit %d", i, st.commitIndex)
		}
	}
	// I10
	prev = 0
	for _, f := range st.reads {
		if f.index < prev {
			fail("I10: read at %d after one at %d", f.index, prev)
		}
		prev = f.index
	}
	// I11
	if st.restoring != nil && st.lead == nil {
		fail("I11: a user restore runs on a %v", st.role)
	}
	// I12
	if x := st.unconfirmedSnapshot; x != 0 {
		if x != st.lastSnapshotIndex {
			fail("I12: unconfirmed snapshot at %d, newest snapshot at %d", x, st.lastSnapshotIndex)
		}
		if applied > x {
			fail("I12: applied %d past the unconfirmed snapshot at %d", applied, x)
		}
	}
	if lead := st.lead; lead != nil && lead.restored != nil {
		if lead.restoredAt != st.unconfirmedSnapshot || lead.termStart != lead.restoredAt+1 || st.commitIndex >= lead.termStart {
			fail("I12: restore at %d waits with unconfirmed snapshot %d, termStart %d, commit %d",
				lead.restoredAt, st.unconfirmedSnapshot, lead.termStart, st.commitIndex)
		}
	}
	// I13
	if t := st.heldRestore; t != nil {
		if t.to != r.unconfirmed() || st.dispatched != t.to || applied >= t.to {
			fail("I13: restore held at %d with unconfirmed snapshot %d, dispatched %d, applied %d",
				t.to, r.unconfirmed(), st.dispatched, applied)
		}
		if p := st.pendingFSM; p != nil && p.restoreID == "" && p.from > t.to {
			fail("I13: entry task %d-%d built behind the held restore at %d", p.from, p.to, t.to)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", errInvariant, strings.Join(bad, "; "))
}

// describeWritePath dumps the run loop's write-path state, for reports of
// a broken invariant.
func (r *Raft) describeWritePath() string {
	st := &r.st
	var b strings.Builder
	fmt.Fprintf(&b, "  role=%v term=%d commit=%d dispatched=%d applied=%d fsmStoreReads=%v\n",
		st.role, st.currentTerm, st.commitIndex, st.dispatched, r.pub.appliedIndex.Load(), st.fsmStoreReads)
	fmt.Fprintf(&b, "  log: last=(%d, %d) held=%d first-held=%d\n", st.log.lastIndex, st.log.lastTerm, st.log.held(), st.log.firstHeld())
	fmt.Fprintf(&b, "  snapshot=(%d, %d) compactedTo=%d\n", st.lastSnapshotIndex, st.lastSnapshotTerm, st.compactedTo)
	w := &st.writes
	fmt.Fprintf(&b, "  writes: durable=%d floor=%d broken=%v compacted=%d\n", w.durable, w.floor, w.broken, w.compacted)
	if w.inflight != nil {
		fmt.Fprintf(&b, "    in flight: %s\n", w.inflight)
	}
	for _, op := range w.queued {
		fmt.Fprintf(&b, "    queued: %s\n", op)
	}
	if t := st.pendingFSM; t != nil {
		fmt.Fprintf(&b, "  pending FSM task: %s\n", t)
	}
	for _, t := range st.fsmQueue {
		fmt.Fprintf(&b, "  queued FSM task: %s\n", t)
	}
	fmt.Fprintf(&b, "  futures=%d", len(st.futures))
	if n := len(st.futures); n > 0 {
		fmt.Fprintf(&b, " (%d..%d)", st.futures[0].log.Index, st.futures[n-1].log.Index)
	}
	fmt.Fprintf(&b, " reads=%d restoring=%v", len(st.reads), st.restoring != nil)
	if t := st.heldRestore; t != nil {
		fmt.Fprintf(&b, " held: %s", t)
	}
	b.WriteString("\n")
	return b.String()
}

// invariantCheck is Config's test-only request for invariant checks.
type invariantCheck struct {
	broken func(error)
}

// handler returns the function to report a break to, nil when no check
// was asked for.
func (c *invariantCheck) handler() func(error) {
	if c == nil {
		return nil
	}
	return c.broken
}

func init() {
	testhook.CheckInvariants = func(conf any, broken func(error)) {
		conf.(*Config).invariantCheck = &invariantCheck{broken: broken}
	}
}
