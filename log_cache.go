package raft

import (
	"errors"
	"fmt"
	"sync"
)

// LogCache keeps the most recently stored entries of a LogStore in memory,
// so that replication, which mostly reads what was just written, rarely
// goes to disk. It is a LogStore itself and is safe for concurrent use.
//
// The cache is a ring of capacity slots; the entry with index i lives in
// slot i % capacity, and a slot answers only for the exact index it holds.
// Writes go through: entries are given to the wrapped store first and are
// cached only once the store accepted them. DeleteRange empties the whole
// cache.
//
// Ownership: the cache copies each Log struct it keeps, and shares the Data
// and Extensions slices with the caller and the wrapped store, which must
// treat them as read-only, as raft does.
type LogCache struct {
	store LogStore

	// writeMu serializes StoreLogs and DeleteRange, so that an entry can
	// never be cached after a concurrent DeleteRange removed it from the
	// store.
	writeMu sync.Mutex

	// mu guards ring. Readers take it shared.
	mu sync.RWMutex
	// ring holds the cached entries; never resized after NewLogCache.
	ring []logCacheSlot
}

// logCacheSlot is one place of the ring. held is false for an empty slot.
type logCacheSlot struct {
	log  Log
	held bool
}

var _ MonotonicLogStore = (*LogCache)(nil)

// NewLogCache returns a LogCache of capacity entries in front of store. A
// capacity of zero or less is refused with the error "capacity must be
// positive".
func NewLogCache(capacity int, store LogStore) (*LogCache, error) {
	if capacity <= 0 {
		return nil, errors.New("capacity must be positive")
	}
	if store == nil {
		return nil, errors.New("log store must not be nil")
	}
	return &LogCache{
		store: store,
		ring:  make([]logCacheSlot, capacity),
	}, nil
}

// slot returns the ring position of index.
func (c *LogCache) slot(index uint64) int {
	return int(index % uint64(len(c.ring)))
}

// IsMonotonic reports what the wrapped store reports, or false when it does
// not implement MonotonicLogStore.
func (c *LogCache) IsMonotonic() bool {
	if m, ok := c.store.(MonotonicLogStore); ok {
		return m.IsMonotonic()
	}
	return false
}

// GetLog fills log with the entry at idx, from the cache when it holds that
// exact index and from the wrapped store otherwise.
func (c *LogCache) GetLog(idx uint64, log *Log) error {
	if log == nil {
		return errors.New("GetLog: nil destination Log")
	}
	c.mu.RLock()
	s := &c.ring[c.slot(idx)]
	if s.held && s.log.Index == idx {
		*log = s.log
		c.mu.RUnlock()
		return nil
	}
	c.mu.RUnlock()
	return c.store.GetLog(idx, log)
}

// StoreLog stores one entry; see StoreLogs.
func (c *LogCache) StoreLog(log *Log) error {
	return c.StoreLogs([]*Log{log})
}

// StoreLogs gives the entries to the wrapped store and, if it accepted
// them, caches them. A store failure is returned as
// `unable to store logs within log store, err: "<store's error>"` (the text
// the reference uses); errors.Is and errors.As still reach the store's
// error.
func (c *LogCache) StoreLogs(logs []*Log) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.store.StoreLogs(logs); err != nil {
		return &logCacheStoreError{err: err}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range logs {
		if l == nil {
			continue
		}
		c.ring[c.slot(l.Index)] = logCacheSlot{log: *l, held: true}
	}
	return nil
}

// FirstIndex returns the wrapped store's first index.
func (c *LogCache) FirstIndex() (uint64, error) {
	return c.store.FirstIndex()
}

// LastIndex returns the wrapped store's last index.
func (c *LogCache) LastIndex() (uint64, error) {
	return c.store.LastIndex()
}

// DeleteRange empties the cache, then removes the entries from min to max,
// both included, from the wrapped store. The cache is emptied first so that
// it never answers for an entry the store no longer holds.
func (c *LogCache) DeleteRange(min, max uint64) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.mu.Lock()
	clear(c.ring)
	c.mu.Unlock()
	return c.store.DeleteRange(min, max)
}

// logCacheStoreError reports a failed write to the wrapped store with the
// reference's exact text, while keeping the store's error reachable.
type logCacheStoreError struct {
	err error
}

func (e *logCacheStoreError) Error() string {
	return fmt.Sprintf("unable to store logs within log store, err: %q", e.err.Error())
}

func (e *logCacheStoreError) Unwrap() error { return e.err }
