package raft

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-metrics"
)

// The log writer.
//
// Every write to the LogStore happens on one goroutine, the log writer, so
// that the run loop never waits on the disk (ARCHITECTURE.md, the write
// path).
// The run loop appends entries to its memLog view at once and queues a
// writeOp; the writer performs queued ops one at a time, in order, and
// reports each back. What this buys:
//
//   - On the leader, a batch goes to the replication goroutines and to the
//     writer at the same moment, so the leader's fsync overlaps the round
//     trip to the followers (Raft thesis §10.2.1). The leader's own match
//     index is its durable index: an entry is never counted, committed or
//     acknowledged on the leader's behalf before its write returned.
//   - Ops queued while the writer is busy are merged into one StoreLogs
//     call: group commit on every server, sized by how long the disk takes.
//   - A follower answers an AppendEntries only after the op holding its
//     entries (or any earlier op) completed, so it never acknowledges what
//     it has not stored. The writer sends the answers the op held when it
//     took it as soon as the op is durable, without a round through the
//     run loop; answers the run loop attached while the op was in flight
//     (writeOp.lateReplies) go when the run loop hears of it.
//   - While the writer stores one append, the run loop may hand it the
//     next one (writeQueue.onDeck), so that consecutive writes follow each
//     other without a round through the run loop between them. Until the
//     writer takes the op on deck out of writeCh, later appends and their
//     answers join it (writeOp.absorb): each write carries everything that
//     arrived while the one before it was being written, not only what had
//     arrived when the op went on deck. After a failed write the writer
//     skips the op on deck (errWriteSkipped): the run loop dropped it.
//   - A write that fails, or on a leader stalls past
//     Config.LogWriteStallTimeout, makes the leader step down instead of
//     hanging (see Raft.onWriteDone and Raft.checkLeaderLease).
//
// After a failed write, the run loop no longer knows what the store holds.
// It drops every queued op (failing their replies), stops accepting
// entries, and queues a resync op, which deletes again any suffix a dropped
// op was to delete and then reads the end of the log back from the store;
// the run loop then resets memLog to it. The resync also carries what the
// dropped ops still owed: a suffix to delete again and a compaction.
//
// A head compaction (the entries a snapshot of this node's own covers) is
// not the writer's: the run loop hands it to the log compactor
// (log_compactor.go), which runs it beside the writer's StoreLogs, as the
// reference runs it from its snapshot goroutine beside the run loop's
// writes. Entries therefore never wait behind a large DeleteRange, and a
// slow compaction never looks like a stalled write. A compaction is still
// ordered with every op that deletes or resyncs: such an op waits until the
// compactions queued before it are done, and a compaction waits for the
// deleting ops queued before it.
//
// A delete (a compaction, or the whole log an installed snapshot replaces)
// never runs before the FSM goroutine has read the entries it was handed
// to read from the store: such an op waits in the queue (waitApplied)
// until the FSM's applied index passes them. A compaction on a leader is
// cut down, when it is handed to the writer, to keep the entries after a
// snapshot a replicator has pinned for a send.
//
// The invariants between this queue and the rest of the run loop's state
// are in write_path_invariants.go.

// maxMergedEntries bounds how many entries one merged op may hold.
const maxMergedEntries = 4096

// lingerMinEntries and maxLinger: a plain append of fewer than
// lingerMinEntries entries that the writer receives after writing
// 2*lingerMinEntries or more at once waits for up to half the last
// write's duration, at most maxLinger, until it holds half as many.
const (
	lingerMinEntries = 4
	maxLinger        = time.Millisecond
)

