package wal

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quorumkit/raft/wal/segment"
)

// TestReopenInProcess: Close releases wal-meta.db, so the same process can
// open the directory again at once (raft-wal v0.4.0 keeps it locked, and
// a second Open waits forever).
func TestReopenInProcess(t *testing.T) {
	dir := t.TempDir()
	for round := uint64(0); round < 3; round++ {
		w, err := Open(dir, WithSegmentSize(4096), WithLogger(quietLogger()))
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := w.StoreLogs(batch(round*10+1, round*10+10, 1)); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if err := w.StoreLogs(batch(100, 100, 1)); !errors.Is(err, ErrClosed) {
			t.Fatalf("StoreLogs after Close: %v", err)
		}
	}
	w, err := Open(dir, WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	checkLog(t, w, 1, 30, func(uint64) uint64 { return 1 })
}

// TestLostTailAfterHeadTruncation: a tail segment file that disappears
// after a head truncation inside it is reported, since the metadata
// records where its entries start.
func TestLostTailAfterHeadTruncation(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.StoreLogs(batch(1, 50, 1)); err != nil {
		t.Fatal(err)
	}
	if err := w.DeleteRange(1, 20); err != nil {
		t.Fatal(err)
	}
	w.Close()
	names, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if len(names) != 1 {
		t.Fatalf("%d segment files", len(names))
	}
	os.Remove(names[0])
	w, err = Open(dir, WithLogger(quietLogger()))
	if err == nil {
		w.Close()
		t.Fatal("Open accepted a directory whose tail segment is gone")
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "acknowledged entries are missing") {
		t.Fatalf("Open: %v", err)
	}
}

// TestSealedTailCompletedAtOpen: a crash after a batch sealed the tail and
// before the seal was recorded leaves a sealed tail; Open records it and
// starts the next segment, so appends continue (raft-wal v0.4.0's next
// append fails with ErrSealed).
func TestSealedTailCompletedAtOpen(t *testing.T) {
	mfs := newMemFS(rand.New(rand.NewPCG(3, 3)))
	meta := newMemMeta(mfs)
	open := func() (*WAL, error) {
		return Open("d", WithSegmentFiler(segment.NewFiler("d", mfs)), WithMetaStore(meta),
			WithSegmentSize(2048), WithLogger(quietLogger()))
	}
	w, err := open()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.StoreLogs(batch(1, 3, 1)); err != nil {
		t.Fatal(err)
	}
	// The batch that fills the segment is durable, but recording the
	// seal fails, as a crash there would leave it.
	meta.failCommits = true
	if err := w.StoreLogs(batch(4, 12, 1)); err != nil {
		t.Fatalf("StoreLogs: %v (the batch is durable; only the rotation failed)", err)
	}
	w.Close()
	meta.failCommits = false
	if n := len(meta.state.Segments); n != 1 || !meta.state.Segments[0].SealTime.IsZero() {
		t.Fatalf("the seal was recorded: %+v", meta.state.Segments)
	}
	w, err = open()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if n := len(meta.state.Segments); n != 2 || meta.state.Segments[0].SealTime.IsZero() {
		t.Fatalf("Open did not record the seal: %+v", meta.state.Segments)
	}
	if err := w.StoreLogs(batch(13, 14, 1)); err != nil {
		t.Fatalf("StoreLogs after recovery: %v", err)
	}
	checkLog(t, w, 1, 14, func(uint64) uint64 { return 1 })
}
