package raft

import "io"

// FSM is the application's state machine. Raft calls its methods from a
// single goroutine, in log order, so an FSM needs no locking against
// itself; it does against the application's own readers.
type FSM interface {
	// Apply applies a committed LogCommand entry and returns a value that
	// the entry's ApplyFuture.Response returns on the node that appended it.
	// It must be deterministic: every server applies the same entries and
	// must reach the same state.
	Apply(*Log) interface{}

	// Snapshot returns a point-in-time snapshot of the state. It should be
	// quick: Apply is not called until it returns, but FSMSnapshot.Persist
	// runs concurrently with later Apply calls, so Snapshot must capture
	// what Persist needs (for example, a copy-on-write view).
	Snapshot() (FSMSnapshot, error)

	// Restore replaces the whole state with the snapshot read from snapshot
	// and closes it. It is never called concurrently with other methods.
	Restore(snapshot io.ReadCloser) error
}

// BatchingFSM is an FSM that can apply several entries at once, which lets
// it amortise work such as a disk transaction over a batch.
type BatchingFSM interface {
	// ApplyBatch applies committed entries in order and returns one
	// response per entry, in the same order. Entries of type LogCommand and
	// LogConfiguration are passed; the FSM should ignore types it does not
	// know. The returned slice must have the same length as the input.
	ApplyBatch([]*Log) []interface{}

	FSM
}

// ConfigurationStore is an FSM that wants to record cluster membership
// alongside its state.
type ConfigurationStore interface {
	FSM

	// StoreConfiguration is called, in log order with Apply, for every
	// committed configuration entry.
	StoreConfiguration(index uint64, configuration Configuration)
}

// FSMSnapshot is a point-in-time snapshot returned by FSM.Snapshot.
type FSMSnapshot interface {
	// Persist writes the snapshot to sink and closes it, or calls
	// sink.Cancel on failure.
	Persist(sink SnapshotSink) error

	// Release is called when raft no longer needs the snapshot.
	Release()
}

// CountingReader is a reader that knows how many bytes it has produced.
type CountingReader interface {
	io.Reader
	Count() int64
}

// ReadCloserWrapper is a reader that wraps another one, which it exposes.
type ReadCloserWrapper interface {
	io.ReadCloser
	WrappedReadCloser() io.ReadCloser
}

// WrappingFSM is an FSM that wraps another one, which it exposes.
type WrappingFSM interface {
	Underlying() FSM
}
