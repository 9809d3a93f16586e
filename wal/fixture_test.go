package wal

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/quorumkit/raft"
)

// fixtureDir was written by hashicorp/raft-wal v0.4.0: see
// interop/wal_compat_test.go (writeRefFixture), which rewrites it with
// -wal.write-fixture.
const fixtureDir = "testdata/raft-wal-v0.4.0"

// fixtureLog is the entry the fixture holds at index in term: the same
// function as interop's walFixtureLog.
func fixtureLog(index, term uint64) *raft.Log {
	data := make([]byte, 20+index*37%180)
	for j := range data {
		data[j] = byte(index*7 + uint64(j)*13 + term)
	}
	l := &raft.Log{Index: index, Term: term, Type: raft.LogType(index % 6), Data: data}
	if index%4 == 0 {
		l.Extensions = []byte{byte(index), byte(term), 0xee}
	}
	if index%10 != 0 {
		l.AppendedAt = time.Unix(1_650_000_000+int64(index), int64(term)*1000).UTC()
	}
	return l
}

func fixtureTerm(i uint64) uint64 {
	if i > 190 {
		return 2
	}
	return 1
}

// copyDir copies the files of src into a new temporary directory.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	names, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(src, n.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, n.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func checkFixtureEntries(t *testing.T, w *WAL, first, last uint64) {
	t.Helper()
	gotFirst, _ := w.FirstIndex()
	gotLast, _ := w.LastIndex()
	if gotFirst != first || gotLast != last {
		t.Fatalf("log is %d..%d, want %d..%d", gotFirst, gotLast, first, last)
	}
	for i := first; i <= last; i++ {
		var got raft.Log
		if err := w.GetLog(i, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		want := fixtureLog(i, fixtureTerm(i))
		if got.Index != i || got.Term != want.Term || got.Type != want.Type ||
			!bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) ||
			(got.Extensions == nil) != (want.Extensions == nil) || !got.AppendedAt.Equal(want.AppendedAt) {
			t.Fatalf("entry %d = %+v, want %+v", i, got, *want)
		}
	}
	for _, i := range []uint64{first - 1, last + 1} {
		var l raft.Log
		if err := w.GetLog(i, &l); err != raft.ErrLogNotFound {
			t.Fatalf("GetLog(%d) outside the log: %v", i, err)
		}
	}
}

// TestReferenceFixture opens the directory raft-wal v0.4.0 wrote (sealed
// segments, a head truncation inside a segment, a tail truncation that
// v0.4.0 sealed without an index frame, stable values) and reads it
// entry for entry; then continues it, truncates its tail again and reads
// it after a reopen.
func TestReferenceFixture(t *testing.T) {
	dir := copyDir(t, fixtureDir)
	w, err := Open(dir, WithSegmentSize(4096), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	noIndex := 0
	for _, s := range w.view.Load().segs {
		if !s.SealTime.IsZero() && s.IndexStart == 0 {
			noIndex++
		}
	}
	if noIndex != 1 || len(w.view.Load().segs) < 5 || w.view.Load().segs[0].MinIndex == w.view.Load().segs[0].BaseIndex {
		t.Fatalf("the fixture no longer has what this test is for: %d segments, %d sealed without an index, first %+v",
			len(w.view.Load().segs), noIndex, w.view.Load().segs[0].SegmentInfo)
	}
	checkFixtureEntries(t, w, 41, 230)
	for key, want := range map[string]uint64{"CurrentTerm": 2, "LastVoteTerm": 2} {
		if got, err := w.GetUint64([]byte(key)); err != nil || got != want {
			t.Errorf("%s = %d, %v; want %d", key, got, err, want)
		}
	}
	if got, err := w.Get([]byte("LastVoteCand")); err != nil || string(got) != "127.0.0.1:7002" {
		t.Errorf("LastVoteCand = %q, %v", got, err)
	}
	var more []*raft.Log
	for i := uint64(231); i <= 260; i++ {
		more = append(more, fixtureLog(i, 2))
	}
	if err := w.StoreLogs(more); err != nil {
		t.Fatal(err)
	}
	if err := w.DeleteRange(251, 260); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w, err = Open(dir, WithSegmentSize(4096), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	checkFixtureEntries(t, w, 41, 250)
}
