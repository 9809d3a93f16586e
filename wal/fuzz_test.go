package wal

import (
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/quorumkit/raft/wal/segment"
	"github.com/quorumkit/raft/wal/types"
)

// fuzzBase builds the directory FuzzOpen mutates: sealed segments (one
// sealed by a tail truncation), a head truncation inside a segment, a
// tail of several batches, a stable value.
func fuzzBase(t testing.TB) (*memFS, *memMeta) {
	mfs := newMemFS(rand.New(rand.NewPCG(1, 1)))
	meta := newMemMeta(mfs)
	w, err := Open("d", WithSegmentFiler(segment.NewFiler("d", mfs)), WithMetaStore(meta),
		WithSegmentSize(2048), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	steps := []func() error{
		func() error { return w.StoreLogs(batch(1, 40, 1)) },
		func() error { return w.DeleteRange(1, 12) },
		func() error { return w.DeleteRange(38, 40) },
		func() error { return w.StoreLogs(batch(38, 50, 2)) },
		func() error { return w.StoreLogs(batch(51, 51, 2)) },
		func() error { return w.StoreLogs(batch(52, 53, 2)) },
		func() error { return w.SetUint64([]byte("CurrentTerm"), 2) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	return mfs, meta
}

// FuzzOpen opens mutated copies of a WAL directory (segment bytes flipped
// or set, files cut short or removed, the segment list's JSON edited) and
// reads and writes what opens. Damage must come back as an error: never a
// panic, a hang or an unbounded allocation.
func FuzzOpen(f *testing.F) {
	baseFS, baseMeta := fuzzBase(f)
	var names []string
	for n := range baseFS.files {
		names = append(names, n)
	}
	sort.Strings(names)
	f.Add([]byte{})
	f.Add([]byte{0, 0, 40, 0, 0xff, 0})
	f.Add([]byte{1, 2, 0, 2, 0, 0})
	f.Add([]byte{byte(len(names)), 0, 30, 0, '9', 0})
	f.Add([]byte{2, 3, 0, 0, 0, 0, 3, 0, 8, 0, 1, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		mfs := newMemFS(rand.New(rand.NewPCG(2, 2)))
		for n, file := range baseFS.files {
			mfs.files[n] = &memFile{data: append([]byte(nil), file.data...), linked: true}
		}
		meta := baseMeta.image(mfs)
		stateJSON, _ := json.Marshal(meta.state)
		for ; len(ops) >= 6; ops = ops[6:] {
			sel, op, off, val := int(ops[0]), ops[1]%4, int(binary.LittleEndian.Uint16(ops[2:4])), ops[4]
			if sel%(len(names)+1) == len(names) {
				if len(stateJSON) > 0 {
					stateJSON[off%len(stateJSON)] ^= val
				}
				continue
			}
			file, ok := mfs.files[names[sel%(len(names)+1)]]
			if !ok {
				continue
			}
			switch op {
			case 0:
				if off < len(file.data) {
					file.data[off] ^= val
				}
			case 1:
				if off < len(file.data) {
					file.data[off] = val
				}
			case 2:
				if off < len(file.data) {
					file.data = file.data[:off]
				}
			case 3:
				delete(mfs.files, names[sel%(len(names)+1)])
			}
		}
		var st types.PersistentState
		if json.Unmarshal(stateJSON, &st) == nil {
			meta.state = st
		}
		w, err := Open("d", WithSegmentFiler(segment.NewFiler("d", mfs)), WithMetaStore(meta),
			WithSegmentSize(2048), WithLogger(quietLogger()))
		if err != nil {
			return
		}
		defer w.Close()
		first, err1 := w.FirstIndex()
		last, err2 := w.LastIndex()
		if err1 != nil || err2 != nil {
			t.Fatalf("bounds after a successful Open: %v %v", err1, err2)
		}
		l := testLog(1, 1)
		for i := first; i <= last && i < first+200; i++ {
			w.GetLog(i, l)
		}
		if last > 0 {
			w.StoreLogs(batch(last+1, last+3, 3))
			w.DeleteRange(last, last+3)
			w.DeleteRange(first, first)
		}
	})
}
