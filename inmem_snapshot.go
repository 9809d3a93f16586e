package raft

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// InmemSnapshotStore keeps snapshots in memory, for tests. It holds only
// the latest snapshot: closing a sink replaces whatever was there before.
// It is safe for concurrent use.
//
// The embedded RWMutex guards the store's state and is part of the
// exported API (as in hashicorp/raft); a caller holding it blocks the
// store's methods.
type InmemSnapshotStore struct {
	sync.RWMutex

	// latest is the last snapshot whose sink was closed, nil before the
	// first one. Once published its bytes never change. Guarded by the
	// embedded RWMutex.
	latest *inmemSnapshot
}

// inmemSnapshot is a finished snapshot: its metadata and its bytes.
type inmemSnapshot struct {
	meta SnapshotMeta
	data []byte
}

// InmemSnapshotSink receives the bytes of one InmemSnapshotStore snapshot.
// The snapshot becomes the store's latest when the sink is closed;
// cancelling it leaves the store as it was.
type InmemSnapshotSink struct {
	store *InmemSnapshotStore

	mu sync.Mutex
	// The fields below are guarded by mu.
	meta SnapshotMeta
	buf  bytes.Buffer
	// done is set by the first Close or Cancel; later writes fail.
	done bool
}

var (
	_ SnapshotStore = (*InmemSnapshotStore)(nil)
	_ SnapshotSink  = (*InmemSnapshotSink)(nil)
)

// errSinkDone is returned by a write to a sink that was closed or
// cancelled.
var errSinkDone = errors.New("snapshot sink is already closed or cancelled")

// NewInmemSnapshotStore returns an empty in-memory snapshot store.
func NewInmemSnapshotStore() *InmemSnapshotStore {
	return &InmemSnapshotStore{}
}

// Create starts a snapshot of the state up to index and term. Only
// snapshot version 1 can be created; other versions get the error
// "unsupported snapshot version N". trans encodes the legacy Peers field;
// when it is nil each voter's address is used as is, as the bundled
// transports do. The configuration is copied.
func (m *InmemSnapshotStore) Create(version SnapshotVersion, index, term uint64,
	configuration Configuration, configurationIndex uint64, trans Transport) (SnapshotSink, error) {
	if version != 1 {
		return nil, fmt.Errorf("unsupported snapshot version %d", version)
	}
	return &InmemSnapshotSink{
		store: m,
		meta: SnapshotMeta{
			Version:            version,
			ID:                 newSnapshotID(term, index, time.Now()),
			Index:              index,
			Term:               term,
			Peers:              snapshotPeers(configuration, trans),
			Configuration:      cloneSnapshotConfiguration(configuration),
			ConfigurationIndex: configurationIndex,
		},
	}, nil
}

// List returns the latest snapshot's metadata, or an empty, non-nil slice
// when no snapshot was closed yet. It never fails.
func (m *InmemSnapshotStore) List() ([]*SnapshotMeta, error) {
	m.RLock()
	defer m.RUnlock()
	if m.latest == nil {
		return []*SnapshotMeta{}, nil
	}
	return []*SnapshotMeta{cloneSnapshotMeta(&m.latest.meta)}, nil
}

// Open returns the metadata and bytes of the latest snapshot, which must
// have the given id; any other id gets the error
// "[ERR] snapshot: failed to open snapshot id: <id>". The reader's bytes
// never change, whatever is written to the store later.
func (m *InmemSnapshotStore) Open(id string) (*SnapshotMeta, io.ReadCloser, error) {
	m.RLock()
	defer m.RUnlock()
	if m.latest == nil || m.latest.meta.ID != id {
		return nil, nil, fmt.Errorf("[ERR] snapshot: failed to open snapshot id: %s", id)
	}
	return cloneSnapshotMeta(&m.latest.meta), io.NopCloser(bytes.NewReader(m.latest.data)), nil
}

// publish makes s the latest snapshot.
func (m *InmemSnapshotStore) publish(s *inmemSnapshot) {
	m.Lock()
	defer m.Unlock()
	m.latest = s
}

// Write appends p to the snapshot. It fails once the sink was closed or
// cancelled.
func (s *InmemSnapshotSink) Write(p []byte) (n int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return 0, errSinkDone
	}
	n, err = s.buf.Write(p)
	s.meta.Size += int64(n)
	return n, err
}

// Close finishes the snapshot, sets its Size and makes it the store's
// latest. Calling Close or Cancel again does nothing and returns nil.
func (s *InmemSnapshotSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil
	}
	s.done = true
	// The buffer is never written again, so its bytes can be shared with
	// every reader without a copy.
	data := s.buf.Bytes()
	s.meta.Size = int64(len(data))
	s.store.publish(&inmemSnapshot{meta: s.meta, data: data})
	return nil
}

// ID returns the snapshot's ID, to be given to Open once it is closed.
func (s *InmemSnapshotSink) ID() string {
	return s.meta.ID
}

// Cancel drops the snapshot; the store keeps its previous one. It always
// returns nil.
func (s *InmemSnapshotSink) Cancel() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil
	}
	s.done = true
	s.buf = bytes.Buffer{}
	return nil
}

// cloneSnapshotMeta returns a copy of meta that shares no memory with it,
// so that callers cannot change a store's records.
func cloneSnapshotMeta(meta *SnapshotMeta) *SnapshotMeta {
	out := *meta
	out.Peers = bytes.Clone(meta.Peers)
	out.Configuration = cloneSnapshotConfiguration(meta.Configuration)
	return &out
}

// cloneSnapshotConfiguration copies c. Unlike Configuration.Clone it keeps
// an empty, non-nil server list non-nil, so that a meta.json records it as
// the reference does ("Servers":[] rather than null).
func cloneSnapshotConfiguration(c Configuration) Configuration {
	if c.Servers == nil {
		return Configuration{}
	}
	return Configuration{Servers: append(make([]Server, 0, len(c.Servers)), c.Servers...)}
}

// newSnapshotID names a snapshot "<term>-<index>-<unix milliseconds>", the
// scheme shared by the file and in-memory stores and by hashicorp/raft. The
// file store uses it as the snapshot's directory name, and List orders
// snapshots of equal term and index by it.
func newSnapshotID(term, index uint64, now time.Time) string {
	return fmt.Sprintf("%d-%d-%d", term, index, now.UnixMilli())
}

// snapshotPeers encodes the voters of configuration in the legacy Peers
// format with trans. Without a transport it encodes each voter's address
// as its bytes, which is what the bundled transports' EncodePeer does.
func snapshotPeers(configuration Configuration, trans Transport) []byte {
	if trans == nil {
		trans = addressPeerEncoder{}
	}
	return encodePeers(configuration, trans)
}

// addressPeerEncoder is the Transport snapshotPeers falls back to. Only
// EncodePeer is ever called on it; the embedded nil Transport satisfies
// the rest of the interface.
type addressPeerEncoder struct {
	Transport
}

func (addressPeerEncoder) EncodePeer(_ ServerID, addr ServerAddress) []byte {
	return []byte(addr)
}
