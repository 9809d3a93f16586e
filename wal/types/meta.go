package types

import "io"

// MetaStore keeps the WAL's small durable records: the list of segments
// and the raft StableStore values. The default keeps them in wal-meta.db,
// a bbolt file in the WAL's directory.
type MetaStore interface {
	// Load opens (creating when absent) the store for dir and returns the
	// state last committed, or the zero state for a new store.
	Load(dir string) (PersistentState, error)

	// CommitState replaces the whole persisted state with the one given,
	// atomically, and returns only once it is durable: after a crash Load
	// returns either this state or the previous one. The WAL calls it from
	// one goroutine at a time, never beside Load, possibly beside the
	// stable-value methods.
	CommitState(PersistentState) error

	// GetStable returns the value stored under key, or nil (and no error)
	// if there is none. It may be called from several goroutines at once.
	GetStable(key []byte) ([]byte, error)

	// SetStable stores value under key durably; a nil value deletes the
	// key. It may run beside GetStable.
	SetStable(key, value []byte) error

	io.Closer
}

// PersistentState is what the meta store keeps about the log's files: the
// segments, oldest first, and the ID the next new segment gets.
type PersistentState struct {
	NextSegmentID uint64
	Segments      []SegmentInfo
}
