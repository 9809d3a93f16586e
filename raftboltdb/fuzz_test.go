package raftboltdb

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/quorumkit/raft"
	"go.etcd.io/bbolt"
)

var updateFuzzSeeds = flag.Bool("raftboltdb.update-fuzz-seeds", false,
	"rewrite the seed corpus of FuzzOpen in testdata/fuzz/FuzzOpen")

// FuzzOpen opens and uses mutated store files. Whatever the bytes, New and
// every call after it must return (an error is fine) and never crash or
// hang the process. fixMeta gives the meta pages correct checksums after
// mutation, so that damage in them reaches the checker instead of being
// rejected by the checksum; readOnly opens without writing.
func FuzzOpen(f *testing.F) {
	f.Add(smallStoreFile(f, 30), false, false)
	f.Fuzz(func(t *testing.T, file []byte, fixMeta, readOnly bool) {
		if len(file) > 1<<20 {
			return
		}
		if fixMeta {
			fixMetaChecksums(file)
		}
		path := filepath.Join(t.TempDir(), "raft.db")
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		// Twice: what the first round wrote must be safe to open too.
		useStore(t, path, readOnly)
		useStore(t, path, readOnly)
	})
}

// useStore opens path and calls every method on it, ignoring errors.
func useStore(t *testing.T, path string, readOnly bool) {
	s, err := New(Options{Path: path, NoSync: true, BoltOptions: &bbolt.Options{ReadOnly: readOnly, NoGrowSync: true, Timeout: time.Second}})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			t.Fatalf("New: %v", err) // nothing else holds the file
		}
		return
	}
	defer s.Close()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	var l raft.Log
	for i := first; i <= last && i < first+50; i++ {
		err := s.GetLog(i, &l)
		switch {
		case err == nil && l.Index != i:
			t.Fatalf("GetLog(%d) returned entry %d", i, l.Index)
		case err != nil && err != raft.ErrLogNotFound && !errors.Is(err, ErrCorrupt):
			t.Fatalf("GetLog(%d): %v, want raft.ErrLogNotFound or an error wrapping ErrCorrupt", i, err)
		}
	}
	for _, key := range []string{"CurrentTerm", "LastVoteCand", "absent"} {
		_, err := s.Get([]byte(key))
		if err != nil && err != ErrKeyNotFound && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Get(%s): %v, want ErrKeyNotFound or an error wrapping ErrCorrupt", key, err)
		}
	}
	s.GetUint64([]byte("CurrentTerm"))
	if readOnly {
		return
	}
	s.StoreLogs(makeLogs(last+1, 3, 200))
	s.DeleteRange(first, first+1)
	s.SetUint64([]byte("CurrentTerm"), 9)
	s.Sync()
}

// fixMetaChecksums recomputes the checksums of the two meta pages, taking
// the page size from the first one (or 1 KiB if that one is absurd).
func fixMetaChecksums(file []byte) {
	if len(file) < pageHeaderSize+metaSize {
		return
	}
	ps := int(byteOrder.Uint32(file[pageHeaderSize+8:]))
	if ps < minPageSize || ps > len(file) {
		ps = smallPages
	}
	for _, at := range []int{0, ps} {
		if at+pageHeaderSize+metaSize <= len(file) {
			fixChecksum(file[at+pageHeaderSize : at+pageHeaderSize+metaSize])
		}
	}
}

// smallStoreFile returns the bytes of a small valid store with 1 KiB
// pages, up to its high-water mark: n entries and the stable keys raft
// writes.
func smallStoreFile(t testing.TB, n int) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "seed.db")
	s, err := New(Options{Path: path, BoltOptions: &bbolt.Options{PageSize: smallPages, Timeout: testTimeout}})
	if err != nil {
		t.Fatal(err)
	}
	if n > 0 {
		mustStore(t, s, makeLogs(1, n, 20))
	}
	s.SetUint64([]byte("CurrentTerm"), 2)
	s.SetUint64([]byte("LastVoteTerm"), 2)
	s.Set([]byte("LastVoteCand"), []byte("127.0.0.1:8300"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// bbolt grows files in steps; what lies past the high-water mark is
	// never read, so leave it out and keep the seeds small.
	m, ps, _ := inspect(t, path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b[:m.pgid*ps]
}

// TestWriteFuzzSeeds rewrites the seed corpus when asked to with
// -raftboltdb.update-fuzz-seeds: small stores, whole and damaged in the
// ways the checker looks for.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*updateFuzzSeeds {
		t.Skip("run with -raftboltdb.update-fuzz-seeds to rewrite testdata/fuzz/FuzzOpen")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzOpen")
	os.MkdirAll(dir, 0o755)
	write := func(name string, file []byte, fixMeta, readOnly bool) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbool(%v)\nbool(%v)\n", file, fixMeta, readOnly)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	empty := smallStoreFile(t, 0)
	write("empty-store", empty, false, false)
	write("empty-store-read-only", empty, false, true)

	tree := smallStoreFile(t, 60) // a branch page over several leaves
	write("two-level-store", tree, false, false)
	path := filepath.Join(t.TempDir(), "tree.db")
	os.WriteFile(path, tree, 0o600)
	m, ps, pages := inspect(t, path)
	branch := findPage(t, pages, branchPageFlag, 1)
	leaf := findPage(t, pages, leafPageFlag, 2)

	cyclic := append([]byte(nil), tree...)
	byteOrder.PutUint64(cyclic[branch*ps+pageHeaderSize+8:], branch)
	write("branch-points-at-itself", cyclic, false, true)

	write("truncated", tree[:(m.pgid-1)*ps], false, false)

	freed := append([]byte(nil), tree...)
	byteOrder.PutUint16(freed[m.freelist*ps+10:], 1)
	byteOrder.PutUint64(freed[m.freelist*ps+pageHeaderSize:], leaf)
	write("freelist-lists-a-leaf", freed, false, false)

	rooted := append([]byte(nil), tree...)
	byteOrder.PutUint64(rooted[pageHeaderSize+16:], m.pgid+3)
	byteOrder.PutUint64(rooted[ps+pageHeaderSize+16:], m.pgid+3)
	write("meta-root-past-the-end", rooted, true, false)
}
