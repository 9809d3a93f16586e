package raft

import "io"

// SnapshotMeta describes a stored snapshot. Its JSON form is the meta.json
// file of a FileSnapshotStore, shared with hashicorp/raft.
type SnapshotMeta struct {
	// Version is the snapshot format version.
	Version SnapshotVersion

	// ID identifies the snapshot in its store.
	ID string

	// Index and Term are those of the last entry the snapshot includes.
	Index uint64
	Term  uint64

	// Peers is the membership in the legacy encoding.
	//
	// Deprecated: kept for snapshot version 0; use Configuration.
	Peers []byte

	// Configuration is the membership at Index, and ConfigurationIndex the
	// index of the entry that set it.
	Configuration      Configuration
	ConfigurationIndex uint64

	// Size is the snapshot's length in bytes.
	Size int64
}

// SnapshotStore keeps snapshots. Implementations must be safe for
// concurrent use.
type SnapshotStore interface {
	// Create starts a new snapshot; the caller writes its bytes to the
	// sink and closes it, or cancels it.
	Create(version SnapshotVersion, index, term uint64, configuration Configuration,
		configurationIndex uint64, trans Transport) (SnapshotSink, error)

	// List returns the usable snapshots, newest first.
	List() ([]*SnapshotMeta, error)

	// Open opens the snapshot with the given ID; the caller must close the
	// reader.
	Open(id string) (*SnapshotMeta, io.ReadCloser, error)
}

// SnapshotSink receives a snapshot's bytes. Close makes the snapshot
// usable; Cancel throws it away.
type SnapshotSink interface {
	io.WriteCloser
	ID() string
	Cancel() error
}
