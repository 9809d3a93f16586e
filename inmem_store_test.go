package raft

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
)

// inmemLogs returns entries for the given indexes, each carrying its index
// in Data so that a mix-up shows.
func inmemLogs(indexes ...uint64) []*Log {
	logs := make([]*Log, len(indexes))
	for i, idx := range indexes {
		logs[i] = &Log{Index: idx, Term: 1, Type: LogCommand, Data: []byte{byte(idx)}}
	}
	return logs
}

// inmemIndexRange returns first..last.
func inmemIndexRange(first, last uint64) []uint64 {
	var out []uint64
	for i := first; i <= last; i++ {
		out = append(out, i)
	}
	return out
}

func TestInmemStoreBoundsFollowDeletes(t *testing.T) {
	type deletion struct{ min, max uint64 }
	cases := []struct {
		name        string
		stored      []uint64
		deletes     []deletion
		first, last uint64
		held        []uint64
	}{
		{name: "empty", first: 0, last: 0},
		{name: "contiguous", stored: inmemIndexRange(1, 10), first: 1, last: 10, held: inmemIndexRange(1, 10)},
		{name: "stored out of order", stored: []uint64{5, 3, 9, 4}, first: 3, last: 9, held: []uint64{3, 4, 5, 9}},
		{name: "delete head", stored: inmemIndexRange(1, 10), deletes: []deletion{{1, 3}},
			first: 4, last: 10, held: inmemIndexRange(4, 10)},
		{name: "delete head from below", stored: inmemIndexRange(5, 10), deletes: []deletion{{0, 6}},
			first: 7, last: 10, held: inmemIndexRange(7, 10)},
		{name: "delete tail", stored: inmemIndexRange(1, 10), deletes: []deletion{{8, 10}},
			first: 1, last: 7, held: inmemIndexRange(1, 7)},
		{name: "delete tail beyond end", stored: inmemIndexRange(1, 10), deletes: []deletion{{9, 100}},
			first: 1, last: 8, held: inmemIndexRange(1, 8)},
		{name: "delete middle", stored: inmemIndexRange(1, 10), deletes: []deletion{{4, 6}},
			first: 1, last: 10, held: []uint64{1, 2, 3, 7, 8, 9, 10}},
		{name: "delete everything", stored: inmemIndexRange(1, 10), deletes: []deletion{{1, 10}}},
		{name: "delete whole uint64 range", stored: inmemIndexRange(1, 10), deletes: []deletion{{0, math.MaxUint64}}},
		{name: "delete top of uint64 range", stored: []uint64{1, math.MaxUint64 - 1, math.MaxUint64},
			deletes: []deletion{{math.MaxUint64 - 1, math.MaxUint64}}, first: 1, last: 1, held: []uint64{1}},
		{name: "min above max deletes nothing", stored: inmemIndexRange(1, 3), deletes: []deletion{{3, 1}},
			first: 1, last: 3, held: inmemIndexRange(1, 3)},
		{name: "delete outside", stored: inmemIndexRange(5, 6), deletes: []deletion{{1, 2}, {8, 9}},
			first: 5, last: 6, held: []uint64{5, 6}},
		// After a snapshot restore the log can have a gap.
		{name: "head before gap", stored: []uint64{1, 2, 3, 10, 11}, deletes: []deletion{{1, 3}},
			first: 10, last: 11, held: []uint64{10, 11}},
		{name: "head into gap", stored: []uint64{1, 2, 3, 10, 11}, deletes: []deletion{{1, 6}},
			first: 10, last: 11, held: []uint64{10, 11}},
		{name: "tail after gap", stored: []uint64{1, 2, 3, 10, 11}, deletes: []deletion{{10, 11}},
			first: 1, last: 3, held: []uint64{1, 2, 3}},
		{name: "tail from inside gap", stored: []uint64{1, 2, 3, 10, 11}, deletes: []deletion{{5, 20}},
			first: 1, last: 3, held: []uint64{1, 2, 3}},
		{name: "repeated compaction", stored: inmemIndexRange(1, 20), deletes: []deletion{{1, 5}, {6, 10}, {18, 20}},
			first: 11, last: 17, held: inmemIndexRange(11, 17)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := NewInmemStore()
			if err := s.StoreLogs(inmemLogs(tc.stored...)); err != nil {
				t.Fatalf("StoreLogs: %v", err)
			}
			for _, d := range tc.deletes {
				if err := s.DeleteRange(d.min, d.max); err != nil {
					t.Fatalf("DeleteRange(%d, %d): %v", d.min, d.max, err)
				}
			}
			first, _ := s.FirstIndex()
			last, _ := s.LastIndex()
			if first != tc.first || last != tc.last {
				t.Errorf("FirstIndex, LastIndex = %d, %d; want %d, %d", first, last, tc.first, tc.last)
			}
			checkStoreHolds(t, s, tc.stored, tc.held)
		})
	}
}

