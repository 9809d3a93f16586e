package raftboltdb

import (
	"bytes"
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quorumkit/raft"
	"go.etcd.io/bbolt"
)

// smallPages makes multi-level trees out of a few hundred entries.
const smallPages = 1024

// buildStore writes a store of n entries of size bytes (from index 1) with
// 1 KiB pages and some churn, closes it, and returns its path.
func buildStore(t testing.TB, n, size int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "raft.db")
	s := openStoreAt(t, path, Options{BoltOptions: &bbolt.Options{PageSize: smallPages, Timeout: testTimeout}})
	for i := 1; i <= n; i += 50 {
		mustStore(t, s, makeLogs(uint64(i), min(50, n-i+1), size))
	}
	if err := s.DeleteRange(1, 10); err != nil { // frees pages, so the freelist lists some
		t.Fatal(err)
	}
	mustStore(t, s, makeLogs(1, 10, size))
	if err := s.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// pageRef is a tree page the checker visited.
type pageRef struct {
	id    uint64
	flags uint16
	depth int
}

// inspect runs the checker over path and returns the meta it chose and
// the tree pages it visited.
func inspect(t testing.TB, path string) (meta, uint64, []pageRef) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, _ := f.Stat()
	c := &checker{f: f, size: info.Size()}
	var pages []pageRef
	c.onPage = func(id uint64, flags uint16, depth int) { pages = append(pages, pageRef{id, flags, depth}) }
	if _, err := c.run(); err != nil {
		t.Fatalf("checker on an undamaged file: %v", err)
	}
	m, err := c.chooseMeta()
	if err != nil {
		t.Fatal(err)
	}
	return m, c.pageSize, pages
}

// findPage returns the first visited page of the given type at least
// minDepth deep (the root bucket is depth 0, the logs bucket's root 1).
func findPage(t testing.TB, pages []pageRef, flags uint16, minDepth int) uint64 {
	t.Helper()
	for _, p := range pages {
		if p.flags == flags && p.depth >= minDepth {
			return p.id
		}
	}
	t.Fatalf("no page of type %#x at depth >= %d in %v", flags, minDepth, pages)
	return 0
}

// patch overwrites the file at off with b.
func patch(t testing.TB, path string, off uint64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, int64(off)); err != nil {
		t.Fatal(err)
	}
}

func u16(v uint16) []byte { return byteOrder.AppendUint16(nil, v) }
func u32(v uint32) []byte { return byteOrder.AppendUint32(nil, v) }
func u64(v uint64) []byte { return byteOrder.AppendUint64(nil, v) }

// rewriteMeta applies change to the meta page in use (the one with the
// higher transaction id) and gives it a correct checksum again, so that
// bbolt would trust the damage.
func rewriteMeta(t testing.TB, path string, pageSize uint64, change func(m []byte)) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := uint64(0)
	if byteOrder.Uint64(data[pageSize+pageHeaderSize+48:]) > byteOrder.Uint64(data[pageHeaderSize+48:]) {
		at = pageSize
	}
	m := data[at+pageHeaderSize : at+pageHeaderSize+metaSize]
	change(m)
	fixChecksum(m)
	patch(t, path, at+pageHeaderSize, m)
}

// fixChecksum recomputes the checksum of the meta m.
func fixChecksum(m []byte) {
	h := fnv.New64a()
	h.Write(m[:metaChecksummed])
	byteOrder.PutUint64(m[metaChecksummed:], h.Sum64())
}

