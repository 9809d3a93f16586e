// Package fs is the wal package's view of the operating system's file
// system: a types.VFS over package os that preallocates new segment files
// and makes them durable with one data sync per commit.
package fs

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/quorumkit/raft/wal/types"
)

var _ types.VFS = &FS{}

// FS implements types.VFS with package os.
type FS struct{}

// New returns the operating system's file system.
func New() *FS { return &FS{} }

// ListDir returns the names of the regular files in dir, sorted.
func (fs *FS) ListDir(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// Create makes a new file (failing if it exists) and preallocates size
// bytes. Neither the file nor its directory entry is synced here: the
// first Sync of the returned file syncs both, before any entry in it is
// acknowledged.
func (fs *FS) Create(dir, name string, size uint64) (types.WritableFile, error) {
	if size > math.MaxInt32 {
		return nil, fmt.Errorf("segment size %d is above the limit of %d bytes", size, math.MaxInt32)
	}
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if size > 0 {
		if err := preallocate(f, int64(size)); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, fmt.Errorf("preallocating %s: %w", f.Name(), err)
		}
	}
	return &zeroingFile{File: &File{File: f, dir: dir}, limit: int64(size)}, nil
}

// Delete removes a file and syncs its directory.
func (fs *FS) Delete(dir, name string) error {
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

// OpenReader opens a file read-only.
func (fs *FS) OpenReader(dir, name string) (types.ReadableFile, error) {
	return os.Open(filepath.Join(dir, name))
}

// OpenWriter opens an existing file for reading and writing.
func (fs *FS) OpenWriter(dir, name string) (types.WritableFile, error) {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	// The file may have been created by a process that crashed before
	// its first sync: sync the directory on the first Sync here too.
	return &File{File: f, dir: dir}, nil
}

// File is a writable segment file. Sync makes written data durable with a
// data-only sync where the system has one (the file's size is fixed by
// preallocation, so its metadata rarely changes), and the first Sync also
// syncs the directory so that a new file's name survives a crash.
type File struct {
	*os.File
	dir       string
	dirSynced atomic.Bool
}

// zeroingFile is a File made by Create: it writes zeros ahead (see
// WriteAt).
type zeroingFile struct {
	*File
	mu sync.Mutex
	// limit is the preallocated size: the bytes never written are zeros
	// up to it. Zero if the file was not preallocated.
	limit int64
	// written is the end of the furthest write, zeros included.
	written int64
}

// zeroAhead is how many bytes of zeros WriteAt writes after a write that
// ends past everything written to a new file so far, within its
// preallocated size. Preallocated blocks start out, on Linux file systems
// such as ext4, as unwritten extents: the first sync after writing into
// one must also commit the change of extent state through the journal,
// which makes it markedly slower than a sync that only flushes data.
// Writing zeros ahead turns the blocks the next writes land in into
// written ones for the price of one larger write every zeroAhead bytes.
// Those bytes were zeros already, so no reader can tell.
const zeroAhead = 1 << 20

// zeros is a read-only block of zeroAhead zero bytes.
var zeros = sync.OnceValue(func() []byte { return make([]byte, zeroAhead) })

// WriteAt writes b at off. A write that ends past everything written so
// far is followed by up to zeroAhead bytes of zeros (never past the
// preallocated size), written over bytes that were never written and read
// as zeros: the file's content is the same, and the next syncs have fewer
// extents to record.
func (f *zeroingFile) WriteAt(b []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(b, off)
	if err != nil || f.limit == 0 {
		return n, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	end := off + int64(n)
	if end <= f.written {
		return n, nil
	}
	f.written = end
	if end >= f.limit {
		return n, nil
	}
	z := zeros()[:min(zeroAhead, f.limit-end)]
	if _, err := f.File.WriteAt(z, end); err != nil {
		return n, fmt.Errorf("writing zeros ahead of offset %d: %w", end, err)
	}
	f.written = end + int64(len(z))
	return n, nil
}

// Sync makes everything written so far durable.
func (f *File) Sync() error {
	if err := datasync(f.File); err != nil {
		return err
	}
	if !f.dirSynced.Load() {
		if err := syncDir(f.dir); err != nil {
			return err
		}
		f.dirSynced.Store(true)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