// checkStoreHolds asserts that s holds exactly the indexes in held among those
// in candidates, each with its own entry.
func checkStoreHolds(t *testing.T, s LogStore, candidates, held []uint64) {
	t.Helper()
	want := make(map[uint64]bool)
	for _, idx := range held {
		want[idx] = true
	}
	for _, idx := range candidates {
		var l Log
		err := s.GetLog(idx, &l)
		switch {
		case want[idx] && err != nil:
			t.Errorf("GetLog(%d) = %v; want the entry", idx, err)
		case want[idx] && (l.Index != idx || !bytes.Equal(l.Data, []byte{byte(idx)})):
			t.Errorf("GetLog(%d) returned entry %d with data %v", idx, l.Index, l.Data)
		case !want[idx] && !errors.Is(err, ErrLogNotFound):
			t.Errorf("GetLog(%d) = %v; want ErrLogNotFound", idx, err)
		}
	}
}

// TestInmemStoreMatchesModel runs random stores and deletes against a plain
// map and checks that the bounds always equal the map's smallest and
// largest keys.
func TestInmemStoreMatchesModel(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	s := NewInmemStore()
	model := make(map[uint64]bool)
	for step := 0; step < 5000; step++ {
		a, b := rng.Uint64N(64), rng.Uint64N(64)
		if a > b {
			a, b = b, a
		}
		if rng.IntN(3) == 0 {
			if err := s.DeleteRange(a, b); err != nil {
				t.Fatal(err)
			}
			for i := a; i <= b; i++ {
				delete(model, i)
			}
		} else {
			idx := inmemIndexRange(a, a+rng.Uint64N(4))
			if err := s.StoreLogs(inmemLogs(idx...)); err != nil {
				t.Fatal(err)
			}
			for _, i := range idx {
				model[i] = true
			}
		}
		var wantFirst, wantLast uint64
		keys := make([]uint64, 0, len(model))
		for k := range model {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
		if len(keys) > 0 {
			wantFirst, wantLast = keys[0], keys[len(keys)-1]
		}
		first, _ := s.FirstIndex()
		last, _ := s.LastIndex()
		if first != wantFirst || last != wantLast {
			t.Fatalf("seed %d step %d: bounds %d..%d, want %d..%d", seed, step, first, last, wantFirst, wantLast)
		}
	}
	checkStoreHolds(t, s, inmemIndexRange(0, 70), func() []uint64 {
		var held []uint64
		for k := range model {
			held = append(held, k)
		}
		return held
	}())
}

func TestInmemStoreGetLogMissing(t *testing.T) {
	s := NewInmemStore()
	var l Log
	if err := s.GetLog(1, &l); err != ErrLogNotFound {
		t.Fatalf("GetLog on empty store = %v; want ErrLogNotFound", err)
	}
	if err := s.GetLog(1, nil); err == nil {
		t.Fatal("GetLog into a nil Log succeeded")
	}
}

func TestInmemStoreStoreLogsIsAllOrNothing(t *testing.T) {
	s := NewInmemStore()
	logs := inmemLogs(1, 2, 3)
	logs[1] = nil
	err := s.StoreLogs(logs)
	if err == nil || err.Error() != "StoreLogs: entry 1 of 3 is nil" {
		t.Fatalf("StoreLogs with a nil entry = %v", err)
	}
	if last, _ := s.LastIndex(); last != 0 {
		t.Fatalf("LastIndex after a failed StoreLogs = %d; want 0", last)
	}
	checkStoreHolds(t, s, []uint64{1, 2, 3}, nil)
	if err := s.StoreLogs(nil); err != nil {
		t.Fatalf("StoreLogs(nil) = %v", err)
	}
}

func TestInmemStoreOwnership(t *testing.T) {
	s := NewInmemStore()
	l := &Log{Index: 7, Term: 2, Data: []byte("x")}
	if err := s.StoreLog(l); err != nil {
		t.Fatal(err)
	}
	// The caller may reuse the struct: the store kept a copy.
	l.Index, l.Term = 8, 3
	var got Log
	if err := s.GetLog(7, &got); err != nil || got.Index != 7 || got.Term != 2 {
		t.Fatalf("GetLog(7) = %+v, %v; want the entry as stored", got, err)
	}
	// GetLog fills the caller's struct; changing it does not reach the store.
	got.Term = 99
	var again Log
	_ = s.GetLog(7, &again)
	if again.Term != 2 {
		t.Fatalf("store changed through a GetLog result: term %d", again.Term)
	}
}

func TestInmemStoreStable(t *testing.T) {
	s := NewInmemStore()

	_, err := s.Get([]byte("missing"))
	if err == nil || err.Error() != "not found" {
		t.Fatalf("Get of a missing key = %v; want the error \"not found\"", err)
	}
	if !isNotFound(err) {
		t.Fatal("isNotFound does not recognise Get's miss")
	}
	if v, err := s.GetUint64([]byte("missing")); v != 0 || err != nil {
		t.Fatalf("GetUint64 of a missing key = %d, %v; want 0, nil", v, err)
	}

	val := []byte("addr:1")
	if err := s.Set(keyLastVoteCand, val); err != nil {
		t.Fatal(err)
	}
	val[0] = 'X' // the store kept its own copy
	got, err := s.Get(keyLastVoteCand)
	if err != nil || string(got) != "addr:1" {
		t.Fatalf("Get = %q, %v; want \"addr:1\"", got, err)
	}
	got[0] = 'Y' // and handed out another
	if again, _ := s.Get(keyLastVoteCand); string(again) != "addr:1" {
		t.Fatalf("store changed through a Get result: %q", again)
	}

	if err := s.Set([]byte("empty"), nil); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get([]byte("empty")); err != nil || len(got) != 0 {
		t.Fatalf("Get of a key set to nothing = %q, %v; want an empty value", got, err)
	}

	if err := s.SetUint64(keyCurrentTerm, 42); err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetUint64(keyCurrentTerm); v != 42 || err != nil {
		t.Fatalf("GetUint64 = %d, %v; want 42", v, err)
	}
	// Set and SetUint64 are separate namespaces.
	if _, err := s.Get(keyCurrentTerm); err == nil {
		t.Fatal("Get sees a value stored with SetUint64")
	}
}

func TestInmemStoreZeroValue(t *testing.T) {
	var s InmemStore
	if err := s.StoreLogs(inmemLogs(1, 2)); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("k"), 1); err != nil {
		t.Fatal(err)
	}
	checkStoreHolds(t, &s, []uint64{1, 2, 3}, []uint64{1, 2})
}

