package raft

import (
	"strconv"
	"time"
)

// LogType says what a log entry is for. The values are stored on disk and
// sent on the wire, so they never change.
type LogType uint8

const (
	// LogCommand carries application data for the FSM.
	LogCommand LogType = iota

	// LogNoop is the entry a new leader appends to commit what earlier
	// leaders left uncommitted. It never reaches the FSM.
	LogNoop

	// LogAddPeerDeprecated changed membership under protocol versions 0 and
	// 1. It is read for compatibility and never written.
	LogAddPeerDeprecated

	// LogRemovePeerDeprecated changed membership under protocol versions 0
	// and 1. It is read for compatibility, and still written when
	// bootstrapping under protocol versions below 3.
	LogRemovePeerDeprecated

	// LogBarrier makes the FSM catch up: its future is answered once every
	// entry before it has been applied. It never reaches the FSM.
	LogBarrier

	// LogConfiguration holds a new cluster membership, encoded with
	// EncodeConfiguration.
	LogConfiguration
)

// String returns the name of the type, or its number if it has no name.
func (t LogType) String() string {
	switch t {
	case LogCommand:
		return "LogCommand"
	case LogNoop:
		return "LogNoop"
	case LogAddPeerDeprecated:
		return "LogAddPeerDeprecated"
	case LogRemovePeerDeprecated:
		return "LogRemovePeerDeprecated"
	case LogBarrier:
		return "LogBarrier"
	case LogConfiguration:
		return "LogConfiguration"
	default:
		return strconv.FormatUint(uint64(t), 10)
	}
}

// Log is one entry of the replicated log.
type Log struct {
	// Index is the entry's position in the log, starting at 1.
	Index uint64

	// Term is the leader's term when the entry was appended.
	Term uint64

	// Type says how the entry is used.
	Type LogType

	// Data is the entry's payload: the application's command for
	// LogCommand entries.
	Data []byte

	// Extensions carries metadata beside Data that the FSM can read but
	// raft itself ignores. It is replicated and stored with the entry.
	// Use it only once every server runs a version that keeps it.
	Extensions []byte

	// AppendedAt is the leader's clock when it appended the entry. Followers
	// keep the leader's value. It is informational (for example, to see how
	// old the oldest entry is) and never used for correctness.
	AppendedAt time.Time
}

// LogStore keeps log entries durably. Implementations must be safe for
// concurrent use: the node reads entries from several goroutines while one
// goroutine writes.
//
// A LogStore owns the entries it is given: raft never modifies a *Log after
// handing it to StoreLog or StoreLogs, and GetLog fills the caller's Log.
type LogStore interface {
	// FirstIndex returns the first index written, or 0 when empty.
	FirstIndex() (uint64, error)

	// LastIndex returns the last index written, or 0 when empty.
	LastIndex() (uint64, error)

	// GetLog fills log with the entry at index, or returns ErrLogNotFound.
	GetLog(index uint64, log *Log) error

	// StoreLog stores one entry.
	StoreLog(log *Log) error

	// StoreLogs stores several entries, all of them or none. When it
	// returns nil the entries must be durable.
	StoreLogs(logs []*Log) error

	// DeleteRange removes the entries from min to max, both included.
	DeleteRange(min, max uint64) error
}

// MonotonicLogStore is implemented by a LogStore that cannot hold gaps
// between indexes. Raft then deletes the whole log, instead of leaving a
// gap, when a restored snapshot moves the log past its end.
type MonotonicLogStore interface {
	IsMonotonic() bool
}

// CommitTrackingLogStore is implemented by a LogStore that also records the
// commit index, so that a restarted node can apply its committed entries
// before it hears from a leader (see Config.RestoreCommittedLogs).
type CommitTrackingLogStore interface {
	LogStore

	// StageCommitIndex records idx as committed. Raft calls it before the
	// StoreLogs call that follows, so a store may write both together; the
	// recorded index may run ahead of what was stored.
	StageCommitIndex(idx uint64) error

	// GetCommitIndex returns the last index recorded with StageCommitIndex.
	GetCommitIndex() (uint64, error)
}

// entryBytes is the size of an entry's payload, used to bound the bytes of
// one AppendEntries RPC.
func entryBytes(l *Log) int {
	return len(l.Data) + len(l.Extensions)
}
