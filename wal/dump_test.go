package wal

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/quorumkit/raft"
	"github.com/quorumkit/raft/wal/segment"
	"github.com/quorumkit/raft/wal/types"
)

// TestDumpLogs reads a WAL's segment files with segment.Filer's DumpLogs
// and DumpSegment, without the metadata, while the WAL is open.
func TestDumpLogs(t *testing.T) {
	mfs := newMemFS(rand.New(rand.NewPCG(3, 3)))
	w, err := Open("d", WithSegmentFiler(segment.NewFiler("d", mfs)), WithMetaStore(newMemMeta(mfs)),
		WithSegmentSize(8192), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := uint64(1); i <= 120; i += 4 {
		if err := w.StoreLogs(batch(i, i+3, 2)); err != nil {
			t.Fatal(err)
		}
	}
	f := segment.NewFiler("d", mfs)
	segs, err := f.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) < 3 {
		t.Fatalf("%d segments; the test wants several", len(segs))
	}

	next := uint64(11)
	err = f.DumpLogs(10, 100, func(info types.SegmentInfo, e types.LogEntry) (bool, error) {
		if e.Index != next {
			t.Fatalf("got index %d, want %d", e.Index, next)
		}
		if info.Codec != CodecBinaryV1 || segs[info.ID] != info.BaseIndex {
			t.Fatalf("entry %d: segment info %+v", e.Index, info)
		}
		var l raft.Log
		if err := (&BinaryCodec{}).Decode(e.Data, &l); err != nil {
			t.Fatal(err)
		}
		if !sameLog(&l, testLog(e.Index, 2)) {
			t.Fatalf("entry %d differs", e.Index)
		}
		next++
		return true, nil
	})
	if err != nil || next != 100 {
		t.Fatalf("DumpLogs: %v; stopped before %d, want 100", err, next)
	}

	calls := 0
	if err := f.DumpLogs(0, 0, func(types.SegmentInfo, types.LogEntry) (bool, error) {
		calls++
		return false, nil
	}); err != nil || calls != 1 {
		t.Fatalf("stop: %v after %d calls, want nil after 1", err, calls)
	}
	stop := errors.New("stop")
	calls = 0
	for id, base := range segs {
		if err := f.DumpSegment(base, id, 0, 0, func(types.SegmentInfo, types.LogEntry) (bool, error) {
			calls++
			return true, stop
		}); !errors.Is(err, stop) {
			t.Fatalf("DumpSegment returned %v, want the callback's error", err)
		}
	}
	if calls != len(segs) {
		t.Fatalf("%d calls for %d segments", calls, len(segs))
	}
}
