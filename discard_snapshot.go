package raft

import (
	"errors"
	"io"
)

// DiscardSnapshotStore is a SnapshotStore that throws every snapshot away.
// Taking a snapshot still lets raft compact its log, but nothing can ever
// be restored or sent to a follower from it, so it is for tests only.
type DiscardSnapshotStore struct{}

// DiscardSnapshotSink is the sink of a DiscardSnapshotStore: it accepts
// and drops every byte.
type DiscardSnapshotSink struct{}

var (
	_ SnapshotStore = (*DiscardSnapshotStore)(nil)
	_ SnapshotSink  = (*DiscardSnapshotSink)(nil)
)

// NewDiscardSnapshotStore returns a DiscardSnapshotStore.
func NewDiscardSnapshotStore() *DiscardSnapshotStore {
	return &DiscardSnapshotStore{}
}

// Create returns a sink that drops what is written to it. It never fails.
func (d *DiscardSnapshotStore) Create(version SnapshotVersion, index, term uint64,
	configuration Configuration, configurationIndex uint64, trans Transport) (SnapshotSink, error) {
	return &DiscardSnapshotSink{}, nil
}

// List returns no snapshots (a nil slice) and no error.
func (d *DiscardSnapshotStore) List() ([]*SnapshotMeta, error) {
	return nil, nil
}

// Open always fails with the error "open is not supported".
func (d *DiscardSnapshotStore) Open(id string) (*SnapshotMeta, io.ReadCloser, error) {
	return nil, nil, errors.New("open is not supported")
}

// Write drops b and reports it all written.
func (d *DiscardSnapshotSink) Write(b []byte) (int, error) {
	return len(b), nil
}

// Close returns nil.
func (d *DiscardSnapshotSink) Close() error {
	return nil
}

// ID returns "discard".
func (d *DiscardSnapshotSink) ID() string {
	return "discard"
}

// Cancel returns nil.
func (d *DiscardSnapshotSink) Cancel() error {
	return nil
}
