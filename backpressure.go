package raft

// Backpressure: how much a node keeps in memory when its disk or its FSM
// is slower than the entries coming in.
//
// Two byte bounds, both counted with entryMemoryBytes:
//
//   - Config.MaxUnwrittenBytes bounds the entries a leader has accepted
//     and not yet written to its own log store. The log writer
//     (log_writer.go) runs beside the run loop, so without a bound a slow
//     disk would let the write queue grow until the process dies. Past
//     the bound the leader stops taking Apply and Barrier requests: they
//     wait in applyCh and, once their timeout expires, answer
//     ErrEnqueueTimeout, as they would with the reference, whose leader
//     loop blocks on a slow disk.
//   - Config.MaxUnappliedMemoryBytes bounds the committed entries a node
//     keeps in memory for its FSM: the durable entries memLog holds only
//     because the FSM has not taken them yet, plus the entries handed to
//     the FSM goroutine and not yet applied. Past it, memLog lets go of
//     the oldest of them and the FSM goroutine reads them back from the
//     log store (Raft.trimMemLog). On a leader, the futures of its own
//     entries hold them too, until the FSM answers; so a leader whose
//     own entries not yet applied (committed or not: any of them may
//     commit before the FSM catches up) reach the bound also stops taking
//     requests, as the reference's does when its FSM falls behind.
//
// A leader decides on requests before it knows their size, so each bound
// on accepted entries may be passed by at most the last entry taken.

// logEntryOverhead is what an entry is charged for itself, beyond its
// Data and Extensions: the Log value and the references to it.
const logEntryOverhead = 128

// entryMemoryBytes is the memory an entry is charged while it is held.
func entryMemoryBytes(l *Log) int64 {
	return int64(entryBytes(l)) + logEntryOverhead
}

// byteLedger records the running memory charge of the entries a leader
// appended in its term, by index, so that the charge of any run of them is
// a subtraction. Owned by the run loop.
//
// Invariant: totals[i] is the charge of the recorded entries up to index
// first+i; dropped is the charge of those before first, forgotten once
// applied.
type byteLedger struct {
	first   uint64
	totals  []int64
	dropped int64
}

// add records entries, which normally directly follow the last recorded
// one.
func (l *byteLedger) add(entries []*Log) {
	if len(entries) == 0 {
		return
	}
	if next := l.first + uint64(len(l.totals)); len(l.totals) == 0 || entries[0].Index != next {
		// The log was reset under the leader (a user restore): start over.
		l.first, l.totals, l.dropped = entries[0].Index, l.totals[:0], 0
	}
	total := l.dropped
	if n := len(l.totals); n > 0 {
		total = l.totals[n-1]
	}
	for _, e := range entries {
		total += entryMemoryBytes(e)
		l.totals = append(l.totals, total)
	}
}

// through returns the charge of the recorded entries up to and including
// index.
func (l *byteLedger) through(index uint64) int64 {
	switch {
	case len(l.totals) == 0 || index < l.first:
		return l.dropped
	case index-l.first >= uint64(len(l.totals)):
		return l.totals[len(l.totals)-1]
	}
	return l.totals[index-l.first]
}

// between returns the charge of the recorded entries after from, up to and
// including to.
func (l *byteLedger) between(from, to uint64) int64 {
	if to <= from {
		return 0
	}
	return l.through(to) - l.through(from)
}

// forget drops the records up to and including index.
func (l *byteLedger) forget(index uint64) {
	if len(l.totals) == 0 || index < l.first {
		return
	}
	n := min(index-l.first+1, uint64(len(l.totals)))
	l.dropped = l.totals[n-1]
	l.first += n
	if n == uint64(len(l.totals)) {
		l.totals = l.totals[:0]
		return
	}
	l.totals = l.totals[n:]
	if cap(l.totals) > 1024 && len(l.totals) < cap(l.totals)/4 {
		l.totals = append([]int64(nil), l.totals...)
	}
}

// leaderBacklog returns the charge of this leader's entries that are not
// yet durable here, and of those not yet applied. The latter counts
// entries not yet committed too: each of them may commit before the FSM
// catches up, so only a bound on all of them bounds the committed ones.
func (r *Raft) leaderBacklog() (unwritten, unapplied int64) {
	lead := r.st.lead
	applied := r.pub.appliedIndex.Load()
	lead.ledger.forget(applied)
	last := r.st.log.lastIndex
	return lead.ledger.between(r.st.writes.durable, last), lead.ledger.between(applied, last)
}

// leaderFull reports whether this leader must take no more entries now,
// counting the pending charge of the entries it is about to append.
func (r *Raft) leaderFull(pending int64) bool {
	conf := r.config()
	unwritten, unapplied := r.leaderBacklog()
	return unwritten+pending >= conf.maxUnwrittenBytes() || unapplied+pending >= conf.maxUnappliedMemoryBytes()
}
