// Package types holds the interfaces and records shared by the wal package
// and its pluggable parts: the segment filer that reads and writes segment
// files, the meta store that keeps which segments make up the log, and the
// file system beneath the filer. Replacing a part (a test file system that
// simulates crashes, an in-memory meta store) needs only these types.
package types

import (
	"errors"

	"github.com/quorumkit/raft"
)

var (
	// ErrNotFound is raft.ErrLogNotFound itself: raft compares GetLog's
	// error with that value to learn that an entry is gone (and a follower
	// needs a snapshot), so a segment reader reports a missing entry with it.
	ErrNotFound = raft.ErrLogNotFound

	// ErrCorrupt is wrapped by every error that reports damaged files:
	// a segment or meta record that cannot be what the WAL wrote.
	ErrCorrupt = errors.New("WAL is corrupt")

	// ErrSealed is returned when appending to a segment that has already
	// written its index frame and takes no more entries.
	ErrSealed = errors.New("segment is sealed")

	// ErrClosed is returned by every WAL method called after Close.
	ErrClosed = errors.New("closed")
)

// LogEntry is one log entry already encoded by the codec, with the raft
// index it was encoded from.
type LogEntry struct {
	Index uint64
	Data  []byte
}
