package interop

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
	refbolt "github.com/hashicorp/raft-boltdb/v2"
	"github.com/quorumkit/raft"
	ourbolt "github.com/quorumkit/raft/raftboltdb"
	"go.etcd.io/bbolt"
)

// The tests here check that raftboltdb reads and writes the files of
// HashiCorp's raft-boltdb/v2 v2.3.0: each library reads what the other
// wrote, entry for entry, both stores encode an entry to the same bytes,
// and an application can switch libraries on a data directory and back.

const (
	refBoltPath = "github.com/hashicorp/raft-boltdb/v2"
	ourBoltPath = "github.com/quorumkit/raft/raftboltdb"
)

// A program using raft-boltdb/v2 compiles against raftboltdb after
// changing its import path, except for MigrateToV2 (left out on purpose:
// it needs the old boltdb package).
func TestBoltStoreAPIMatchesReference(t *testing.T) {
	ref := loadAPI(t, refBoltPath)
	ours := loadAPI(t, ourBoltPath)
	var keys []string
	for k := range ref {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "MigrateToV2" {
			continue
		}
		got, ok := ours[k]
		switch {
		case !ok:
			t.Errorf("missing %s: reference has %s", k, ref[k])
		case strings.HasSuffix(k, " fields") && strings.HasPrefix(got, ref[k]+"; "):
			// Fields appended after the reference's (Options.Logger) keep
			// keyed composite literals and field access compiling.
		case got != ref[k]:
			t.Errorf("%s differs:\n  reference: %s\n  ours:      %s", k, ref[k], got)
		}
	}
	if _, ok := ours["BoltStore.IsMonotonic"]; ok {
		t.Errorf("BoltStore implements MonotonicLogStore; raft-boltdb's does not")
	}
	t.Logf("%d exported names, fields and methods checked", len(keys)-1)
}

// compatLogs returns entries first..first+n-1 covering the shapes raft
// writes: every type, nil and empty Data and Extensions, payloads from
// empty to several pages, AppendedAt zero, in UTC, in fixed zones, and
// derived from now, which the caller takes from time.Now (so it has a
// monotonic reading, which is not stored).
func compatLogs(rng *rand.Rand, now time.Time, first uint64, n int) []*hraft.Log {
	logs := make([]*hraft.Log, n)
	for i := range logs {
		index := first + uint64(i)
		l := &hraft.Log{Index: index, Term: 1 + index/50, Type: hraft.LogType(rng.IntN(6))}
		switch rng.IntN(6) {
		case 0:
		case 1:
			l.Data = []byte{}
		case 2:
			l.Data = make([]byte, 3000+rng.IntN(12000))
		default:
			l.Data = make([]byte, rng.IntN(300))
		}
		for j := range l.Data {
			l.Data[j] = byte(rng.Uint32())
		}
		switch rng.IntN(4) {
		case 0:
			l.Extensions = []byte(fmt.Sprintf("ext-%d", index))
		case 1:
			l.Extensions = []byte{}
		}
		switch rng.IntN(4) {
		case 0:
		case 1:
			l.AppendedAt = now.Add(time.Duration(index) * time.Millisecond)
		case 2:
			l.AppendedAt = time.Unix(1_700_000_000+int64(index), rng.Int64N(1e9)).UTC()
		default:
			l.AppendedAt = time.Unix(1_700_000_000, int64(index)).In(time.FixedZone("", (rng.IntN(25)-12)*3600))
		}
		logs[i] = l
	}
	return logs
}

func toOurLog(l *hraft.Log) *raft.Log {
	return &raft.Log{Index: l.Index, Term: l.Term, Type: raft.LogType(l.Type), Data: l.Data, Extensions: l.Extensions, AppendedAt: l.AppendedAt}
}

func toRefLog(l *raft.Log) *hraft.Log {
	return &hraft.Log{Index: l.Index, Term: l.Term, Type: hraft.LogType(l.Type), Data: l.Data, Extensions: l.Extensions, AppendedAt: l.AppendedAt}
}

// sameEntry says how a stored and read back entry differs from the one
// given, or "" if it does not. What the format keeps must come back:
// nil-ness of the byte slices, and the instant of the time, with its zone
// offset in the legacy time format (msgpack's timestamp extension keeps
// the instant only; neither keeps the monotonic reading or zone name).
func sameEntry(got, want *hraft.Log, newTime bool) string {
	g, w := *got, *want
	if !g.AppendedAt.Equal(w.AppendedAt) {
		return fmt.Sprintf("AppendedAt %v, want %v", g.AppendedAt, w.AppendedAt)
	}
	_, gOff := g.AppendedAt.Zone()
	_, wOff := w.AppendedAt.Zone()
	if gOff != wOff && !newTime {
		return fmt.Sprintf("AppendedAt zone offset %d, want %d", gOff, wOff)
	}
	g.AppendedAt, w.AppendedAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(g, w) {
		return fmt.Sprintf("%+v, want %+v", g, w)
	}
	return ""
}

// logStore is what both libraries' stores provide, in hashicorp/raft's
// types.
type logStore interface {
	hraft.LogStore
	hraft.StableStore
	Close() error
}

