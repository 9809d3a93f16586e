package raft

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// InmemStore keeps a log and a stable store in memory. It implements
// LogStore and StableStore and is meant for tests and experiments: nothing
// survives the process.
//
// It is safe for concurrent use; readers run in parallel and writers one at
// a time.
//
// Ownership: StoreLog and StoreLogs copy each Log struct, so the caller may
// reuse the structs afterwards, but the store keeps the caller's Data and
// Extensions slices without copying them. GetLog fills the caller's Log
// with slices that share memory with the store. Neither side may modify
// those bytes once they crossed the interface; raft never does.
//
// The zero value is ready to use, but NewInmemStore is the usual way to
// make one.
type InmemStore struct {
	mu sync.RWMutex

	// The fields below are guarded by mu.

	// The entries are kept in one of two forms; the pointed-to Logs are
	// owned by the store and never modified once stored. Normally logs is
	// nil and seq holds the entry at index seqBase+k at seq[k], nil where
	// the log has a gap: a log is a run of consecutive indexes, and a
	// slice costs far less per entry than a map. A store whose indexes
	// spread far apart (more than maxSeqSpan for the entries held) moves
	// them all to the map logs instead, and keeps them there until it is
	// empty again. count is the number of entries held, in either form.
	seq     []*Log
	seqBase uint64
	// seqBuf is the whole array seq is a window of (tail_window.go), so
	// that the room a trimmed head leaves is used again rather than
	// growing a new array. Its slots outside seq are nil.
	seqBuf []*Log
	logs   map[uint64]*Log
	count  int
	// firstIndex and lastIndex are the smallest and largest keys of logs,
	// both 0 when logs is empty. The log may have gaps between them (a
	// restored snapshot can move the log past its end), so they are kept
	// exact rather than derived from each other.
	firstIndex uint64
	lastIndex  uint64

	// kv holds Set values and kvUint64 holds SetUint64 values. They are
	// separate namespaces, as in the reference store: Get never sees a
	// value stored with SetUint64.
	kv       map[string][]byte
	kvUint64 map[string]uint64
}

// NewInmemStore returns an empty in-memory log and stable store.
func NewInmemStore() *InmemStore {
	i := &InmemStore{}
	i.initLocked()
	return i
}

// initLocked makes the maps of a zero-value store.
func (i *InmemStore) initLocked() {
	if i.kv == nil {
		i.kv = make(map[string][]byte)
	}
	if i.kvUint64 == nil {
		i.kvUint64 = make(map[string]uint64)
	}
}

// FirstIndex returns the smallest index held, or 0 when the log is empty.
// It never fails.
func (i *InmemStore) FirstIndex() (uint64, error) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.firstIndex, nil
}

// LastIndex returns the largest index held, or 0 when the log is empty. It
// never fails.
func (i *InmemStore) LastIndex() (uint64, error) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.lastIndex, nil
}

// GetLog fills log with the entry at index. It returns ErrLogNotFound when
// the store does not hold that index, and leaves log untouched then.
func (i *InmemStore) GetLog(index uint64, log *Log) error {
	if log == nil {
		return errors.New("GetLog: nil destination Log")
	}
	i.mu.RLock()
	defer i.mu.RUnlock()
	stored := i.getLocked(index)
	if stored == nil {
		return ErrLogNotFound
	}
	*log = *stored
	return nil
}

// getLocked returns the entry at index, or nil.
func (i *InmemStore) getLocked(index uint64) *Log {
	if i.logs != nil {
		return i.logs[index]
	}
	if index < i.seqBase || index-i.seqBase >= uint64(len(i.seq)) {
		return nil
	}
	return i.seq[index-i.seqBase]
}

// maxSeqSpan is the most indexes seq may span for count entries: a few
// gaps are cheap, a log spread over a huge range is not.
func maxSeqSpan(count int) uint64 {
	return 2*uint64(count) + 4096
}