// Each kind of damage is refused by New with an error wrapping ErrCorrupt
// that says what is wrong, instead of crashing the process.
func TestDamagedFileRefused(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path string, m meta, ps uint64, pages []pageRef)
		want   string
	}{
		{"truncated", func(t *testing.T, path string, m meta, ps uint64, _ []pageRef) {
			os.Truncate(path, int64((m.pgid-1)*ps))
		}, "truncated"},
		{"shorter than the meta pages", func(t *testing.T, path string, _ meta, _ uint64, _ []pageRef) {
			os.Truncate(path, 100)
		}, "not a bolt database"},
		{"not bolt: text", func(t *testing.T, path string, _ meta, _ uint64, _ []pageRef) {
			os.WriteFile(path, bytes.Repeat([]byte("hello, raft\n"), 2000), 0o600)
		}, "not a bolt database"},
		{"not bolt: zeros", func(t *testing.T, path string, _ meta, _ uint64, _ []pageRef) {
			os.WriteFile(path, make([]byte, 64<<10), 0o600)
		}, "not a bolt database"},
		{"both meta pages damaged", func(t *testing.T, path string, _ meta, ps uint64, _ []pageRef) {
			patch(t, path, pageHeaderSize+20, []byte{0xAB})
			patch(t, path, ps+pageHeaderSize+20, []byte{0xAB})
		}, "meta page"},
		{"branch page points at itself", func(t *testing.T, path string, _ meta, ps uint64, pages []pageRef) {
			id := findPage(t, pages, branchPageFlag, 1)
			patch(t, path, id*ps+pageHeaderSize+8, u64(id))
		}, "reached twice"},
		{"branch page points at the root", func(t *testing.T, path string, m meta, ps uint64, pages []pageRef) {
			id := findPage(t, pages, branchPageFlag, 1)
			patch(t, path, id*ps+pageHeaderSize+elementSize+8, u64(m.root))
		}, "reached twice"},
		{"page id past the end", func(t *testing.T, path string, m meta, ps uint64, pages []pageRef) {
			id := findPage(t, pages, branchPageFlag, 1)
			patch(t, path, id*ps+pageHeaderSize+8, u64(m.pgid+10))
		}, "outside the file's pages"},
		{"page of the wrong type", func(t *testing.T, path string, _ meta, ps uint64, pages []pageRef) {
			patch(t, path, findPage(t, pages, leafPageFlag, 2)*ps+8, u16(0x20))
		}, "has type"},
		{"page naming another", func(t *testing.T, path string, _ meta, ps uint64, pages []pageRef) {
			id := findPage(t, pages, leafPageFlag, 2)
			patch(t, path, id*ps, u64(id+1))
		}, "names itself"},
		{"too many elements", func(t *testing.T, path string, _ meta, ps uint64, pages []pageRef) {
			patch(t, path, findPage(t, pages, leafPageFlag, 2)*ps+10, u16(5000))
		}, "claims"},
		{"element outside its page", func(t *testing.T, path string, _ meta, ps uint64, pages []pageRef) {
			patch(t, path, findPage(t, pages, leafPageFlag, 2)*ps+pageHeaderSize+4, u32(1<<30))
		}, "outside the page"},
		{"overflow past the end", func(t *testing.T, path string, _ meta, ps uint64, pages []pageRef) {
			patch(t, path, findPage(t, pages, leafPageFlag, 2)*ps+12, u32(1<<20))
		}, "runs past"},
		{"empty branch page", func(t *testing.T, path string, _ meta, ps uint64, pages []pageRef) {
			patch(t, path, findPage(t, pages, branchPageFlag, 1)*ps+10, u16(0))
		}, "is empty"},
		{"freelist lists a page in use", func(t *testing.T, path string, m meta, ps uint64, pages []pageRef) {
			leaf := findPage(t, pages, leafPageFlag, 2)
			patch(t, path, m.freelist*ps+10, u16(1))
			patch(t, path, m.freelist*ps+pageHeaderSize, u64(leaf))
		}, "listed as free but is in use"},
		{"freelist lists a page past the end", func(t *testing.T, path string, m meta, ps uint64, _ []pageRef) {
			patch(t, path, m.freelist*ps+10, u16(1))
			patch(t, path, m.freelist*ps+pageHeaderSize, u64(m.pgid))
		}, "the freelist names page"},
		{"freelist page of the wrong type", func(t *testing.T, path string, m meta, ps uint64, _ []pageRef) {
			patch(t, path, m.freelist*ps+8, u16(leafPageFlag))
		}, "freelist page"},
		{"meta with the root past the end", func(t *testing.T, path string, m meta, ps uint64, _ []pageRef) {
			rewriteMeta(t, path, ps, func(b []byte) { byteOrder.PutUint64(b[16:], m.pgid+100) })
		}, "root bucket page"},
		{"meta claiming more pages than the file has", func(t *testing.T, path string, m meta, ps uint64, _ []pageRef) {
			rewriteMeta(t, path, ps, func(b []byte) { byteOrder.PutUint64(b[40:], m.pgid*4) })
		}, "truncated"},
		{"meta with an absurd page size", func(t *testing.T, path string, _ meta, ps uint64, _ []pageRef) {
			rewriteMeta(t, path, ps, func(b []byte) { byteOrder.PutUint32(b[8:], 17) })
		}, "page size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := buildStore(t, 400, 40)
			m, ps, pages := inspect(t, path)
			tt.damage(t, path, m, ps, pages)
			for _, readOnly := range []bool{false, true} {
				_, err := New(Options{Path: path, BoltOptions: &bbolt.Options{ReadOnly: readOnly, Timeout: testTimeout}})
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("New (read-only %v) = %v; want ErrCorrupt saying %q", readOnly, err, tt.want)
				}
				if readOnly {
					t.Log(err)
				}
			}
		})
	}
}