// writeOp is one unit of work for the log writer: optionally delete a
// suffix of the log, then optionally record a commit index, then store
// entries.
type writeOp struct {
	// deleteFrom..deleteTo (inclusive) is removed first; deleteFrom is 0
	// when nothing is deleted.
	deleteFrom, deleteTo uint64
	// compactTo, when not zero, removes the head of the log up to it: the
	// entries a snapshot covers.
	compactTo uint64
	// oldLogs says the op's deletion drops the log that a restored or
	// installed snapshot replaced; see Raft.oldLogsKey for its metric.
	oldLogs bool
	// commitIndex, when not zero, is staged to a CommitTrackingLogStore
	// before the entries are stored.
	commitIndex uint64
	entries     []*Log
	// last is the index of the log's last entry once the op is done.
	last uint64
	// replies are AppendEntries answers to send once the op is durable.
	// The run loop adds to them only while the op is queued; once the
	// writer took the op, they are the writer's to send on success, and
	// whoever claims them first (repliesClaimed) sends them.
	replies []pendingReply
	// repliesClaimed is set by the one goroutine that sends replies: the
	// writer after a successful write, or the run loop when the op failed
	// or the node stops.
	repliesClaimed atomic.Bool
	// lateReplies are answers the run loop attached after the writer took
	// the op; only the run loop touches them, and sends them when it hears
	// the op is done.
	lateReplies []pendingReply
	// resync asks the writer to read the end of the log back from the
	// store instead of writing, after deleting deleteFrom..deleteTo when
	// deleteFrom is not 0 (a suffix a failed op was to delete).
	resync bool
	// waitApplied, when not zero, holds the op back until the FSM has
	// applied that index: the op deletes entries the FSM goroutine may
	// still read from the store.
	waitApplied uint64
	// compaction marks a head compaction and nothing else (see
	// newCompaction): the log compactor runs it, beside the writer.
	compaction bool
	// handedOff is when the writer took the op; stall detection uses it.
	handedOff time.Time

	// deck guards entries, last, commitIndex and replies while the op is
	// on deck: the run loop may still add to them (absorb, holdReply)
	// until the writer takes the op (take), and never after.
	deck  sync.Mutex
	taken bool
	// grew, when not nil, hears of every absorb: the writer is waiting
	// for the op to grow (waitToGrow).
	grew chan struct{}
}

// waitToGrow waits, when op holds fewer than small entries, until it
// holds want entries or more, for at most timeout, or until the node
// stops.
func (op *writeOp) waitToGrow(small, want int, timeout time.Duration, shutdownCh <-chan struct{}) {
	if timeout <= 0 {
		// Nothing to wait for. (A zero-length timer here also crashed
		// the Go 1.26 runtime once, inside a synctest bubble under the
		// race detector: SIGSEGV in timer.maybeRunChan.)
		return
	}
	op.deck.Lock()
	if len(op.entries) >= small || len(op.entries) >= want {
		op.deck.Unlock()
		return
	}
	op.grew = make(chan struct{}, 1)
	op.deck.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case <-op.grew:
			op.deck.Lock()
			n := len(op.entries)
			op.deck.Unlock()
			if n >= want {
				return
			}
		case <-t.C:
			return
		case <-shutdownCh:
			return
		}
	}
}

// take marks the op as the writer's: from now on the run loop no longer
// adds entries or replies to it. The writer calls it on receiving the op.
func (op *writeOp) take() {
	op.deck.Lock()
	op.taken = true
	op.deck.Unlock()
}

// absorb adds the plain append later to op, an append on deck, and
// reports whether it did: it does not once the writer took op, nor past
// maxMergedEntries.
func (op *writeOp) absorb(later *writeOp) bool {
	op.deck.Lock()
	defer op.deck.Unlock()
	if op.taken || len(op.entries)+len(later.entries) > maxMergedEntries {
		return false
	}
	op.entries = append(op.entries, later.entries...)
	op.last = later.last
	op.commitIndex = max(op.commitIndex, later.commitIndex)
	op.replies = append(op.replies, later.replies...)
	if op.grew != nil {
		select {
		case op.grew <- struct{}{}:
		default:
		}
	}
	return true
}

// holdReply adds reply to the replies the writer sends once op is
// durable, and reports whether it did: it does not once the writer took
// op.
func (op *writeOp) holdReply(reply pendingReply) bool {
	op.deck.Lock()
	defer op.deck.Unlock()
	if op.taken {
		return false
	}
	op.replies = append(op.replies, reply)
	return true
}

// newCompaction returns an op deleting the log's head up to upTo, for the
// log compactor.
func newCompaction(upTo uint64) *writeOp {
	return &writeOp{compactTo: upTo, compaction: true}
}