// putLocked stores l at its index.
func (i *InmemStore) putLocked(l *Log) {
	idx := l.Index
	defer func() {
		if i.count == 1 || idx < i.firstIndex {
			i.firstIndex = idx
		}
		if i.count == 1 || idx > i.lastIndex {
			i.lastIndex = idx
		}
	}()
	if i.logs != nil {
		if _, ok := i.logs[idx]; !ok {
			i.count++
		}
		i.logs[idx] = l
		return
	}
	if i.count == 0 {
		clear(i.seq)
		i.seq = i.seqBuf[:0]
		i.reserveSeqLocked(1)
		i.seq = append(i.seq, l)
		i.seqBase, i.count = idx, 1
		return
	}
	// The last slot's index; one past it may not exist.
	last := i.seqBase + uint64(len(i.seq)) - 1
	switch {
	case idx >= i.seqBase && idx <= last:
		if i.seq[idx-i.seqBase] == nil {
			i.count++
		}
		i.seq[idx-i.seqBase] = l
	case idx > last && idx-i.seqBase < maxSeqSpan(i.count+1):
		i.reserveSeqLocked(int(idx - last))
		for k := last + 1; k < idx; k++ { // the gap
			i.seq = append(i.seq, nil)
		}
		i.seq = append(i.seq, l)
		i.count++
	case idx < i.seqBase && last-idx < maxSeqSpan(i.count+1):
		grown := make([]*Log, last-idx+1, 2*(last-idx+1))
		copy(grown[i.seqBase-idx:], i.seq)
		grown[0] = l
		i.seq, i.seqBase, i.seqBuf = grown, idx, grown[:cap(grown)]
		i.count++
	default:
		// Too far from the others: every entry moves to the map.
		i.logs = make(map[uint64]*Log, i.count+1)
		for k, e := range i.seq {
			if e != nil {
				i.logs[i.seqBase+uint64(k)] = e
			}
		}
		i.seq, i.seqBase, i.seqBuf = nil, 0, nil
		i.logs[idx] = l
		i.count++
	}
}

// StoreLog stores one entry, replacing any entry at the same index.
func (i *InmemStore) StoreLog(log *Log) error {
	return i.StoreLogs([]*Log{log})
}

// StoreLogs stores the entries, replacing any at the same indexes. Either
// every entry is stored or, when it returns an error (only for a nil
// entry), none is.
func (i *InmemStore) StoreLogs(logs []*Log) error {
	for n, l := range logs {
		if l == nil {
			return fmt.Errorf("StoreLogs: entry %d of %d is nil", n, len(logs))
		}
	}
	if len(logs) == 0 {
		return nil
	}
	// One allocation per batch rather than one per entry.
	copies := make([]Log, len(logs))
	for n, l := range logs {
		copies[n] = *l
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	for n := range copies {
		i.putLocked(&copies[n])
	}
	return nil
}

// DeleteRange removes the entries from min to max, both included. Indexes
// the store does not hold are ignored, and min > max deletes nothing.
// FirstIndex and LastIndex reflect what remains, wherever the range was.
func (i *InmemStore) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.count == 0 {
		return nil
	}
	if i.logs == nil {
		i.deleteSeqLocked(min, max)
		return nil
	}
	// Walk whichever is smaller: the range or the map. The range may be
	// huge (DeleteRange(0, math.MaxUint64) empties the log).
	if max-min < uint64(len(i.logs)) {
		for idx := min; ; idx++ {
			delete(i.logs, idx)
			if idx == max {
				break
			}
		}
	} else {
		for idx := range i.logs {
			if idx >= min && idx <= max {
				delete(i.logs, idx)
			}
		}
	}
	i.count = len(i.logs)
	i.fixBoundsLocked(min, max)
	if i.count == 0 {
		i.logs = nil // back to the slice form
	}
	return nil
}

// deleteSeqLocked is DeleteRange for the slice form.
func (i *InmemStore) deleteSeqLocked(min, max uint64) {
	last := i.seqBase + uint64(len(i.seq)) - 1
	lo, hi := maxUint64(min, i.seqBase), minUint64(max, last)
	if lo > hi {
		return
	}
	for k := lo - i.seqBase; ; k++ {
		if i.seq[k] != nil {
			i.seq[k] = nil
			i.count--
		}
		if k == hi-i.seqBase {
			break
		}
	}
	if i.count == 0 {
		if cap(i.seqBuf) > 4096 {
			i.seqBuf = nil // give a large log's memory back
		}
		i.seq, i.seqBase = i.seqBuf[:0], 0
		i.firstIndex, i.lastIndex = 0, 0
		return
	}
	// Both ends of seq hold entries again.
	head := 0
	for i.seq[head] == nil {
		head++
	}
	tail := len(i.seq)
	for i.seq[tail-1] == nil {
		tail--
	}
	i.seq, i.seqBase = i.seq[head:tail], i.seqBase+uint64(head)
	i.firstIndex, i.lastIndex = i.seqBase, i.seqBase+uint64(len(i.seq))-1
	i.seq, i.seqBuf = shrinkWindow(i.seq, i.seqBuf)
}