// The check is needed: bbolt alone, on a file whose branch page points at
// itself, recurses until the runtime kills the process, which no recover
// can prevent.
func TestUncheckedCycleKillsProcess(t *testing.T) {
	path := buildStore(t, 400, 40)
	_, ps, pages := inspect(t, path)
	id := findPage(t, pages, branchPageFlag, 1)
	patch(t, path, id*ps+pageHeaderSize+8, u64(id))

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=bbolt-unchecked", childPathEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil || !strings.Contains(stderr.String(), "stack overflow") {
		t.Fatalf("bbolt alone on a cyclic file: %v, stderr starts %q; want a fatal stack overflow", err, firstLine(stderr.String()))
	}
	t.Logf("bbolt alone: %v: %s", err, firstLine(stderr.String()))
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// When the newest meta page is damaged (a crash while writing it), the
// checker falls back to the previous one exactly as bbolt does, and the
// store opens at the previous transaction.
func TestNewestMetaDamaged(t *testing.T) {
	path := buildStore(t, 100, 40)
	s := openStoreAt(t, path, Options{})
	mustStore(t, s, makeLogs(101, 5, 40))
	s.Close()
	_, ps, _ := inspect(t, path)
	data, _ := os.ReadFile(path)
	newest := uint64(0)
	if byteOrder.Uint64(data[ps+pageHeaderSize+48:]) > byteOrder.Uint64(data[pageHeaderSize+48:]) {
		newest = ps
	}
	patch(t, path, newest+pageHeaderSize+40, []byte{0xEE}) // breaks its checksum
	s = openStoreAt(t, path, Options{})
	checkRange(t, s, 1, 100, func(i uint64) *raft.Log { return makeLogs(i, 1, 40)[0] })
}

// Whatever bbolt writes, in any of its modes, the checker accepts, and
// bbolt's own consistency check agrees the files are sound.
func TestCheckerAcceptsWhatBboltWrites(t *testing.T) {
	modes := []bbolt.Options{
		{PageSize: smallPages},
		{PageSize: 4096, FreelistType: bbolt.FreelistMapType},
		{PageSize: smallPages, NoFreelistSync: true},
	}
	for _, mode := range modes {
		t.Run("", func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "raft.db")
			rng := rand.New(rand.NewPCG(3, uint64(mode.PageSize)))
			var next uint64 = 1
			for reopen := 0; reopen < 8; reopen++ {
				bo := mode
				bo.Timeout = testTimeout
				s := openStoreAt(t, path, Options{NoSync: true, BoltOptions: &bo})
				for op := 0; op < 40; op++ {
					if rng.IntN(4) == 0 {
						first, _ := s.FirstIndex()
						if err := s.DeleteRange(first, first+uint64(rng.IntN(200))); err != nil {
							t.Fatal(err)
						}
						continue
					}
					n := 1 + rng.IntN(100)
					mustStore(t, s, makeLogs(next, n, rng.IntN(3000)))
					next += uint64(n)
				}
				if err := s.db.View(func(tx *bbolt.Tx) error {
					for err := range tx.Check() {
						return err
					}
					return nil
				}); err != nil {
					t.Fatalf("bbolt's check: %v", err)
				}
				s.Close()
				if _, err := checkFile(path, false, nil); err != nil {
					t.Fatalf("after round %d: %v", reopen, err)
				}
			}
		})
	}
}
