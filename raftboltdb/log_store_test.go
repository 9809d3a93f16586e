package raftboltdb

import (
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quorumkit/raft"
	"go.etcd.io/bbolt"
)

func TestEmptyLog(t *testing.T) {
	s := openTestStore(t)
	checkRange(t, s, 1, 0, nil)
	var l raft.Log
	if err := s.GetLog(1, &l); err != raft.ErrLogNotFound {
		t.Fatalf("GetLog on an empty log = %v; want raft.ErrLogNotFound itself", err)
	}
}

func TestStoreLogsRoundTrip(t *testing.T) {
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	entries := []*raft.Log{
		{Index: 1, Term: 1, Type: raft.LogConfiguration, Data: []byte("cfg")},
		{Index: 2, Term: 1, Type: raft.LogNoop},                                          // nil Data and Extensions
		{Index: 3, Term: 2, Type: raft.LogCommand, Data: []byte{}, Extensions: []byte{}}, // empty, not nil
		{Index: 4, Term: 2, Data: []byte("x"), Extensions: []byte("meta"), AppendedAt: time.Date(2024, 2, 24, 18, 1, 57, 6, time.UTC)},
		{Index: 5, Term: 3, Type: raft.LogBarrier, AppendedAt: time.Date(2031, 7, 1, 2, 3, 4, 999_999_999, zone)},
		{Index: 6, Term: 3, Type: raft.LogType(9), Data: make([]byte, 70_000)}, // larger than a page
	}
	for _, newTime := range []bool{false, true} {
		t.Run(map[bool]string{false: "legacy time", true: "new time"}[newTime], func(t *testing.T) {
			s := openStoreAt(t, t.TempDir()+"/raft.db", Options{MsgpackUseNewTimeFormat: newTime})
			mustStore(t, s, entries[:3])
			for _, l := range entries[3:] {
				if err := s.StoreLog(l); err != nil {
					t.Fatalf("StoreLog(%d): %v", l.Index, err)
				}
			}
			checkRange(t, s, 1, 6, func(i uint64) *raft.Log { return entries[i-1] })
		})
	}
}

