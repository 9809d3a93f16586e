package interop

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	refwal "github.com/hashicorp/raft-wal"
	refmeta "github.com/hashicorp/raft-wal/metadb"
	"github.com/quorumkit/raft"
	"github.com/quorumkit/raft/wal"
)

var writeWALFixture = flag.Bool("wal.write-fixture", false,
	"rewrite ../wal/testdata/raft-wal-v0.4.0 with raft-wal v0.4.0 (TestWALWriteFixture)")

// walFixtureLog is the entry the fixture holds at index in term. The main
// module's wal/fixture_test.go computes the same entries.
func walFixtureLog(index, term uint64) *hraft.Log {
	data := make([]byte, 20+index*37%180)
	for j := range data {
		data[j] = byte(index*7 + uint64(j)*13 + term)
	}
	l := &hraft.Log{Index: index, Term: term, Type: hraft.LogType(index % 6), Data: data}
	if index%4 == 0 {
		l.Extensions = []byte{byte(index), byte(term), 0xee}
	}
	if index%10 != 0 {
		l.AppendedAt = time.Unix(1_650_000_000+int64(index), int64(term)*1000).UTC()
	}
	return l
}

func walFixtureBatch(from, to, term uint64) []*hraft.Log {
	var logs []*hraft.Log
	for i := from; i <= to; i++ {
		logs = append(logs, walFixtureLog(i, term))
	}
	return logs
}

// openRefWAL opens raft-wal v0.4.0 on dir with a meta store the caller
// closes: raft-wal's Close leaves its own meta database open (and locked)
// for the life of the process.
func openRefWAL(t testing.TB, dir string, segmentSize int) (*refwal.WAL, func()) {
	t.Helper()
	meta := &refmeta.BoltMetaDB{}
	w, err := refwal.Open(dir, refwal.WithMetaStore(meta), refwal.WithSegmentSize(segmentSize),
		refwal.WithLogger(hclog.NewNullLogger()))
	if err != nil {
		meta.Close()
		t.Fatalf("raft-wal Open: %v", err)
	}
	return w, func() {
		if err := w.Close(); err != nil {
			t.Errorf("raft-wal Close: %v", err)
		}
		if err := meta.Close(); err != nil {
			t.Errorf("raft-wal meta Close: %v", err)
		}
	}
}

// writeRefFixture writes the fixture's history with raft-wal v0.4.0:
// 1..200 in term 1 in batches of 10 over 4 KiB segments (several sealed
// segments), a head truncation of 1..40 (whole segments dropped, then
// MinIndex above BaseIndex in the first one kept), a tail truncation of
// 191..200 (which v0.4.0 seals without an index frame), 191..230 in term
// 2, and raft's three stable keys.
func writeRefFixture(t testing.TB, dir string) {
	w, done := openRefWAL(t, dir, 4096)
	defer done()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := uint64(1); i <= 200; i += 10 {
		must(w.StoreLogs(walFixtureBatch(i, i+9, 1)))
	}
	must(w.DeleteRange(1, 40))
	must(w.DeleteRange(191, 200))
	for i := uint64(191); i <= 230; i += 8 {
		must(w.StoreLogs(walFixtureBatch(i, i+7, 2)))
	}
	must(w.SetUint64([]byte("CurrentTerm"), 2))
	must(w.SetUint64([]byte("LastVoteTerm"), 2))
	must(w.Set([]byte("LastVoteCand"), []byte("127.0.0.1:7002")))
}

func walFixtureTerm(i uint64) uint64 {
	if i > 190 {
		return 2
	}
	return 1
}

// TestWALWriteFixture rewrites the fixture the main module's wal tests
// read, when asked to with -wal.write-fixture.
func TestWALWriteFixture(t *testing.T) {
	if !*writeWALFixture {
		t.Skip("run with -wal.write-fixture to rewrite ../wal/testdata/raft-wal-v0.4.0")
	}
	dir := filepath.Join("..", "wal", "testdata", "raft-wal-v0.4.0")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeRefFixture(t, dir)
}

// walReader is the part of both libraries' WAL that reports bounds.
type walReader interface {
	FirstIndex() (uint64, error)
	LastIndex() (uint64, error)
}

func checkWALEntries(t *testing.T, who string, s walReader, get func(uint64) (*hraft.Log, error), first, last uint64, termOf func(uint64) uint64) {
	t.Helper()
	gotFirst, err1 := s.FirstIndex()
	gotLast, err2 := s.LastIndex()
	if err1 != nil || err2 != nil || gotFirst != first || gotLast != last {
		t.Fatalf("%s: log is %d..%d (%v, %v), want %d..%d", who, gotFirst, gotLast, err1, err2, first, last)
	}
	for i := first; i <= last; i++ {
		got, err := get(i)
		if err != nil {
			t.Fatalf("%s: GetLog(%d): %v", who, i, err)
		}
		if why := walEntryDiff(got, walFixtureLog(i, termOf(i))); why != "" {
			t.Fatalf("%s: entry %d: %s", who, i, why)
		}
	}
}

