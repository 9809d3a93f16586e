package wal

import (
	"os"
	"path/filepath"
	"testing"
)

// zeroAheadForTest is fs.zeroAhead.
const zeroAheadForTest = 1 << 20

// TestZeroAheadStaysInsideSegments: the zeros that package fs writes
// after each batch in a new segment file (fs.zeroAhead) never grow a file
// past its preallocated size, whether the segment is smaller or larger
// than the zeroed stretch, and never cover an entry: every entry reads
// back after a reopen, across rotations.
func TestZeroAheadStaysInsideSegments(t *testing.T) {
	for _, size := range []int{64 << 10, 3 << 20} {
		dir := t.TempDir()
		w, err := Open(dir, WithSegmentSize(size), WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		last := uint64(0)
		for i := 0; i < 300; i++ {
			n := uint64(1 + i%3)
			if size > zeroAheadForTest {
				n = uint64(1 + i%40)
			}
			if err := w.StoreLogs(batch(last+1, last+n, 1)); err != nil {
				t.Fatal(err)
			}
			last += n
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		segs, err := filepath.Glob(filepath.Join(dir, "*.wal"))
		if err != nil || len(segs) == 0 {
			t.Fatalf("segment files: %v, %v", segs, err)
		}
		for _, name := range segs {
			fi, err := os.Stat(name)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() >= int64(size)+zeroAheadForTest/2 {
				// A sealing batch may end past the limit, by its own
				// size only, never by a stretch of zeros.
				t.Errorf("segment size %d: %s is %d bytes", size, filepath.Base(name), fi.Size())
			}
		}
		w, err = Open(dir, WithSegmentSize(size), WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		checkLog(t, w, 1, last, func(uint64) uint64 { return 1 })
		if err := w.StoreLogs(batch(last+1, last+5, 1)); err != nil {
			t.Fatal(err)
		}
		checkLog(t, w, 1, last+5, func(uint64) uint64 { return 1 })
		w.Close()
	}
}