// ordered reports whether the op must not run beside a compaction: it
// deletes entries (a suffix, or a log a snapshot replaced) or resyncs.
func (op *writeOp) ordered() bool {
	return !op.compaction && (op.deleteFrom > 0 || op.compactTo > 0 || op.resync)
}

// deletes returns the range of indexes the op removes from the store, or
// (0, 0). A compaction removes from the log's first index, unknown here,
// so its range starts at 1.
func (op *writeOp) deletes() (lo, hi uint64) {
	if op.deleteFrom > 0 {
		lo, hi = op.deleteFrom, op.deleteTo
	}
	if op.compactTo > 0 {
		lo, hi = 1, max(hi, op.compactTo)
	}
	return lo, hi
}

// String describes the op, for state dumps.
func (op *writeOp) String() string {
	var b strings.Builder
	if op.resync {
		b.WriteString("resync ")
	}
	if op.compaction {
		b.WriteString("head ")
	}
	if op.deleteFrom > 0 {
		fmt.Fprintf(&b, "delete %d-%d ", op.deleteFrom, op.deleteTo)
	}
	if op.compactTo > 0 {
		fmt.Fprintf(&b, "compact-to %d ", op.compactTo)
	}
	if n := len(op.entries); n > 0 {
		fmt.Fprintf(&b, "store %d-%d ", op.entries[0].Index, op.entries[n-1].Index)
	}
	if op.waitApplied > 0 {
		fmt.Fprintf(&b, "after-applied %d ", op.waitApplied)
	}
	fmt.Fprintf(&b, "last %d replies %d", op.last, len(op.replies))
	return b.String()
}

// pendingReply is an AppendEntries answer held back until the entries it
// acknowledges are durable.
type pendingReply struct {
	rpc  RPC
	resp *AppendEntriesResponse
}

// mayGoAhead reports whether the op may be handed to the writer while
// another one is being written: a plain append, which deletes nothing,
// waits for nothing and stages no commit index out of order.
func (op *writeOp) mayGoAhead() bool {
	return !op.resync && !op.compaction && op.deleteFrom == 0 && op.compactTo == 0 && op.waitApplied == 0
}

// errWriteSkipped is the writer's report on an op handed to it ahead of
// one that failed: the run loop dropped it, and it was not performed.
var errWriteSkipped = errors.New("log write skipped after a failed one")

// claimReplies reports whether the caller is the one to send the op's
// replies; it returns true once per op.
func (op *writeOp) claimReplies() bool {
	return op.repliesClaimed.CompareAndSwap(false, true)
}

// answerDurable sends the op's replies, which its write made true, unless
// they were claimed already.
func (op *writeOp) answerDurable() {
	if !op.claimReplies() {
		return
	}
	for _, rep := range op.replies {
		rep.rpc.Respond(rep.resp, nil)
	}
}

// writeResult is the writer's report on one op.
type writeResult struct {
	op  *writeOp
	err error
	// lastIndex and lastTerm are the end of the stored log, for a resync.
	lastIndex, lastTerm uint64
	// compactErr is the failure of a compaction a resync carried.
	compactErr error
}

// runLogWriter is the log writer goroutine. It receives ops on writeCh and
// answers each on writeDoneCh, in order.
func (r *Raft) runLogWriter() {
	// failed is set after a failed write until the resync: the op the run
	// loop handed ahead of the failure is skipped.
	failed := false
	// prev and lastWrite are the size and duration of the last append.
	prev, lastWrite := 0, time.Duration(0)
	for {
		select {
		case op := <-r.writeCh:
			if !failed && op.mayGoAhead() && prev >= 2*lingerMinEntries {
				op.waitToGrow(lingerMinEntries, prev/2, min(lastWrite/2, maxLinger), r.shutdownCh)
			}
			op.take()
			start := time.Now()
			if failed && !op.resync {
				select {
				case r.writeDoneCh <- writeResult{op: op, err: errWriteSkipped}:
				case <-r.shutdownCh:
					return
				}
				continue
			}
			res := r.performWrite(op)
			if op.mayGoAhead() {
				prev, lastWrite = len(op.entries), time.Since(start)
			}
			failed = res.err != nil && !op.resync
			if res.err == nil && !op.resync {
				// The follower's answers leave now; the run loop hears
				// of the write after.
				op.answerDurable()
			}
			select {
			case r.writeDoneCh <- res:
			case <-r.shutdownCh:
				return
			}
		case <-r.shutdownCh:
			return
		}
	}
}