func walEntryDiff(got, want *hraft.Log) string {
	switch {
	case got.Index != want.Index || got.Term != want.Term || got.Type != want.Type:
		return fmt.Sprintf("index/term/type %d/%d/%d, want %d/%d/%d", got.Index, got.Term, got.Type, want.Index, want.Term, want.Type)
	case !bytes.Equal(got.Data, want.Data) || (got.Data == nil) != (want.Data == nil):
		return "Data differs"
	case !bytes.Equal(got.Extensions, want.Extensions) || (got.Extensions == nil) != (want.Extensions == nil):
		return "Extensions differ"
	case !got.AppendedAt.Equal(want.AppendedAt):
		return fmt.Sprintf("AppendedAt %v, want %v", got.AppendedAt, want.AppendedAt)
	}
	return ""
}

func ourGet(w *wal.WAL) func(uint64) (*hraft.Log, error) {
	return func(i uint64) (*hraft.Log, error) {
		var l raft.Log
		if err := w.GetLog(i, &l); err != nil {
			return nil, err
		}
		return toRefLog(&l), nil
	}
}

func refGet(w *refwal.WAL) func(uint64) (*hraft.Log, error) {
	return func(i uint64) (*hraft.Log, error) {
		var l hraft.Log
		if err := w.GetLog(i, &l); err != nil {
			return nil, err
		}
		return &l, nil
	}
}

func toOurLogs(logs []*hraft.Log) []*raft.Log {
	out := make([]*raft.Log, len(logs))
	for i, l := range logs {
		out[i] = toOurLog(l)
	}
	return out
}

func openOurWAL(t testing.TB, dir string, segmentSize int) *wal.WAL {
	t.Helper()
	w, err := wal.Open(dir, wal.WithSegmentSize(segmentSize), wal.WithLogger(hclog.NewNullLogger()))
	if err != nil {
		t.Fatalf("our Open: %v", err)
	}
	return w
}

// TestWALReadsReferenceDirectory: a directory raft-wal v0.4.0 wrote (the
// fixture's history) opens under ours, entry for entry with the stable
// values, and ours continues it.
func TestWALReadsReferenceDirectory(t *testing.T) {
	dir := t.TempDir()
	writeRefFixture(t, dir)
	w := openOurWAL(t, dir, 4096)
	checkWALEntries(t, "ours on raft-wal's files", w, ourGet(w), 41, 230, walFixtureTerm)
	for key, want := range map[string]uint64{"CurrentTerm": 2, "LastVoteTerm": 2} {
		if got, err := w.GetUint64([]byte(key)); err != nil || got != want {
			t.Errorf("%s = %d, %v; want %d", key, got, err, want)
		}
	}
	if got, err := w.Get([]byte("LastVoteCand")); err != nil || string(got) != "127.0.0.1:7002" {
		t.Errorf("LastVoteCand = %q, %v", got, err)
	}
	if err := w.StoreLogs(toOurLogs(walFixtureBatch(231, 260, 2))); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = openOurWAL(t, dir, 4096)
	defer w.Close()
	checkWALEntries(t, "ours reopened", w, ourGet(w), 41, 260, walFixtureTerm)
}

// TestWALReferenceTailTruncationDefect reproduces raft-wal v0.4.0's tail
// truncation defect (its upstream issue 31): after DeleteRange of a
// suffix and a restart, raft-wal cannot read the truncated segment, while
// ours reads the same directory entry for entry.
//
// What raft-wal leaves depends on when its background sealing of the full
// segment runs (the append that filled it has returned by then):
//   - not before Close: every read of the truncated segment fails after the
//     restart ("sealed segment has no index block");
//   - after the truncation: its Open refuses the directory ("unsealed
//     segment is not at tail"), about one run in twelve; ours repairs the
//     segment list (wal/repair.go);
//   - before the truncation (rare, under load): no defect shows.
//
// Ours must read every outcome entry for entry. The test repeats the
// history until raft-wal has shown both defects, or up to 60 times; it
// never fails for want of a variant (wal/repair_test.go covers the repair
// deterministically), and logs what it saw.
func TestWALReferenceTailTruncationDefect(t *testing.T) {
	seen := map[string]int{}
	for run := 0; run < 60 && (seen["open"] == 0 || seen["read"] == 0); run++ {
		seen[tailTruncationDefectOnce(t)]++
		if t.Failed() {
			return
		}
	}
	t.Logf("raft-wal v0.4.0 after a restart: Open refused %d times, reads failed %d times, no defect %d times; ours read every one",
		seen["open"], seen["read"], seen["none"])
}