func TestInmemCommitTrackingStore(t *testing.T) {
	var _ CommitTrackingLogStore = NewInmemCommitTrackingStore()
	s := NewInmemCommitTrackingStore()
	if idx, err := s.GetCommitIndex(); idx != 0 || err != nil {
		t.Fatalf("GetCommitIndex of a new store = %d, %v; want 0, nil", idx, err)
	}
	if err := s.StageCommitIndex(12); err != nil {
		t.Fatal(err)
	}
	if idx, _ := s.GetCommitIndex(); idx != 12 {
		t.Fatalf("GetCommitIndex = %d; want 12", idx)
	}
	if err := s.StoreLogs(inmemLogs(1, 2)); err != nil {
		t.Fatal(err)
	}
	checkStoreHolds(t, s, []uint64{1, 2}, []uint64{1, 2})
}

// TestInmemStoreConcurrentReaders has readers check, while one writer
// appends and compacts, that every entry they get is the one they asked for
// and that the bounds never cross.
func TestInmemStoreConcurrentReaders(t *testing.T) {
	s := NewInmemStore()
	const total = 2000
	var wg sync.WaitGroup
	done := make(chan struct{})
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				first, _ := s.FirstIndex()
				last, _ := s.LastIndex()
				if first > last {
					t.Errorf("FirstIndex %d > LastIndex %d", first, last)
					return
				}
				for idx := first; idx <= last && idx < first+8; idx++ {
					var l Log
					if err := s.GetLog(idx, &l); err == nil && l.Index != idx {
						t.Errorf("GetLog(%d) returned entry %d", idx, l.Index)
						return
					}
				}
				_, _ = s.GetUint64(keyCurrentTerm)
			}
		}()
	}
	for idx := uint64(1); idx <= total; idx++ {
		if err := s.StoreLog(&Log{Index: idx, Term: 1}); err != nil {
			t.Error(err)
		}
		_ = s.SetUint64(keyCurrentTerm, idx)
		if idx%100 == 0 {
			_ = s.DeleteRange(idx-99, idx-50)
		}
	}
	close(done)
	wg.Wait()
}