// reserveSeqLocked makes room for extra more slots at the end of seq
// (tail_window.go).
func (i *InmemStore) reserveSeqLocked(extra int) {
	i.seq, i.seqBuf = reserveTail(i.seq, i.seqBuf, extra)
}

func maxUint64(a, b uint64) uint64 { return max(a, b) }
func minUint64(a, b uint64) uint64 { return min(a, b) }

// fixBoundsLocked brings firstIndex and lastIndex up to date after the
// range [min, max] was deleted.
func (i *InmemStore) fixBoundsLocked(min, max uint64) {
	if len(i.logs) == 0 {
		i.firstIndex, i.lastIndex = 0, 0
		return
	}
	headGone := min <= i.firstIndex && i.firstIndex <= max
	tailGone := min <= i.lastIndex && i.lastIndex <= max
	// In a log without gaps the new bounds sit right next to the range.
	if headGone {
		if _, ok := i.logs[max+1]; ok && max+1 != 0 {
			i.firstIndex = max + 1
			headGone = false
		}
	}
	if tailGone {
		if _, ok := i.logs[min-1]; ok && min != 0 {
			i.lastIndex = min - 1
			tailGone = false
		}
	}
	if !headGone && !tailGone {
		return
	}
	// Otherwise there was a gap next to the range: find the bounds among
	// the remaining keys.
	first, last := uint64(0), uint64(0)
	seen := false
	for idx := range i.logs {
		if !seen || idx < first {
			first = idx
		}
		if !seen || idx > last {
			last = idx
		}
		seen = true
	}
	i.firstIndex, i.lastIndex = first, last
}

// Set stores a copy of val under key.
func (i *InmemStore) Set(key []byte, val []byte) error {
	stored := make([]byte, len(val))
	copy(stored, val)
	i.mu.Lock()
	defer i.mu.Unlock()
	i.initLocked()
	i.kv[string(key)] = stored
	return nil
}

// Get returns a copy of the value stored under key with Set. For a key that
// was never set it returns an error whose text is exactly "not found",
// which raft reads as "absent".
func (i *InmemStore) Get(key []byte) ([]byte, error) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	val, ok := i.kv[string(key)]
	if !ok {
		return nil, errors.New(errNotFoundText)
	}
	out := make([]byte, len(val))
	copy(out, val)
	return out, nil
}

// SetUint64 stores val under key.
func (i *InmemStore) SetUint64(key []byte, val uint64) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.initLocked()
	i.kvUint64[string(key)] = val
	return nil
}

// GetUint64 returns the value stored under key with SetUint64, or 0 and no
// error for a key that was never set.
func (i *InmemStore) GetUint64(key []byte) (uint64, error) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.kvUint64[string(key)], nil
}

// InmemCommitTrackingStore is an InmemStore that also records the commit
// index, for tests of Config.RestoreCommittedLogs. It implements
// CommitTrackingLogStore and is safe for concurrent use.
type InmemCommitTrackingStore struct {
	InmemStore

	// commitIndex is the last index given to StageCommitIndex.
	commitIndex atomic.Uint64
}

var _ CommitTrackingLogStore = (*InmemCommitTrackingStore)(nil)

// NewInmemCommitTrackingStore returns an empty in-memory store that tracks
// the commit index.
func NewInmemCommitTrackingStore() *InmemCommitTrackingStore {
	i := &InmemCommitTrackingStore{}
	i.InmemStore.initLocked()
	return i
}

// StageCommitIndex records index as the commit index. It never fails.
func (i *InmemCommitTrackingStore) StageCommitIndex(index uint64) error {
	i.commitIndex.Store(index)
	return nil
}

// GetCommitIndex returns the last index given to StageCommitIndex, or 0. It
// never fails.
func (i *InmemCommitTrackingStore) GetCommitIndex() (uint64, error) {
	return i.commitIndex.Load(), nil
}
