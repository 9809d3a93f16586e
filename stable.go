package raft

// StableStore keeps the few values raft must never forget: the current
// term and the last vote. Implementations must be safe for concurrent use
// and must make a Set durable before returning.
//
// A key that was never set is reported by Get and GetUint64 with an error
// whose text is exactly "not found" (as raft-boltdb's ErrKeyNotFound is), or
// by GetUint64 returning 0 and no error.
type StableStore interface {
	// Set stores val under key.
	Set(key []byte, val []byte) error

	// Get returns the value stored under key.
	Get(key []byte) ([]byte, error)

	// SetUint64 stores val under key.
	SetUint64(key []byte, val uint64) error

	// GetUint64 returns the value stored under key.
	GetUint64(key []byte) (uint64, error)
}

// The StableStore keys raft writes. Their bytes are part of the on-disk
// format shared with hashicorp/raft.
var (
	keyCurrentTerm  = []byte("CurrentTerm")
	keyLastVoteTerm = []byte("LastVoteTerm")
	keyLastVoteCand = []byte("LastVoteCand")
)