// TestInmemStoreSliceAndMapForms runs random stores and deletes, near and far
// apart (so that the store moves between its slice and map forms), against
// a plain map, and compares every index and both bounds after each step.
func TestInmemStoreSliceAndMapForms(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for round := 0; round < 200; round++ {
		s := NewInmemStore()
		model := map[uint64]uint64{}
		origin := uint64(rng.IntN(3)) * (1 << 40)
		idx := func() uint64 {
			switch rng.IntN(10) {
			case 0:
				return origin + uint64(rng.Int64N(1<<20))
			case 1:
				return math.MaxUint64 - uint64(rng.IntN(4))
			default:
				return origin + uint64(rng.IntN(300))
			}
		}
		for step := 0; step < 60; step++ {
			if rng.IntN(3) > 0 {
				first, n := idx(), 1+rng.IntN(20)
				var batch []*Log
				for k := 0; k < n && first+uint64(k) >= first; k++ {
					l := &Log{Index: first + uint64(k), Term: uint64(step)}
					batch = append(batch, l)
					model[l.Index] = l.Term
				}
				if err := s.StoreLogs(batch); err != nil {
					t.Fatal(err)
				}
			} else {
				lo := idx()
				hi := lo + uint64(rng.IntN(100))
				if rng.IntN(10) == 0 {
					lo, hi = 0, math.MaxUint64
				}
				if hi < lo {
					hi = math.MaxUint64
				}
				if err := s.DeleteRange(lo, hi); err != nil {
					t.Fatal(err)
				}
				for k := range model {
					if k >= lo && k <= hi {
						delete(model, k)
					}
				}
			}
			var wantFirst, wantLast uint64
			seen := false
			for k := range model {
				if !seen || k < wantFirst {
					wantFirst = k
				}
				if !seen || k > wantLast {
					wantLast = k
				}
				seen = true
			}
			checkSeqWindow(t, s)
			first, _ := s.FirstIndex()
			last, _ := s.LastIndex()
			if first != wantFirst || last != wantLast {
				t.Fatalf("round %d step %d: bounds %d-%d, want %d-%d", round, step, first, last, wantFirst, wantLast)
			}
			for k, term := range model {
				var l Log
				if err := s.GetLog(k, &l); err != nil || l.Term != term || l.Index != k {
					t.Fatalf("round %d step %d: GetLog(%d) = %+v, %v; want term %d", round, step, k, l, err, term)
				}
			}
			for n := 0; n < 20; n++ {
				k := idx()
				if _, ok := model[k]; ok {
					continue
				}
				var l Log
				if err := s.GetLog(k, &l); err != ErrLogNotFound {
					t.Fatalf("round %d step %d: GetLog(%d) of an absent index = %v", round, step, k, err)
				}
			}
		}
	}
}