// performWrite carries out one op against the log store.
func (r *Raft) performWrite(op *writeOp) writeResult {
	res := writeResult{op: op}
	if op.resync {
		if op.deleteFrom > 0 && op.deleteFrom <= op.deleteTo {
			if err := r.logs.DeleteRange(op.deleteFrom, op.deleteTo); err != nil {
				res.err = fmt.Errorf("deleting log entries %d-%d again: %w", op.deleteFrom, op.deleteTo, err)
				return res
			}
		}
		if op.compactTo > 0 {
			// A compaction that fails again is not worth stopping for:
			// the next snapshot retries it.
			res.compactErr = r.compact(op.compactTo, keyCompactLogs)
		}
		res.lastIndex, res.lastTerm, res.err = lastEntry(r.logs)
		return res
	}
	if op.deleteFrom > 0 {
		start := time.Now()
		if err := r.logs.DeleteRange(op.deleteFrom, op.deleteTo); err != nil {
			res.err = fmt.Errorf("deleting log entries %d-%d: %w", op.deleteFrom, op.deleteTo, err)
			return res
		}
		if op.oldLogs {
			metrics.MeasureSince(r.oldLogsKey(), start)
		}
	}
	if op.compactTo > 0 {
		key := keyCompactLogs
		if op.oldLogs {
			key = r.oldLogsKey()
		}
		if err := r.compact(op.compactTo, key); err != nil {
			res.err = err
			return res
		}
	}
	if op.commitIndex > 0 {
		if err := r.logs.stageCommitIndex(op.commitIndex); err != nil {
			res.err = fmt.Errorf("staging commit index %d: %w", op.commitIndex, err)
			return res
		}
	}
	if len(op.entries) > 0 {
		start := time.Now()
		if err := r.logs.StoreLogs(op.entries); err != nil {
			res.err = fmt.Errorf("storing log entries %d-%d: %w", op.entries[0].Index, op.last, err)
			return res
		}
		metrics.MeasureSince(keyStoreLogs, start)
	}
	return res
}

// compact deletes the log's entries from its first up to upTo, measured
// under key.
func (r *Raft) compact(upTo uint64, key []string) error {
	defer metrics.MeasureSince(key, time.Now())
	first, err := r.logs.FirstIndex()
	if err != nil {
		return fmt.Errorf("reading first log index for compaction: %w", err)
	}
	if first == 0 || first > upTo {
		return nil
	}
	r.logger.Info("compacting logs", "from", first, "to", upTo)
	if err := r.logs.DeleteRange(first, upTo); err != nil {
		return fmt.Errorf("log compaction failed: %w", err)
	}
	return nil
}

// lastEntry reads the index and term of the last entry in logs.
func lastEntry(logs LogStore) (uint64, uint64, error) {
	last, err := logs.LastIndex()
	if err != nil {
		return 0, 0, fmt.Errorf("reading last log index: %w", err)
	}
	if last == 0 {
		return 0, 0, nil
	}
	var l Log
	if err := logs.GetLog(last, &l); err != nil {
		return 0, 0, fmt.Errorf("reading last log entry %d: %w", last, err)
	}
	return last, l.Term, nil
}

// writeQueue is the run loop's side of the log writer and the log
// compactor: the ops not yet handed over, the one the writer is working
// on, the compaction the compactor is working on, and what is durable.
// Owned by the run loop.
type writeQueue struct {
	queued   []*writeOp
	inflight *writeOp
	// onDeck is an append handed to the writer while inflight is being
	// written; it becomes inflight when that one completes.
	onDeck *writeOp
	// compacting is the head compaction with the log compactor.
	compacting *writeOp
	// durable is the highest index such that every entry of the appended
	// view up to it is in the store and no pending op will change it.
	durable uint64
	// broken is set after a failed write until the resync completes; no
	// entries are accepted meanwhile.
	broken bool
	// floor is the index of the newest snapshot: everything up to it is
	// durable in the snapshot store, whatever the log holds.
	floor uint64
	// compacted is the highest index a completed compaction deleted up to.
	compacted uint64
}

