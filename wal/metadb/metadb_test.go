package metadb

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/quorumkit/raft/wal/types"
)

// baseMetaFile returns the bytes of a wal-meta.db holding a state of two
// segments and two stable values.
func baseMetaFile(t testing.TB) ([]byte, types.PersistentState) {
	dir := t.TempDir()
	m := &BoltMetaDB{}
	if _, err := m.Load(dir); err != nil {
		t.Fatal(err)
	}
	st := types.PersistentState{NextSegmentID: 3, Segments: []types.SegmentInfo{
		{ID: 1, BaseIndex: 1, MinIndex: 1, MaxIndex: 40, SizeLimit: 2048},
		{ID: 2, BaseIndex: 41, MinIndex: 41, SizeLimit: 2048},
	}}
	if err := m.CommitState(st); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"CurrentTerm": "\x00\x00\x00\x00\x00\x00\x00\x02", "LastVoteCand": "n1"} {
		if err := m.SetStable([]byte(k), []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	return b, st
}

// rootPage returns the page size of a bolt file and the root bucket's
// page, from the meta page with the higher transaction ID.
func rootPage(b []byte) (ps int, root uint64) {
	ps = int(binary.LittleEndian.Uint32(b[16+8:]))
	var best uint64
	for _, at := range []int{0, ps} {
		if txid := binary.LittleEndian.Uint64(b[at+16+56:]); txid >= best {
			best, root = txid, binary.LittleEndian.Uint64(b[at+16+16:])
		}
	}
	return ps, root
}

// A root page turned into a branch page that points at itself: bbolt alone
// would recurse until the stack overflows, which kills the process. Load
// must refuse the file instead.
func TestLoadRefusesAPageThatPointsAtItself(t *testing.T) {
	b, _ := baseMetaFile(t)
	ps, root := rootPage(b)
	p := int(root) * ps
	binary.LittleEndian.PutUint16(b[p+8:], 0x01)    // branch page
	binary.LittleEndian.PutUint16(b[p+10:], 1)      // one element
	binary.LittleEndian.PutUint32(b[p+16:], 16)     // its key right after it
	binary.LittleEndian.PutUint32(b[p+16+4:], 1)    // one byte long
	binary.LittleEndian.PutUint64(b[p+16+8:], root) // its child: this page
	b[p+32] = 'w'
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	m := &BoltMetaDB{}
	_, err := m.Load(dir)
	if !errors.Is(err, types.ErrCorrupt) {
		t.Fatalf("Load = %v, want an error wrapping ErrCorrupt", err)
	}
	// The file is closed again: a new store can open the directory.
	if err := os.Remove(filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}
	if _, err := (&BoltMetaDB{}).Load(dir); err != nil {
		t.Fatalf("Load after removing the damaged file: %v", err)
	}
}

// FuzzLoad loads damaged copies of a wal-meta.db: each 3 bytes of input
// name an offset (two bytes, scaled to the file) and a byte to XOR there.
// Load must return, with an error or a state; a store that loads must
// take a new state and return it after a reopen, so that what the WAL
// commits is not lost.
func FuzzLoad(f *testing.F) {
	base, _ := baseMetaFile(f)
	ps, root := rootPage(base)
	at := func(off int) []byte { v := uint16(off * 65536 / len(base)); return []byte{byte(v), byte(v >> 8)} }
	f.Add([]byte{})
	f.Add(append(at(int(root)*ps+8), 0x03))  // root page flags
	f.Add(append(at(int(root)*ps+10), 0x40)) // root page element count
	f.Add(append(at(2*ps+16), 0xff))         // freelist
	f.Add(append(at(16+16), 0x07))           // first meta page's root
	f.Add(append(append(at(16+16), 0x07), append(at(ps+16+16), 0x07)...))
	f.Fuzz(func(t *testing.T, ops []byte) {
		b := append([]byte(nil), base...)
		for ; len(ops) >= 3; ops = ops[3:] {
			off := int(binary.LittleEndian.Uint16(ops)) * len(b) / 65536
			b[off] ^= ops[2]
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, FileName), b, 0o644); err != nil {
			t.Fatal(err)
		}
		m := &BoltMetaDB{}
		if _, err := m.Load(dir); err != nil {
			return
		}
		m.GetStable([]byte("CurrentTerm"))
		m.SetStable([]byte("LastVoteCand"), []byte("n2"))
		next := types.PersistentState{NextSegmentID: 9, Segments: []types.SegmentInfo{{ID: 8, BaseIndex: 77, MinIndex: 77, SizeLimit: 4096}}}
		committed := m.CommitState(next) == nil
		if err := m.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if !committed {
			return
		}
		m = &BoltMetaDB{}
		got, err := m.Load(dir)
		if err != nil || !reflect.DeepEqual(got, next) {
			t.Fatalf("after a committed state and a reopen, Load = %+v, %v; want %+v", got, err, next)
		}
		m.Close()
	})
}