// checkSeqWindow checks that seq is a window of seqBuf and that every slot
// of seqBuf outside it is nil, so that the store pins no dropped entry.
func checkSeqWindow(t *testing.T, s *InmemStore) {
	t.Helper()
	if s.logs != nil {
		if s.seq != nil || s.seqBuf != nil {
			t.Fatalf("map form keeps a slice: len %d, array %d", len(s.seq), len(s.seqBuf))
		}
		return
	}
	if cap(s.seq) == 0 {
		return
	}
	off := cap(s.seqBuf) - cap(s.seq)
	if off < 0 || &s.seqBuf[:cap(s.seqBuf)][cap(s.seqBuf)-1] != &s.seq[:cap(s.seq)][cap(s.seq)-1] {
		t.Fatal("seq is not a window of seqBuf")
	}
	for k, e := range s.seqBuf[:cap(s.seqBuf)] {
		if (k < off || k >= off+len(s.seq)) && e != nil {
			t.Fatalf("slot %d outside the window [%d, %d) still holds entry %d", k, off, off+len(s.seq), e.Index)
		}
	}
}

func TestInmemStoreSlidingLogKeepsItsArray(t *testing.T) {
	s := NewInmemStore()
	next := uint64(1)
	var arr **Log
	arrCap := 0
	for round := 0; round < 2000; round++ {
		batch := inmemIndexRange(next, next+9)
		if err := s.StoreLogs(inmemLogs(batch...)); err != nil {
			t.Fatal(err)
		}
		next += 10
		// Keep the last 100 to 150 entries, as compaction would.
		if first, _ := s.FirstIndex(); next-first > 150 {
			if err := s.DeleteRange(first, next-101); err != nil {
				t.Fatal(err)
			}
		}
		checkSeqWindow(t, s)
		if round == 100 {
			arr, arrCap = &s.seqBuf[:1][0], cap(s.seqBuf)
		}
		if round > 100 && (&s.seqBuf[:1][0] != arr || cap(s.seqBuf) != arrCap) {
			t.Fatalf("round %d: the log moved to a new array of %d slots (was %d)", round, cap(s.seqBuf), arrCap)
		}
	}
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	checkStoreHolds(t, s, inmemIndexRange(first-20, last+5), inmemIndexRange(first, last))
}

// BenchmarkInmemStoreSliding stores batches of 32 entries into a log whose
// head is compacted the way DefaultConfig's snapshots would (keep 10240
// entries once 8192 more have arrived), the pattern of a busy node.
func BenchmarkInmemStoreSliding(b *testing.B) {
	s := NewInmemStore()
	batch := make([]*Log, 32)
	for k := range batch {
		batch[k] = &Log{Term: 1, Type: LogCommand, Data: make([]byte, 256)}
	}
	next := uint64(1)
	b.ReportAllocs()
	for b.Loop() {
		for k, l := range batch {
			l.Index = next + uint64(k)
		}
		if err := s.StoreLogs(batch); err != nil {
			b.Fatal(err)
		}
		next += uint64(len(batch))
		if first, _ := s.FirstIndex(); next-first > 10240+8192 {
			if err := s.DeleteRange(first, next-10241); err != nil {
				b.Fatal(err)
			}
		}
	}
}