// all returns the ops in flight, if any, and the queued ones.
func (q *writeQueue) all() []*writeOp {
	if q.inflight == nil && q.onDeck == nil && q.compacting == nil {
		return q.queued
	}
	var all []*writeOp
	for _, op := range []*writeOp{q.inflight, q.onDeck, q.compacting} {
		if op != nil {
			all = append(all, op)
		}
	}
	return append(all, q.queued...)
}

// pending reports whether any op is queued or in flight.
func (q *writeQueue) pending() bool {
	return q.inflight != nil || q.onDeck != nil || q.compacting != nil || len(q.queued) > 0
}

// next returns the position in queued of the op to hand to the writer, or
// -1: the first op that is not a head compaction, unless it must be
// ordered with a compaction queued before it or in flight. While the
// writer holds a plain append, a plain append may go on deck behind it.
func (q *writeQueue) next() int {
	if q.onDeck != nil || (q.inflight != nil && !q.inflight.mayGoAhead()) {
		return -1
	}
	compactionFirst := q.compacting != nil
	for i, op := range q.queued {
		if op.compaction {
			compactionFirst = true
			continue
		}
		if op.ordered() && compactionFirst {
			return -1
		}
		if q.inflight != nil && !op.mayGoAhead() {
			return -1
		}
		return i
	}
	return -1
}

// nextCompaction returns the position in queued of the head compaction to
// hand to the log compactor, or -1: the first one, unless an op that must
// be ordered with it is queued before it or with the writer.
func (q *writeQueue) nextCompaction() int {
	if q.compacting != nil || (q.inflight != nil && q.inflight.ordered()) {
		return -1
	}
	for i, op := range q.queued {
		if op.compaction {
			return i
		}
		if op.ordered() {
			return -1
		}
	}
	return -1
}

// take removes the op at position i of queued and returns it.
func (q *writeQueue) take(i int) *writeOp {
	op := q.queued[i]
	copy(q.queued[i:], q.queued[i+1:])
	q.queued[len(q.queued)-1] = nil
	q.queued = q.queued[:len(q.queued)-1]
	return op
}

// handedOff records that the writer took the op at position i of queued:
// to write now, or on deck behind the one it is writing.
func (q *writeQueue) handedOff(i int, now time.Time) {
	op := q.take(i)
	op.handedOff = now
	if q.inflight != nil {
		q.onDeck = op
		return
	}
	q.inflight = op
}

// compactionHandedOff records that the log compactor took the head
// compaction at position i of queued.
func (q *writeQueue) compactionHandedOff(i int) {
	q.compacting = q.take(i)
}

// compactionDone records that the compaction with the log compactor
// ended, and returns it. A failed one is forgotten: the next snapshot
// compacts again.
func (q *writeQueue) compactionDone(ok bool) *writeOp {
	op := q.compacting
	q.compacting = nil
	if ok {
		q.compacted = max(q.compacted, op.compactTo)
	}
	return op
}