// ourStore adapts raftboltdb to hashicorp/raft's types.
type ourStore struct{ *ourbolt.BoltStore }

func (s ourStore) GetLog(index uint64, l *hraft.Log) error {
	var ol raft.Log
	if err := s.BoltStore.GetLog(index, &ol); err != nil {
		return err
	}
	*l = *toRefLog(&ol)
	return nil
}
func (s ourStore) StoreLog(l *hraft.Log) error { return s.StoreLogs([]*hraft.Log{l}) }
func (s ourStore) StoreLogs(logs []*hraft.Log) error {
	ours := make([]*raft.Log, len(logs))
	for i, l := range logs {
		ours[i] = toOurLog(l)
	}
	return s.BoltStore.StoreLogs(ours)
}

func openOurs(t testing.TB, path string, newTime bool) logStore {
	t.Helper()
	s, err := ourbolt.New(ourbolt.Options{Path: path, MsgpackUseNewTimeFormat: newTime})
	if err != nil {
		t.Fatalf("raftboltdb.New: %v", err)
	}
	return ourStore{s}
}

func openRef(t testing.TB, path string, newTime bool) logStore {
	t.Helper()
	s, err := refbolt.New(refbolt.Options{Path: path, MsgpackUseNewTimeFormat: newTime,
		BoltOptions: &bbolt.Options{Timeout: 5 * time.Second}})
	if err != nil {
		t.Fatalf("raft-boltdb New: %v", err)
	}
	return s
}

type opener func(t testing.TB, path string, newTime bool) logStore

// writeHistory stores entries 1..n in random batches, compacts the first
// tenth, and sets the stable keys raft writes. It returns what the store
// must now hold.
func writeHistory(t *testing.T, s logStore, seed uint64, now time.Time, n int) map[uint64]*hraft.Log {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	want := map[uint64]*hraft.Log{}
	for next := uint64(1); next <= uint64(n); {
		batch := compatLogs(rng, now, next, min(1+rng.IntN(40), n-int(next)+1))
		if err := s.StoreLogs(batch); err != nil {
			t.Fatal(err)
		}
		for _, l := range batch {
			want[l.Index] = l
		}
		next += uint64(len(batch))
	}
	if err := s.DeleteRange(1, uint64(n/10)); err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= uint64(n/10); i++ {
		delete(want, i)
	}
	setStable(t, s, 12, "10.0.0.7:8300")
	return want
}

func setStable(t *testing.T, s logStore, term uint64, cand string) {
	t.Helper()
	if err := s.SetUint64([]byte("CurrentTerm"), term); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("LastVoteTerm"), term-1); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte(cand)); err != nil {
		t.Fatal(err)
	}
}

// checkHolds checks that s holds exactly want and the given stable values.
func checkHolds(t *testing.T, who string, s logStore, newTime bool, want map[uint64]*hraft.Log, term uint64, cand string) {
	t.Helper()
	first, last := uint64(0), uint64(0)
	for i := range want {
		if first == 0 || i < first {
			first = i
		}
		last = max(last, i)
	}
	gotFirst, err1 := s.FirstIndex()
	gotLast, err2 := s.LastIndex()
	if gotFirst != first || gotLast != last || err1 != nil || err2 != nil {
		t.Fatalf("%s: FirstIndex, LastIndex = %d, %d (%v, %v); want %d, %d", who, gotFirst, gotLast, err1, err2, first, last)
	}
	for i := first; i <= last; i++ {
		var got hraft.Log
		if err := s.GetLog(i, &got); err != nil {
			t.Fatalf("%s: GetLog(%d): %v", who, i, err)
		}
		if diff := sameEntry(&got, want[i], newTime); diff != "" {
			t.Fatalf("%s: entry %d: %s", who, i, diff)
		}
	}
	var l hraft.Log
	if err := s.GetLog(last+1, &l); err == nil || err.Error() != hraft.ErrLogNotFound.Error() {
		t.Fatalf("%s: GetLog past the end = %v", who, err)
	}
	if got, err := s.GetUint64([]byte("CurrentTerm")); got != term || err != nil {
		t.Fatalf("%s: CurrentTerm = %d, %v; want %d", who, got, err, term)
	}
	if got, err := s.GetUint64([]byte("LastVoteTerm")); got != term-1 || err != nil {
		t.Fatalf("%s: LastVoteTerm = %d, %v; want %d", who, got, err, term-1)
	}
	if got, err := s.Get([]byte("LastVoteCand")); string(got) != cand || err != nil {
		t.Fatalf("%s: LastVoteCand = %q, %v; want %q", who, got, err, cand)
	}
	if _, err := s.Get([]byte("missing")); err == nil || err.Error() != "not found" {
		t.Fatalf("%s: Get(missing) = %v; want \"not found\"", who, err)
	}
}

var timeFormats = []struct {
	name    string
	newTime bool
}{{"legacy time", false}, {"new time", true}}

