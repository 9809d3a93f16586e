package wal

import (
	"encoding/binary"
	"fmt"
)

// Set stores val under key in the meta store (raft.StableStore). A nil
// val deletes the key.
func (w *WAL) Set(key []byte, val []byte) error {
	if w.closed.Load() {
		return ErrClosed
	}
	w.metrics.IncrementCounter("stable_sets", 1)
	return w.metaDB.SetStable(key, val)
}

// Get returns the value stored under key. Like raft-wal's, it returns nil
// and no error for a key never set, which raft reads as absent.
func (w *WAL) Get(key []byte) ([]byte, error) {
	if w.closed.Load() {
		return nil, ErrClosed
	}
	w.metrics.IncrementCounter("stable_gets", 1)
	return w.metaDB.GetStable(key)
}

// SetUint64 stores val under key as 8 little-endian bytes (raft-wal's
// encoding; raft-boltdb's is big-endian). Set and SetUint64 share one key
// space.
func (w *WAL) SetUint64(key []byte, val uint64) error {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], val)
	return w.Set(key, b[:])
}

// GetUint64 returns the value SetUint64 stored under key, or zero and no
// error for a key never set. A value of another length is an error.
func (w *WAL) GetUint64(key []byte) (uint64, error) {
	raw, err := w.Get(key)
	if err != nil {
		return 0, err
	}
	if len(raw) == 0 {
		return 0, nil
	}
	if len(raw) != 8 {
		return 0, fmt.Errorf("GetUint64 called on a non-uint64 key: %q holds %d bytes", key, len(raw))
	}
	return binary.LittleEndian.Uint64(raw), nil
}