// The bytes of a stored entry are those raft-boltdb writes (the same
// encoding as the wire's, see TestWire_LogEntryMatchesStoreFormat).
func TestStoredEntryBytes(t *testing.T) {
	var at time.Time
	if err := at.UnmarshalBinary(mustHex(t, "010000000edd25742500000006ffff")); err != nil {
		t.Fatal(err)
	}
	want := "86aa417070656e6465644174af010000000edd25742500000006ffffa444617461a26869aa457874656e73696f6e73c0a5496e64657805a45465726d02a45479706500"
	s := openTestStore(t)
	mustStore(t, s, []*raft.Log{{Index: 5, Term: 2, Type: raft.LogCommand, Data: []byte("hi"), AppendedAt: at}})
	if got := hex.EncodeToString(rawValue(t, s, bucketLogs, []byte{0, 0, 0, 0, 0, 0, 0, 5})); got != want {
		t.Fatalf("stored bytes:\n got %s\nwant %s", got, want)
	}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawValue reads a value straight from bbolt.
func rawValue(t testing.TB, s *BoltStore, bucket, key []byte) []byte {
	t.Helper()
	var v []byte
	if err := s.db.View(func(tx *bbolt.Tx) error {
		v = append([]byte(nil), tx.Bucket(bucket).Get(key)...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// putRaw writes a value straight into bbolt, bypassing the store.
func putRaw(t testing.TB, s *BoltStore, bucket, key, val []byte) {
	t.Helper()
	if err := s.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucket).Put(key, val) }); err != nil {
		t.Fatal(err)
	}
}

func TestStoreLogsReplacesEntries(t *testing.T) {
	s := openTestStore(t)
	mustStore(t, s, makeLogs(1, 10, 50))
	replaced := makeLogs(5, 3, 80)
	for _, l := range replaced {
		l.Term = 99
	}
	mustStore(t, s, replaced)
	orig := makeLogs(1, 10, 50)
	checkRange(t, s, 1, 10, func(i uint64) *raft.Log {
		if i >= 5 && i <= 7 {
			return replaced[i-5]
		}
		return orig[i-1]
	})
}

// A batch with a nil entry is refused before anything is written.
func TestStoreLogsRefusesNilEntry(t *testing.T) {
	s := openTestStore(t)
	batch := makeLogs(1, 5, 10)
	batch[3] = nil
	if err := s.StoreLogs(batch); err == nil || !strings.Contains(err.Error(), "nil") {
		t.Fatalf("StoreLogs with a nil entry = %v; want an error about it", err)
	}
	checkRange(t, s, 1, 0, nil)
	if err := s.StoreLogs(nil); err != nil {
		t.Fatalf("StoreLogs(nil) = %v", err)
	}
}

// GetLog fills the caller's Log afresh: no field survives from before, and
// nothing in it shares memory with the store.
func TestGetLogResetsAndDetaches(t *testing.T) {
	path := t.TempDir() + "/raft.db"
	s, err := New(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	mustStore(t, s, []*raft.Log{{Index: 1, Term: 1, Data: []byte("one")}})
	old := make([]byte, 64)
	l := raft.Log{Data: old, Extensions: []byte("stale"), AppendedAt: time.Now()}
	if err := s.GetLog(1, &l); err != nil {
		t.Fatal(err)
	}
	if l.Extensions != nil || !l.AppendedAt.IsZero() {
		t.Fatalf("GetLog kept fields of the Log it was given: %+v", l)
	}
	if &l.Data[0] == &old[0] {
		t.Fatalf("GetLog decoded into the caller's old Data buffer")
	}
	// After Close the file is unmapped: reading a slice that pointed into
	// the map would fault and crash the test.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if string(l.Data) != "one" {
		t.Fatalf("Data after Close = %q", l.Data)
	}
}

func TestGetLogUndecodableEntry(t *testing.T) {
	s := openTestStore(t)
	mustStore(t, s, makeLogs(1, 3, 10))
	putRaw(t, s, bucketLogs, []byte{0, 0, 0, 0, 0, 0, 0, 2}, []byte{0x86, 0xaa, 'A', 'p', 'p'}) // cut short
	putRaw(t, s, bucketLogs, []byte{0, 0, 0, 0, 0, 0, 0, 3}, encodeForTest(t, &raft.Log{Index: 7}))
	var l raft.Log
	for _, index := range []uint64{2, 3} {
		err := s.GetLog(index, &l)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "entry") {
			t.Fatalf("GetLog(%d) of a bad entry = %v; want an error wrapping ErrCorrupt", index, err)
		}
		t.Logf("GetLog(%d): %v", index, err)
	}
	// A bad entry is a plain error: the store carries on.
	if err := s.GetLog(1, &l); err != nil {
		t.Fatalf("GetLog(1) after a bad entry: %v", err)
	}
}

func encodeForTest(t testing.TB, l *raft.Log) []byte {
	t.Helper()
	b, err := encodeBatch([]*raft.Log{l}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer b.release()
	_, v := b.entry(0)
	return append([]byte(nil), v...)
}

func TestDeleteRange(t *testing.T) {
	tests := []struct {
		name       string
		min, max   uint64
		first, end uint64 // what is left: first..end, or nothing if end < first
		gap        [2]uint64
	}{
		{name: "prefix", min: 1, max: 40, first: 41, end: 100},
		{name: "suffix", min: 61, max: 100, first: 1, end: 60},
		{name: "all", min: 1, max: 100, first: 1, end: 0},
		{name: "beyond both ends", min: 0, max: 1 << 63, first: 1, end: 0},
		{name: "one", min: 1, max: 1, first: 2, end: 100},
		{name: "empty range", min: 50, max: 49, first: 1, end: 100},
		{name: "past the end", min: 101, max: 200, first: 1, end: 100},
		{name: "middle", min: 30, max: 70, first: 1, end: 100, gap: [2]uint64{30, 70}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTestStore(t)
			logs := makeLogs(1, 100, 300) // several leaf pages
			mustStore(t, s, logs)
			if err := s.DeleteRange(tt.min, tt.max); err != nil {
				t.Fatal(err)
			}
			if tt.gap[0] == 0 {
				checkRange(t, s, tt.first, tt.end, func(i uint64) *raft.Log { return logs[i-1] })
				return
			}
			var l raft.Log
			for i := uint64(1); i <= 100; i++ {
				err := s.GetLog(i, &l)
				if inGap := i >= tt.gap[0] && i <= tt.gap[1]; inGap != (err == raft.ErrLogNotFound) {
					t.Fatalf("GetLog(%d) = %v (gap %v)", i, err, tt.gap)
				}
			}
		})
	}
}

// Random stores and deletes agree with a map, across many pages and
// reopens.
func TestLogMatchesModel(t *testing.T) {
	path := t.TempDir() + "/raft.db"
	rng := rand.New(rand.NewPCG(1, 2))
	model := map[uint64]*raft.Log{}
	var next uint64 = 1
	s := openStoreAt(t, path, Options{NoSync: true})
	for round := 0; round < 300; round++ {
		switch op := rng.IntN(10); {
		case op < 6: // append
			n := 1 + rng.IntN(64)
			logs := makeLogs(next, n, rng.IntN(600))
			mustStore(t, s, logs)
			for _, l := range logs {
				model[l.Index] = l
			}
			next += uint64(n)
		case op < 8: // compact a prefix
			first, _ := s.FirstIndex()
			hi := first + uint64(rng.IntN(100))
			if err := s.DeleteRange(first, hi); err != nil {
				t.Fatal(err)
			}
			for i := first; i <= hi; i++ {
				delete(model, i)
			}
		case op < 9: // truncate a suffix, as a follower does on conflict
			last, _ := s.LastIndex()
			lo := last - min(last, uint64(rng.IntN(20)))
			if err := s.DeleteRange(lo, last); err != nil {
				t.Fatal(err)
			}
			for i := lo; i <= last; i++ {
				delete(model, i)
			}
			next = max(lo, 1)
			if len(model) == 0 {
				next = last + 1
			}
		default:
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openStoreAt(t, path, Options{NoSync: true})
		}
		first, last := uint64(0), uint64(0)
		for i := range model {
			if first == 0 || i < first {
				first = i
			}
			last = max(last, i)
		}
		if first != 0 && uint64(len(model)) != last-first+1 {
			t.Fatalf("round %d: the model has a gap: %d entries in %d..%d", round, len(model), first, last)
		}
		checkRange(t, s, max(first, 1), last, func(i uint64) *raft.Log { return model[i] })
	}
}

func TestConcurrentReadersAndWriter(t *testing.T) {
	s := openStoreAt(t, t.TempDir()+"/raft.db", Options{NoSync: true})
	mustStore(t, s, makeLogs(1, 10, 100))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var l raft.Log
			for {
				select {
				case <-stop:
					return
				default:
				}
				first, err := s.FirstIndex()
				if err == nil {
					err = s.GetLog(first, &l)
				}
				if err != nil && err != raft.ErrLogNotFound { // compaction may win the race
					errs <- err
					return
				}
			}
		}()
	}
	for i := uint64(11); i < 400; i += 10 {
		mustStore(t, s, makeLogs(i, 10, 100))
		if err := s.DeleteRange(i-10, i-6); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("reader: %v", err)
	}
}
