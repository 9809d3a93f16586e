package wal

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quorumkit/raft/wal/metadb"
	"go.etcd.io/bbolt"
)

// writeSample writes a WAL with 4 KiB segments holding 1..303 (several
// sealed segments and a tail of several batches) and returns its directory and segment file
// names, oldest first.
func writeSample(t *testing.T) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	w, err := Open(dir, WithSegmentSize(4096), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 300; i += 10 {
		if err := w.StoreLogs(batch(i, i+9, 1)); err != nil {
			t.Fatal(err)
		}
	}
	for i := uint64(301); i <= 303; i++ {
		if err := w.StoreLogs(batch(i, i, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if len(names) < 4 {
		t.Fatalf("only %d segments", len(names))
	}
	return dir, names
}

func openErr(t *testing.T, dir string) error {
	t.Helper()
	w, err := Open(dir, WithSegmentSize(4096), WithLogger(quietLogger()))
	if err == nil {
		w.Close()
	}
	return err
}

func patch(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedFilesRefused: each kind of damage Open can see gives an
// error that says what is wrong, never a panic or a silently shorter log.
func TestDamagedFilesRefused(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string, segs []string)
		want   string
	}{
		{"sealed segment missing", func(t *testing.T, dir string, segs []string) {
			os.Remove(segs[1])
		}, "is missing"},
		{"sealed segment cut short", func(t *testing.T, dir string, segs []string) {
			os.Truncate(segs[1], 1000)
		}, "index frame"},
		{"sealed segment emptied", func(t *testing.T, dir string, segs []string) {
			os.Truncate(segs[0], 0)
		}, "shorter than its header"},
		{"foreign file as a segment", func(t *testing.T, dir string, segs []string) {
			os.WriteFile(segs[1], []byte(strings.Repeat("not a wal segment ", 300)), 0o644)
		}, "bad magic"},
		{"segment of another log", func(t *testing.T, dir string, segs []string) {
			patch(t, segs[1], 16, []byte{0x55}) // the ID in the header
		}, "header ID"},
		{"unknown format version", func(t *testing.T, dir string, segs []string) {
			patch(t, segs[0], 7, []byte{9})
		}, "version"},
		{"oddly named segment file", func(t *testing.T, dir string, segs []string) {
			os.WriteFile(filepath.Join(dir, "junk.wal"), nil, 0o644)
		}, "segment file name"},
		{"damaged batch inside the tail", func(t *testing.T, dir string, segs []string) {
			// The tail's first batch is followed by complete ones: its
			// failing checksum is damage, not a torn write.
			patch(t, segs[len(segs)-1], 50, []byte{0xde, 0xad})
		}, "fails its checksum"},
		{"meta database not a database", func(t *testing.T, dir string, segs []string) {
			os.WriteFile(filepath.Join(dir, metadb.FileName), []byte(strings.Repeat("x", 8192)), 0o644)
		}, "wal-meta.db"},
		{"meta state not JSON", func(t *testing.T, dir string, segs []string) {
			setMetaValue(t, dir, []byte("{not json"))
		}, "failed to parse persisted state"},
		{"meta state inconsistent", func(t *testing.T, dir string, segs []string) {
			setMetaValue(t, dir, []byte(`{"NextSegmentID":3,"Segments":[{"ID":1,"BaseIndex":5,"MinIndex":5,"Codec":1},{"ID":2,"BaseIndex":9,"MinIndex":9,"Codec":1}]}`))
		}, "unsealed segment is not at tail"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, segs := writeSample(t)
			c.damage(t, dir, segs)
			err := openErr(t, dir)
			if err == nil {
				t.Fatal("Open accepted the damaged directory")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open: %v; want an error mentioning %q", err, c.want)
			}
			if c.want != "wal-meta.db" && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: %v does not wrap ErrCorrupt", err)
			}
		})
	}
}

// setMetaValue replaces the segment list record in wal-meta.db.
func setMetaValue(t *testing.T, dir string, v []byte) {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(dir, metadb.FileName), 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(metadb.MetaBucket)).Put([]byte(metadb.MetaKey), v)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDamagedEntryReported: an entry whose bytes were damaged after it was
// sealed is reported by GetLog as corrupt when its encoding no longer
// holds together, naming the index.
func TestDamagedEntryReported(t *testing.T) {
	dir, segs := writeSample(t)
	// The first entry frame of the first segment starts at offset 32; its
	// payload begins with the entry's index as a varint.
	patch(t, segs[0], 40, []byte{0x7f})
	w, err := Open(dir, WithSegmentSize(4096), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var l = testLog(1, 1)
	err = w.GetLog(1, l)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "entry 1") {
		t.Fatalf("GetLog of a damaged entry: %v", err)
	}
}