// tailTruncationDefectOnce runs the history once and returns how raft-wal
// failed: "open", "read" or "none".
func tailTruncationDefectOnce(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	w, done := openRefWAL(t, dir, 32<<10)
	if err := w.StoreLogs(walFixtureBatch(1, 1000, 1)); err != nil {
		t.Fatal(err)
	}
	if err := w.DeleteRange(991, 1000); err != nil {
		t.Fatal(err)
	}
	done()

	meta := &refmeta.BoltMetaDB{}
	ref, err := refwal.Open(dir, refwal.WithMetaStore(meta), refwal.WithSegmentSize(32<<10),
		refwal.WithLogger(hclog.NewNullLogger()))
	variant := "open"
	if err == nil {
		variant = "read"
		var l hraft.Log
		if ref.GetLog(881, &l) == nil {
			variant = "none"
		}
		if cerr := ref.Close(); cerr != nil {
			t.Errorf("raft-wal Close: %v", cerr)
		}
	}
	meta.Close()

	ours, err := wal.Open(dir, wal.WithSegmentSize(32<<10), wal.WithLogger(hclog.NewNullLogger()))
	if err != nil {
		t.Fatalf("our Open (raft-wal's outcome: %s): %v", variant, err)
	}
	checkWALEntries(t, "ours ("+variant+")", ours, ourGet(ours), 1, 990, func(uint64) uint64 { return 1 })
	if err := ours.StoreLogs(toOurLogs(walFixtureBatch(991, 1010, 2))); err != nil {
		t.Fatal(err)
	}
	if err := ours.Close(); err != nil {
		t.Fatal(err)
	}
	ours, err = wal.Open(dir, wal.WithSegmentSize(32<<10), wal.WithLogger(hclog.NewNullLogger()))
	if err != nil {
		t.Fatalf("our Open after our own run (raft-wal's outcome: %s): %v", variant, err)
	}
	defer ours.Close()
	checkWALEntries(t, "ours reopened ("+variant+")", ours, ourGet(ours), 1, 1010, func(i uint64) uint64 {
		if i > 990 {
			return 2
		}
		return 1
	})
	return variant
}

// TestWALReferenceReadsOurDirectory: a directory ours wrote, with sealed
// segments and head and tail truncations, opens under raft-wal v0.4.0
// entry for entry; raft-wal continues it and ours reads the result.
func TestWALReferenceReadsOurDirectory(t *testing.T) {
	dir := t.TempDir()
	w := openOurWAL(t, dir, 4096)
	for i := uint64(1); i <= 200; i += 10 {
		if err := w.StoreLogs(toOurLogs(walFixtureBatch(i, i+9, 1))); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.DeleteRange(1, 40); err != nil {
		t.Fatal(err)
	}
	if err := w.DeleteRange(191, 200); err != nil {
		t.Fatal(err)
	}
	if err := w.StoreLogs(toOurLogs(walFixtureBatch(191, 230, 2))); err != nil {
		t.Fatal(err)
	}
	w.SetUint64([]byte("CurrentTerm"), 2)
	w.Set([]byte("LastVoteCand"), []byte("127.0.0.1:7002"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	ref, done := openRefWAL(t, dir, 4096)
	checkWALEntries(t, "raft-wal on our files", ref, refGet(ref), 41, 230, walFixtureTerm)
	if got, err := ref.GetUint64([]byte("CurrentTerm")); err != nil || got != 2 {
		t.Errorf("raft-wal: CurrentTerm = %d, %v", got, err)
	}
	if got, err := ref.Get([]byte("LastVoteCand")); err != nil || string(got) != "127.0.0.1:7002" {
		t.Errorf("raft-wal: LastVoteCand = %q, %v", got, err)
	}
	if err := ref.StoreLogs(walFixtureBatch(231, 300, 2)); err != nil {
		t.Fatal(err)
	}
	if err := ref.DeleteRange(41, 100); err != nil {
		t.Fatal(err)
	}
	done()

	w = openOurWAL(t, dir, 4096)
	defer w.Close()
	checkWALEntries(t, "ours after raft-wal", w, ourGet(w), 101, 300, walFixtureTerm)
}

// TestWALSameSegmentBytes: the same appends and head truncations produce
// byte-identical segment files under both libraries.
func TestWALSameSegmentBytes(t *testing.T) {
	refDir, ourDir := t.TempDir(), t.TempDir()
	ref, done := openRefWAL(t, refDir, 8192)
	ours := openOurWAL(t, ourDir, 8192)
	for i := uint64(1); i <= 400; i += 13 {
		logs := walFixtureBatch(i, i+12, 1)
		if err := ref.StoreLogs(logs); err != nil {
			t.Fatal(err)
		}
		if err := ours.StoreLogs(toOurLogs(logs)); err != nil {
			t.Fatal(err)
		}
		if i > 100 && (i-1)%91 == 0 {
			if err := ref.DeleteRange(1, i-50); err != nil {
				t.Fatal(err)
			}
			if err := ours.DeleteRange(1, i-50); err != nil {
				t.Fatal(err)
			}
		}
	}
	done()
	ours.Close()
	refFiles, ourFiles := segmentFiles(t, refDir), segmentFiles(t, ourDir)
	if len(refFiles) < 3 || len(refFiles) != len(ourFiles) {
		t.Fatalf("raft-wal left %d segment files, ours %d", len(refFiles), len(ourFiles))
	}
	for name, want := range refFiles {
		got, ok := ourFiles[name]
		if !ok {
			t.Fatalf("ours has no %s", name)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs", name)
		}
	}
}

func segmentFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Base(n)] = b
	}
	return files
}
