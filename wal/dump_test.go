package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"sort"
	"strings"
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

// segEntry names one entry of one segment file.
type segEntry struct{ id, index uint64 }

// dumpAll reads every segment of the directory with DumpSegment, keyed by
// segment and index. It fails the test if a segment's entries do not run
// on from its base index, one by one.
func dumpAll(t testing.TB, f *segment.Filer) (map[segEntry][]byte, error) {
	segs, err := f.List()
	if err != nil {
		return nil, err
	}
	got := make(map[segEntry][]byte)
	var firstErr error
	for id, base := range segs {
		next := base
		err := f.DumpSegment(base, id, 0, 0, func(info types.SegmentInfo, e types.LogEntry) (bool, error) {
			if info.ID != id || info.BaseIndex != base || e.Index != next {
				t.Fatalf("segment %d (base %d): entry %d from %+v, want entry %d", id, base, e.Index, info, next)
			}
			next++
			got[segEntry{id, e.Index}] = append([]byte(nil), e.Data...)
			return true, nil
		})
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return got, firstErr
}

// FuzzDumpSegment reads mutated copies of a WAL directory's segment files
// (bytes flipped or set, files cut short) with the debugging readers
// DumpSegment and DumpLogs, which read a segment without the metadata.
// Damage must come back as an error or as fewer entries: never a panic, a
// hang or an unbounded allocation, and never an entry whose bytes differ
// from what the intact file holds at that place (every batch carries a
// checksum).
func FuzzDumpSegment(f *testing.F) {
	baseFS, _ := fuzzBase(f)
	var names []string
	for n := range baseFS.files {
		if strings.HasSuffix(n, ".wal") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	want, err := dumpAll(f, segment.NewFiler("d", baseFS))
	if err != nil || len(names) < 3 || len(want) == 0 {
		f.Fatalf("the intact directory: %d segment files, %d entries, %v", len(names), len(want), err)
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0, 40, 0, 0xff})
	f.Add([]byte{1, 1, 8, 0, 0xff})
	f.Add([]byte{2, 2, 100, 0, 0})
	f.Add([]byte{0, 1, 60, 0, 0x7f, 1, 0, 200, 0, 1})
	f.Fuzz(func(t *testing.T, ops []byte) { dumpMutated(t, baseFS, names, want, ops) })
}

// dumpMutated is one case of FuzzDumpSegment: it applies ops (5 bytes each:
// file, kind, offset, value) to a copy of baseFS's segment files named in
// names and dumps them, checking every entry against want.
func dumpMutated(t testing.TB, baseFS *memFS, names []string, want map[segEntry][]byte, ops []byte) {
	mfs := newMemFS(rand.New(rand.NewPCG(4, 4)))
	for n, file := range baseFS.files {
		mfs.files[n] = &memFile{data: append([]byte(nil), file.data...), linked: true}
	}
	for ; len(ops) >= 5; ops = ops[5:] {
		file := mfs.files[names[int(ops[0])%len(names)]]
		off, val := int(binary.LittleEndian.Uint16(ops[2:4])), ops[4]
		if off >= len(file.data) {
			continue
		}
		switch ops[1] % 3 {
		case 0:
			file.data[off] ^= val
		case 1:
			file.data[off] = val
		case 2:
			file.data = file.data[:off]
		}
	}
	fl := segment.NewFiler("d", mfs)
	got, _ := dumpAll(t, fl)
	for k, data := range got {
		if w, ok := want[k]; !ok || !bytes.Equal(w, data) {
			t.Fatalf("segment %d, entry %d: %d bytes that the intact file does not hold there (it holds %d: %v)", k.id, k.index, len(data), len(w), ok)
		}
	}
	// DumpLogs reads the same files in order of base index: each
	// segment's entries run on one by one, as DumpSegment gives them.
	next := make(map[uint64]uint64)
	_ = fl.DumpLogs(0, 0, func(info types.SegmentInfo, e types.LogEntry) (bool, error) {
		if n, ok := next[info.ID]; ok && e.Index != n {
			t.Fatalf("DumpLogs: segment %d gave entry %d after %d", info.ID, e.Index, n-1)
		}
		next[info.ID] = e.Index + 1
		if w, ok := want[segEntry{info.ID, e.Index}]; !ok || !bytes.Equal(w, e.Data) {
			t.Fatalf("DumpLogs: segment %d, entry %d differs from the intact file", info.ID, e.Index)
		}
		return true, nil
	})
}
