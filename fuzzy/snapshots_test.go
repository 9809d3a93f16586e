package fuzzy

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/quorumkit/raft"
)

// The snapshot store of a server's disk.
//
// Snapshots live on the same disk as the log and follow the same crash
// rules (store_test.go): a sink buffers its bytes in memory, and the
// snapshot exists only once the sink's Close landed, which it does as one
// write, atomically, with the disk's latency and injected failures, and
// only if the incarnation that created the sink has not crashed. A Close
// that fails may have landed anyway, as any write may. What a crash keeps
// is therefore every snapshot whose Close returned nil, maybe some whose
// Close was in flight or failed, and nothing else.
//
// Like a FileSnapshotStore, the store keeps the newest few snapshots and
// lists them newest first, by term, then index, then creation order: a
// snapshot that finishes after a newer one (a slow local snapshot
// overtaken by one installed from the leader) never hides the newer one.
// raft.InmemSnapshotStore, which keeps whichever closed last, does not
// model a real store here.

// retainSnapshots is how many snapshots a disk keeps.
const retainSnapshots = 2

// storedSnapshot is a snapshot on a disk. Its bytes never change.
type storedSnapshot struct {
	meta raft.SnapshotMeta
	data []byte
	// seq orders snapshots of equal term and index by creation.
	seq int
}

// snapshotStore is one incarnation's view of its disk's snapshots. It
// implements raft.SnapshotStore.
type snapshotStore struct{ h *diskHandle }

var _ raft.SnapshotStore = snapshotStore{}

// snapshots returns the handle's snapshot store.
func (h *diskHandle) snapshots() snapshotStore { return snapshotStore{h} }

func (s snapshotStore) Create(version raft.SnapshotVersion, index, term uint64,
	configuration raft.Configuration, configurationIndex uint64, _ raft.Transport) (raft.SnapshotSink, error) {
	if version != 1 {
		return nil, fmt.Errorf("unsupported snapshot version %d", version)
	}
	var seq int
	err := s.h.read(func(d *disk) error {
		d.snapSeq++
		seq = d.snapSeq
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &snapshotSink{
		h:   s.h,
		seq: seq,
		meta: raft.SnapshotMeta{
			Version:            version,
			ID:                 fmt.Sprintf("%d-%d-%d", term, index, seq),
			Index:              index,
			Term:               term,
			Configuration:      configuration.Clone(),
			ConfigurationIndex: configurationIndex,
		},
	}, nil
}

func (s snapshotStore) List() ([]*raft.SnapshotMeta, error) {
	var out []*raft.SnapshotMeta
	err := s.h.read(func(d *disk) error {
		for _, snap := range d.snaps {
			out = append(out, cloneMeta(&snap.meta))
		}
		return nil
	})
	return out, err
}

func (s snapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	var found *storedSnapshot
	err := s.h.read(func(d *disk) error {
		for _, snap := range d.snaps {
			if snap.meta.ID == id {
				found = snap
				return nil
			}
		}
		return fmt.Errorf("fuzzy: no snapshot %s", id)
	})
	if err != nil {
		return nil, nil, err
	}
	return cloneMeta(&found.meta), io.NopCloser(bytes.NewReader(found.data)), nil
}

func cloneMeta(m *raft.SnapshotMeta) *raft.SnapshotMeta {
	out := *m
	out.Configuration = m.Configuration.Clone()
	return &out
}

// snapshotIndexLocked returns the index of the newest snapshot on the
// disk, 0 if none. The caller holds mu.
func (d *disk) snapshotIndexLocked() uint64 {
	var index uint64
	for _, s := range d.snaps {
		index = max(index, s.meta.Index)
	}
	return index
}

// snapshotSink buffers a snapshot until Close lands it on the disk.
type snapshotSink struct {
	h   *diskHandle
	seq int

	mu   sync.Mutex
	meta raft.SnapshotMeta // guarded by mu
	buf  bytes.Buffer      // guarded by mu
	done bool              // guarded by mu
}

func (s *snapshotSink) ID() string { return s.meta.ID }

func (s *snapshotSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return 0, fmt.Errorf("fuzzy: write to a closed snapshot sink")
	}
	return s.buf.Write(p)
}

// Close lands the snapshot: one disk write, which may be slow, fail, or
// be cut by a crash.
func (s *snapshotSink) Close() error {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return nil
	}
	s.done = true
	snap := &storedSnapshot{meta: s.meta, data: bytes.Clone(s.buf.Bytes()), seq: s.seq}
	s.mu.Unlock()
	snap.meta.Size = int64(len(snap.data))
	return s.h.write(false, func(d *disk) {
		d.snaps = append(d.snaps, snap)
		slices.SortFunc(d.snaps, func(a, b *storedSnapshot) int {
			return cmp.Or(cmp.Compare(b.meta.Term, a.meta.Term), cmp.Compare(b.meta.Index, a.meta.Index), cmp.Compare(b.seq, a.seq))
		})
		if len(d.snaps) > retainSnapshots {
			clear(d.snaps[retainSnapshots:])
			d.snaps = d.snaps[:retainSnapshots]
		}
		d.check.onSnapshotStored(d.id, &snap.meta, snap.data)
	})
}

func (s *snapshotSink) Cancel() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
	s.buf = bytes.Buffer{}
	return nil
}