// Each library reads what the other wrote, entry for entry, and both read
// the same entries from one file.
func TestBoltDBFilesReadAcross(t *testing.T) {
	for _, tf := range timeFormats {
		for _, dir := range []struct {
			name           string
			writer, reader opener
		}{
			{"raft-boltdb writes, raftboltdb reads", openRef, openOurs},
			{"raftboltdb writes, raft-boltdb reads", openOurs, openRef},
		} {
			t.Run(tf.name+"/"+dir.name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "raft.db")
				w := dir.writer(t, path, tf.newTime)
				want := writeHistory(t, w, 7, time.Now(), 600)
				w.Close()

				r := dir.reader(t, path, tf.newTime)
				checkHolds(t, "reader", r, tf.newTime, want, 12, "10.0.0.7:8300")
				first, _ := r.FirstIndex()
				last, _ := r.LastIndex()
				read := readAll(t, r, first, last)
				r.Close()

				// The writer reads the same entries, field for field.
				w = dir.writer(t, path, tf.newTime)
				defer w.Close()
				if again := readAll(t, w, first, last); !reflect.DeepEqual(again, read) {
					t.Fatalf("the two libraries decode the file differently")
				}
			})
		}
	}
}

func readAll(t *testing.T, s logStore, first, last uint64) []hraft.Log {
	t.Helper()
	out := make([]hraft.Log, 0, last-first+1)
	for i := first; i <= last; i++ {
		var l hraft.Log
		if err := s.GetLog(i, &l); err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

// Given the same writes, both libraries store the same keys and the same
// value bytes.
func TestBoltDBSameBytes(t *testing.T) {
	for _, tf := range timeFormats {
		t.Run(tf.name, func(t *testing.T) {
			dir := t.TempDir()
			now := time.Now()
			for name, open := range map[string]opener{"ref.db": openRef, "ours.db": openOurs} {
				s := open(t, filepath.Join(dir, name), tf.newTime)
				writeHistory(t, s, 11, now, 300)
				s.Close()
			}
			ref, ours := rawContent(t, filepath.Join(dir, "ref.db")), rawContent(t, filepath.Join(dir, "ours.db"))
			if len(ref) != len(ours) {
				t.Fatalf("raft-boltdb stored %d keys, raftboltdb %d", len(ref), len(ours))
			}
			for k, v := range ref {
				if !bytes.Equal(ours[k], v) {
					t.Fatalf("%s: raft-boltdb stored %x, raftboltdb %x", k, v, ours[k])
				}
			}
		})
	}
}

// rawContent returns every bucket/key -> value of a bolt file.
func rawContent(t *testing.T, path string) map[string][]byte {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string][]byte{}
	err = db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				out[fmt.Sprintf("%s/%x", name, k)] = append([]byte(nil), v...)
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// An application switches libraries on its data directory and back, each
// time carrying on where the other left off: appending, compacting,
// truncating a suffix and updating the stable keys.
func TestBoltDBSwitchLibraries(t *testing.T) {
	for _, tf := range timeFormats {
		t.Run(tf.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "raft.db")
			rng := rand.New(rand.NewPCG(5, 5))
			want := map[uint64]*hraft.Log{}
			var next uint64 = 1
			var first uint64 = 1
			libs := []struct {
				name string
				open opener
			}{{"raft-boltdb", openRef}, {"raftboltdb", openOurs}}
			for round := 0; round < 6; round++ {
				lib := libs[round%2]
				s := lib.open(t, path, tf.newTime)
				if round > 0 {
					checkHolds(t, lib.name, s, tf.newTime, want, uint64(10+round-1), fmt.Sprintf("10.0.0.%d:8300", round-1))
				}
				batch := compatLogs(rng, time.Now(), next, 80)
				if err := s.StoreLogs(batch); err != nil {
					t.Fatal(err)
				}
				for _, l := range batch {
					want[l.Index] = l
				}
				next += 80
				// Compact the oldest 30 and drop the newest 5.
				if err := s.DeleteRange(first, first+29); err != nil {
					t.Fatal(err)
				}
				for i := first; i < first+30; i++ {
					delete(want, i)
				}
				first += 30
				if err := s.DeleteRange(next-5, next-1); err != nil {
					t.Fatal(err)
				}
				for i := next - 5; i < next; i++ {
					delete(want, i)
				}
				next -= 5
				setStable(t, s, uint64(10+round), fmt.Sprintf("10.0.0.%d:8300", round))
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
			s := openOurs(t, path, tf.newTime)
			defer s.Close()
			checkHolds(t, "raftboltdb at the end", s, tf.newTime, want, 15, "10.0.0.5:8300")
		})
	}
}

// Errors callers compare as text are the same.
func TestBoltDBErrorTexts(t *testing.T) {
	if ourbolt.ErrKeyNotFound.Error() != refbolt.ErrKeyNotFound.Error() {
		t.Errorf("ErrKeyNotFound: %q, reference %q", ourbolt.ErrKeyNotFound, refbolt.ErrKeyNotFound)
	}
	if raft.ErrLogNotFound.Error() != hraft.ErrLogNotFound.Error() {
		t.Errorf("ErrLogNotFound: %q, reference %q", raft.ErrLogNotFound, hraft.ErrLogNotFound)
	}
}
