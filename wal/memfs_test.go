package wal

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"sync"

	"github.com/quorumkit/raft/wal/types"
)

// memFS is an in-memory types.VFS for tests that can simulate a crash.
// Each file keeps what a sync made durable beside its current content and
// the byte ranges written since; its name is durable once the file has
// been synced (the real file system syncs the directory then). After the
// crash point every operation fails with errCrashed, and crashImage builds
// the directory a restart would find: every file's durable content, with
// each sector-sized piece of every unsynced write either kept out, written
// or garbled, and unsynced new files present or not. Bytes outside the
// written ranges never change (disks overwrite partial sectors safely, an
// assumption the format documents).
type memFS struct {
	mu      sync.Mutex
	files   map[string]*memFile
	ops     int // mutating operations so far, the crash clock
	crashAt int // the operation that crashes; 0 for never
	crashed bool
	rng     *rand.Rand
}

type memFile struct {
	data, durable []byte
	dirty         [][2]int // written ranges since the last sync
	linked        bool     // the name survives a crash
}

var errCrashed = errors.New("simulated crash")

const sector = 512

func newMemFS(rng *rand.Rand) *memFS {
	return &memFS{files: make(map[string]*memFile), rng: rng}
}

// step counts a mutating operation; it reports whether the operation
// happens (false: the machine is down) and whether it is the crash point.
func (m *memFS) step() (run, crashNow bool) {
	if m.crashed {
		return false, false
	}
	m.ops++
	if m.crashAt != 0 && m.ops >= m.crashAt {
		m.crashed = true
		return true, true
	}
	return true, false
}

func (m *memFS) ListDir(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.crashed {
		return nil, errCrashed
	}
	var names []string
	for n := range m.files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

func (m *memFS) Create(dir, name string, size uint64) (types.WritableFile, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	run, crash := m.step()
	if !run {
		return nil, errCrashed
	}
	if _, ok := m.files[name]; ok {
		return nil, os.ErrExist
	}
	if size > 1<<20 {
		return nil, fmt.Errorf("memFS: refusing to preallocate %d bytes", size)
	}
	f := &memFile{data: make([]byte, size), durable: make([]byte, size)}
	m.files[name] = f
	if crash {
		return nil, errCrashed
	}
	return &memHandle{fs: m, f: f}, nil
}

func (m *memFS) Delete(dir, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	run, crash := m.step()
	if !run {
		return errCrashed
	}
	if crash && m.rng.IntN(2) == 0 {
		return errCrashed
	}
	if _, ok := m.files[name]; !ok {
		return os.ErrNotExist
	}
	delete(m.files, name)
	if crash {
		return errCrashed
	}
	return nil
}

func (m *memFS) open(name string) (*memHandle, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.crashed {
		return nil, errCrashed
	}
	f, ok := m.files[name]
	if !ok {
		return nil, fmt.Errorf("open %s: %w", name, os.ErrNotExist)
	}
	return &memHandle{fs: m, f: f}, nil
}

func (m *memFS) OpenReader(dir, name string) (types.ReadableFile, error) { return m.open(name) }
func (m *memFS) OpenWriter(dir, name string) (types.WritableFile, error) { return m.open(name) }

// crashImage returns the directory a restart after the crash finds.
func (m *memFS) crashImage(rng *rand.Rand) *memFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	img := newMemFS(rng)
	for name, f := range m.files {
		if !f.linked && rng.IntN(2) == 0 {
			continue
		}
		b := append([]byte(nil), f.durable...)
		for _, r := range f.dirty {
			for lo := r[0]; lo < r[1]; {
				hi := min((lo/sector+1)*sector, r[1])
				switch rng.IntN(3) {
				case 1:
					b = grow(b, hi)
					copy(b[lo:hi], f.data[lo:hi])
				case 2:
					b = grow(b, hi)
					for i := lo; i < hi; i++ {
						b[i] = byte(rng.Uint32())
					}
				}
				lo = hi
			}
		}
		img.files[name] = &memFile{data: b, durable: append([]byte(nil), b...), linked: true}
	}
	return img
}

func grow(b []byte, n int) []byte {
	if len(b) < n {
		b = append(b, make([]byte, n-len(b))...)
	}
	return b
}

// memHandle is an open file; it keeps working on a deleted file's
// content, as a POSIX descriptor does.
type memHandle struct {
	fs     *memFS
	f      *memFile
	closed bool
}

func (h *memHandle) ReadAt(p []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return 0, os.ErrClosed
	}
	if off >= int64(len(h.f.data)) {
		return 0, io.EOF
	}
	n := copy(p, h.f.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (h *memHandle) WriteAt(p []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return 0, os.ErrClosed
	}
	run, crash := h.fs.step()
	if !run {
		return 0, errCrashed
	}
	end := int(off) + len(p)
	h.f.data = grow(h.f.data, end)
	copy(h.f.data[off:], p)
	h.f.dirty = append(h.f.dirty, [2]int{int(off), end})
	if crash {
		return 0, errCrashed
	}
	return len(p), nil
}

func (h *memHandle) Sync() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return os.ErrClosed
	}
	run, crash := h.fs.step()
	if !run || crash {
		return errCrashed
	}
	h.f.durable = append(h.f.durable[:0], h.f.data...)
	h.f.dirty = nil
	h.f.linked = true
	return nil
}

func (h *memHandle) Close() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return os.ErrClosed
	}
	h.closed = true
	return nil
}

// memMeta is an in-memory types.MetaStore on a memFS's crash clock: a
// commit at the crash point happens or not, at random, as a bbolt commit
// interrupted by a crash is found whole or not at all.
type memMeta struct {
	fs     *memFS
	mu     sync.Mutex
	state  types.PersistentState
	stable map[string][]byte
	loaded bool
	// failCommits makes CommitState fail without committing.
	failCommits bool
}

func newMemMeta(fs *memFS) *memMeta {
	return &memMeta{fs: fs, stable: make(map[string][]byte)}
}

func copyState(st types.PersistentState) types.PersistentState {
	st.Segments = append([]types.SegmentInfo(nil), st.Segments...)
	return st
}

// image returns the meta store a restart finds, on the new file system.
func (m *memMeta) image(fs *memFS) *memMeta {
	m.mu.Lock()
	defer m.mu.Unlock()
	img := newMemMeta(fs)
	img.state = copyState(m.state)
	for k, v := range m.stable {
		img.stable[k] = v
	}
	return img
}

func (m *memMeta) Load(dir string) (types.PersistentState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.loaded = true
	return copyState(m.state), nil
}

func (m *memMeta) commit(apply func()) error {
	m.fs.mu.Lock()
	run, crash := m.fs.step()
	if crash && m.fs.rng.IntN(2) == 0 {
		run = false
	}
	m.fs.mu.Unlock()
	if !run {
		return errCrashed
	}
	m.mu.Lock()
	apply()
	m.mu.Unlock()
	if crash {
		return errCrashed
	}
	return nil
}

func (m *memMeta) CommitState(st types.PersistentState) error {
	if m.failCommits {
		return errors.New("commit refused by the test")
	}
	return m.commit(func() { m.state = copyState(st) })
}

func (m *memMeta) GetStable(key []byte) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.stable[string(key)]; ok {
		return append([]byte{}, v...), nil
	}
	return nil, nil
}

func (m *memMeta) SetStable(key, value []byte) error {
	v := append([]byte(nil), value...)
	return m.commit(func() {
		if value == nil {
			delete(m.stable, string(key))
		} else {
			m.stable[string(key)] = v
		}
	})
}

func (m *memMeta) Close() error { return nil }