// enqueue adds op, merging it into the last queued op when both only
// append, or into the op on deck while the writer has not taken it and
// nothing but head compactions is queued, so that one StoreLogs call
// carries everything that accumulated while the writer was busy. Head
// compactions merge only with each other.
func (q *writeQueue) enqueue(op *writeOp) {
	if op.deleteFrom > 0 {
		q.durable = max(min(q.durable, op.deleteFrom-1), q.floor)
	}
	if d := q.deck(); d != nil && op.mayGoAhead() && q.onlyCompactionsQueued() && d.absorb(op) {
		return
	}
	if n := len(q.queued); n > 0 && op.compaction && q.queued[n-1].compaction {
		last := q.queued[n-1]
		last.compactTo = max(last.compactTo, op.compactTo)
		last.waitApplied = max(last.waitApplied, op.waitApplied)
		return
	}
	if n := len(q.queued); n > 0 && op.deleteFrom == 0 && !op.resync && !op.compaction {
		last := q.queued[n-1]
		if !last.resync && !last.compaction && len(last.entries)+len(op.entries) <= maxMergedEntries {
			last.entries = append(last.entries, op.entries...)
			last.last = op.last
			last.compactTo = max(last.compactTo, op.compactTo)
			last.oldLogs = last.oldLogs || op.oldLogs
			last.commitIndex = max(last.commitIndex, op.commitIndex)
			last.waitApplied = max(last.waitApplied, op.waitApplied)
			last.replies = append(last.replies, op.replies...)
			return
		}
	}
	q.queued = append(q.queued, op)
}

// deck returns the plain append that later appends may still join if
// the writer has not taken it: the op on deck, or else the op in flight.
func (q *writeQueue) deck() *writeOp {
	if q.onDeck != nil {
		return q.onDeck
	}
	if q.inflight != nil && q.inflight.mayGoAhead() {
		return q.inflight
	}
	return nil
}

// onlyCompactionsQueued reports whether every queued op, if any, is a
// head compaction.
func (q *writeQueue) onlyCompactionsQueued() bool {
	for _, op := range q.queued {
		if !op.compaction {
			return false
		}
	}
	return true
}

// addReply holds reply until every op pending now is durable (head
// compactions change nothing that is durable, and never hold a reply). It
// returns false when nothing is pending, and the reply may be sent at once.
// A reply for the op on deck goes with its write when the writer has not
// taken it yet, and waits for the run loop to hear of the write otherwise.
func (q *writeQueue) addReply(reply pendingReply) bool {
	for i := len(q.queued) - 1; i >= 0; i-- {
		if op := q.queued[i]; !op.compaction {
			op.replies = append(op.replies, reply)
			return true
		}
	}
	if d := q.deck(); d != nil && d.holdReply(reply) {
		return true
	}
	for _, op := range []*writeOp{q.onDeck, q.inflight} {
		if op != nil {
			op.lateReplies = append(op.lateReplies, reply)
			return true
		}
	}
	return false
}

// completed records that the in-flight op succeeded and returns it; the
// op on deck, if any, is now the one being written.
func (q *writeQueue) completed() *writeOp {
	op := q.inflight
	q.inflight, q.onDeck = q.onDeck, nil
	if q.inflight != nil {
		// The writer starts it now: stall detection counts from here.
		q.inflight.handedOff = time.Now()
	}
	durable := op.last
	// A later op that deletes entries makes them non-durable again.
	for _, later := range q.queued {
		if later.deleteFrom > 0 {
			durable = min(durable, later.deleteFrom-1)
		}
	}
	q.durable = max(durable, q.floor)
	q.compacted = max(q.compacted, op.compactTo)
	return op
}

// fail records that the in-flight op failed: it and every queued op are
// dropped and returned, so their replies can be refused, and the queue is
// broken until a resync completes.
func (q *writeQueue) fail() []*writeOp {
	dropped := []*writeOp{q.inflight}
	if q.onDeck != nil {
		dropped = append(dropped, q.onDeck)
	}
	dropped = append(dropped, q.queued...)
	q.inflight, q.onDeck = nil, nil
	q.queued = nil
	q.broken = true
	return dropped
}

// stalledFor returns how long the in-flight op has been with the writer.
func (q *writeQueue) stalledFor(now time.Time) time.Duration {
	if q.inflight == nil {
		return 0
	}
	return now.Sub(q.inflight.handedOff)
}

// queueWrite queues op on the log writer. An op that deletes entries the
// FSM goroutine may still read from the store (those of a task handed out
// without its entries, or about to be, that the FSM has not applied) waits
// until the FSM has applied them (invariant I8).
func (r *Raft) queueWrite(op *writeOp) {
	if lo, hi := op.deletes(); hi > 0 {
		reads := r.storeReads()
		if t := r.st.pendingFSM; t != nil && t.readsStore() {
			reads = append(reads[:len(reads):len(reads)], indexRange{t.from, t.to})
		}
		op.waitApplied = max(op.waitApplied, readsBefore(reads, lo, hi))
	}
	r.st.writes.enqueue(op)
}

