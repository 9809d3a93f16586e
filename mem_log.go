package raft

import (
	"sort"
	"sync"
)

// memLog is the node's view of the end of its log. Entries reach the log
// store asynchronously (see log_writer.go), so the run loop decides on what
// it has appended, not on what the store holds yet: memLog keeps the entries
// that may not be durable, plus recent ones the FSM and replication still
// want, and the index and term of the last appended entry.
//
// Invariants:
//   - entries are contiguous: entries[i].Index == entries[0].Index+i;
//   - when entries is not empty, its last entry is (lastIndex, lastTerm);
//   - every index of the appended view below entries[0].Index is in the
//     log store (or covered by a snapshot) and no pending write changes it;
//   - charged has one element per entry: charged[i]-base is the memory
//     charge (entryMemoryBytes) of entries[0..i], so the charge of any run
//     of held entries is a subtraction.
//
// Ownership: only the run loop modifies a memLog, holding mu. While this
// node leads, replication goroutines read entries under mu's read lock; the
// run loop's own reads need no lock because no one else writes. The *Log
// values are shared, never modified, with the store, the FSM goroutine and
// replication.
type memLog struct {
	mu        sync.RWMutex
	entries   []*Log
	lastIndex uint64
	lastTerm  uint64
	// charged and base account for the memory the held entries take; only
	// the run loop reads them.
	charged []int64
	base    int64
	// entriesArr and chargedArr are the arrays entries and charged are
	// windows of (tail_window.go): trimming the head leaves room that
	// later appends use again.
	entriesArr []*Log
	chargedArr []int64
}

// last returns the index and term of the last appended entry.
func (m *memLog) last() (uint64, uint64) { return m.lastIndex, m.lastTerm }

// firstHeld returns the lowest index memLog holds, or lastIndex+1 when it
// holds none.
func (m *memLog) firstHeld() uint64 {
	if len(m.entries) == 0 {
		return m.lastIndex + 1
	}
	return m.entries[0].Index
}

// append adds entries that directly follow the last appended one.
func (m *memLog) append(entries []*Log) {
	if len(entries) == 0 {
		return
	}
	if entries[0].Index != m.lastIndex+1 {
		panic("raft: memLog.append out of order") // a broken invariant of the run loop, never input
	}
	m.mu.Lock()
	m.entries, m.entriesArr = reserveTail(m.entries, m.entriesArr, len(entries))
	m.charged, m.chargedArr = reserveTail(m.charged, m.chargedArr, len(entries))
	m.entries = append(m.entries, entries...)
	total := m.base
	if n := len(m.charged); n > 0 {
		total = m.charged[n-1]
	}
	for _, e := range entries {
		total += entryMemoryBytes(e)
		m.charged = append(m.charged, total)
	}
	last := entries[len(entries)-1]
	m.lastIndex, m.lastTerm = last.Index, last.Term
	m.mu.Unlock()
}

// truncate removes every entry from index from onwards; prevTerm is the
// term of the entry at from-1, which becomes the last one.
func (m *memLog) truncate(from, prevTerm uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if first := m.firstHeld(); from <= first {
		m.forgetAll()
	} else if from <= m.lastIndex {
		clear(m.entries[from-first:])
		m.entries = m.entries[:from-first]
		m.charged = m.charged[:from-first]
	}
	m.lastIndex, m.lastTerm = from-1, prevTerm
}

// reset forgets every held entry and makes (lastIndex, lastTerm) the end of
// the log, as after reading the log store anew.
func (m *memLog) reset(lastIndex, lastTerm uint64) {
	m.mu.Lock()
	m.forgetAll()
	m.lastIndex, m.lastTerm = lastIndex, lastTerm
	m.mu.Unlock()
}

// forgetAll drops every held entry; the caller holds the lock.
func (m *memLog) forgetAll() {
	m.entries, m.charged, m.base = nil, nil, 0
	m.entriesArr, m.chargedArr = nil, nil
}

// term returns the term of the entry at index if memLog knows it.
func (m *memLog) term(index uint64) (uint64, bool) {
	if index == m.lastIndex {
		return m.lastTerm, true
	}
	if l, ok := m.get(index); ok {
		return l.Term, true
	}
	return 0, false
}

// get returns the entry at index if memLog holds it. Callers other than the
// run loop must hold the read lock.
func (m *memLog) get(index uint64) (*Log, bool) {
	if len(m.entries) == 0 {
		return nil, false
	}
	first := m.entries[0].Index
	if index < first || index > m.lastIndex {
		return nil, false
	}
	return m.entries[index-first], true
}

// collect appends to out the held entries from index from on: at most
// maxCount of them and, past the first, no more than maxBytes of payload in
// all. It returns out and whether from was held at all. It takes the read
// lock, for replication goroutines.
func (m *memLog) collect(out []*Log, from uint64, maxCount, maxBytes int) ([]*Log, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(m.entries) == 0 {
		return out, false
	}
	first := m.entries[0].Index
	if from < first || from > m.lastIndex {
		return out, false
	}
	n, size := 0, 0
	for _, e := range m.entries[from-first:] {
		if n >= maxCount {
			break
		}
		size += entryBytes(e)
		if n > 0 && size > maxBytes {
			break
		}
		out = append(out, e)
		n++
	}
	return out, true
}

// trim drops held entries up to and including index upTo, which the caller
// knows to be durable and no longer wanted in memory.
func (m *memLog) trim(upTo uint64) {
	if len(m.entries) == 0 || upTo < m.entries[0].Index {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := min(upTo-m.entries[0].Index+1, uint64(len(m.entries)))
	clear(m.entries[:n])
	m.base = m.charged[n-1]
	if n == uint64(len(m.entries)) {
		// Emptied: the next entries reuse the arrays from their start.
		m.entries, m.charged = m.entriesArr[:0], m.chargedArr[:0]
		return
	}
	m.entries = m.entries[n:]
	m.charged = m.charged[n:]
	// Let go of a large array once most of it is dead.
	m.entries, m.entriesArr = shrinkWindow(m.entries, m.entriesArr)
	m.charged, m.chargedArr = shrinkWindow(m.charged, m.chargedArr)
}

// held returns how many entries memLog holds.
func (m *memLog) held() int { return len(m.entries) }

// chargeThrough returns the memory charge of the held entries up to and
// including index.
func (m *memLog) chargeThrough(index uint64) int64 {
	if len(m.entries) == 0 || index < m.entries[0].Index {
		return 0
	}
	i := min(index-m.entries[0].Index, uint64(len(m.charged)-1))
	return m.charged[i] - m.base
}

// trimToBudget drops the oldest held entries, none after upTo, until the
// held entries up to upTo are charged at most budget. The caller knows
// every entry up to upTo to be durable.
func (m *memLog) trimToBudget(upTo uint64, budget int64) {
	over := m.chargeThrough(upTo) - max(budget, 0)
	if over <= 0 {
		return
	}
	// The entry whose running charge first covers the excess is the last
	// one to drop.
	n := sort.Search(len(m.charged), func(i int) bool { return m.charged[i]-m.base >= over })
	m.trim(m.entries[0].Index + uint64(n))
}
