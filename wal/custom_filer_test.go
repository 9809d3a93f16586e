package wal

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/quorumkit/raft/wal/types"
)

// keepingFiler is a types.SegmentFiler kept in memory whose segments hold
// the entries Append is given, Data slices included, without copying them:
// a custom filer may do that (raft-wal's own test stub does), so the WAL
// must not write into a batch's buffers once Append has them.
type keepingFiler struct {
	mu       sync.Mutex
	segments map[uint64]*keepingSegment
}

type keepingSegment struct {
	mu      sync.Mutex
	info    types.SegmentInfo
	entries []types.LogEntry
	limit   int
}

func (f *keepingFiler) Create(info types.SegmentInfo) (types.SegmentWriter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.segments == nil {
		f.segments = map[uint64]*keepingSegment{}
	}
	s := &keepingSegment{info: info, limit: 10}
	f.segments[info.ID] = s
	return s, nil
}

func (f *keepingFiler) RecoverTail(info types.SegmentInfo) (types.SegmentWriter, error) {
	return f.get(info.ID)
}

func (f *keepingFiler) Open(info types.SegmentInfo) (types.SegmentReader, error) {
	return f.get(info.ID)
}

func (f *keepingFiler) get(id uint64) (*keepingSegment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.segments[id]
	if !ok {
		return nil, fmt.Errorf("no segment %d", id)
	}
	return s, nil
}

func (f *keepingFiler) List() (map[uint64]uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[uint64]uint64{}
	for id, s := range f.segments {
		out[id] = s.info.BaseIndex
	}
	return out, nil
}

func (f *keepingFiler) Delete(baseIndex, ID uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.segments, ID)
	return nil
}

func (s *keepingSegment) Close() error { return nil }

func (s *keepingSegment) GetLog(idx uint64) (*types.PooledBuffer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if idx < s.info.BaseIndex || idx >= s.info.BaseIndex+uint64(len(s.entries)) {
		return nil, ErrNotFound
	}
	return &types.PooledBuffer{Bs: s.entries[idx-s.info.BaseIndex].Data}, nil
}

func (s *keepingSegment) Append(entries []types.LogEntry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.entries) >= s.limit {
		return ErrSealed
	}
	s.entries = append(s.entries, entries...)
	return nil
}

func (s *keepingSegment) Sealed() (bool, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries) >= s.limit, 1, nil
}

func (s *keepingSegment) LastIndex() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.entries) == 0 {
		return 0
	}
	return s.entries[len(s.entries)-1].Index
}

// TestCustomFilerKeepsEntries stores batches through a filer that keeps
// the entries it is given and reads every entry back. (The WAL reused one
// encoding buffer for every batch, so each batch overwrote the entries of
// the one before in such a filer.)
func TestCustomFilerKeepsEntries(t *testing.T) {
	mfs := newMemFS(rand.New(rand.NewPCG(1, 1)))
	w, err := Open("d", WithSegmentFiler(&keepingFiler{}), WithMetaStore(newMemMeta(mfs)),
		WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := uint64(1); i <= 25; i += 3 {
		if err := w.StoreLogs(batch(i, i+2, 1)); err != nil {
			t.Fatal(err)
		}
	}
	checkLog(t, w, 1, 27, func(uint64) uint64 { return 1 })
}