// indexRange is the log indexes from..to, both included.
type indexRange struct{ from, to uint64 }

func (rg indexRange) String() string { return fmt.Sprintf("%d-%d", rg.from, rg.to) }

// storeReads drops from st.fsmStoreReads the ranges the FSM goroutine has
// applied, and returns what is left: the entries it may still read from
// the log store.
func (r *Raft) storeReads() []indexRange {
	applied := r.pub.appliedIndex.Load()
	reads := r.st.fsmStoreReads
	n := 0
	for n < len(reads) && reads[n].to <= applied {
		n++
	}
	if n > 0 {
		reads = append(reads[:0], reads[n:]...)
		r.st.fsmStoreReads = reads
	}
	return reads
}

// readsBefore returns the applied index a delete of lo..hi must wait for
// so that the FSM goroutine has read every entry of reads it removes: the
// last such entry, or 0 when it removes none.
func readsBefore(reads []indexRange, lo, hi uint64) uint64 {
	var wait uint64
	for _, rg := range reads {
		if rg.from <= hi && rg.to >= lo {
			wait = max(wait, min(hi, rg.to))
		}
	}
	return wait
}

// handOffWrite hands the next op to the log writer now if the writer can
// take it without waiting, as the run loop's select would on its next
// round. Called right after an append, it starts the write before the
// run loop wakes anything else (see appendAsLeader and appendEntries).
func (r *Raft) handOffWrite() {
	op, pos, _ := r.nextWrite()
	if op == nil {
		return
	}
	select {
	case r.writeCh <- op:
		r.st.writes.handedOff(pos, time.Now())
	default:
	}
}

// nextWrite returns the op to hand to the log writer now and its
// position in the queue, or nil; wait reports that the next op waits for
// the FSM to apply more.
func (r *Raft) nextWrite() (op *writeOp, pos int, wait bool) {
	pos = r.st.writes.next()
	op, wait = r.readyOp(pos)
	return op, pos, wait
}

// nextCompaction is nextWrite for the log compactor.
func (r *Raft) nextCompaction() (op *writeOp, pos int, wait bool) {
	pos = r.st.writes.nextCompaction()
	op, wait = r.readyOp(pos)
	return op, pos, wait
}

// readyOp returns the queued op at pos if it may be handed over now, or
// nil (with wait set when it waits for the FSM). A compaction is first
// published in compactTarget, then cut down, on a leader, to spare the
// entries after every snapshot a replicator has pinned since it was
// queued. A replicator pins first and reads compactTarget after
// (replicator.pinSnapshot): whichever of the two comes second sees the
// other, so no compaction deletes what a pinned send still needs.
func (r *Raft) readyOp(pos int) (op *writeOp, wait bool) {
	if pos < 0 {
		return nil, false
	}
	op = r.st.writes.queued[pos]
	if op.waitApplied > r.pub.appliedIndex.Load() {
		return nil, true
	}
	if op.compactTo > 0 {
		if op.compactTo > r.compactTarget.Load() {
			r.compactTarget.Store(op.compactTo)
		}
		if r.st.lead != nil {
			upTo := op.compactTo
			for _, repl := range r.st.lead.repls {
				if pinned := repl.installing.Load(); pinned > 0 {
					upTo = min(upTo, pinned-1)
				}
			}
			if upTo < op.compactTo {
				r.logger.Debug("sparing the entries after a snapshot being sent", "compact-to", upTo, "wanted", op.compactTo)
				op.compactTo = upTo
				r.recountCompaction()
			}
		}
	}
	return op, false
}

// recountCompaction sets compactedTo to the highest compaction done or
// still pending (invariant I6).
func (r *Raft) recountCompaction() {
	to := r.st.writes.compacted
	for _, op := range r.st.writes.all() {
		to = max(to, op.compactTo)
	}
	r.st.compactedTo = to
}
