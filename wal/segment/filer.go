package segment

import (
	"fmt"
	"strings"

	"github.com/quorumkit/raft/wal/types"
)

const (
	fileSuffix      = ".wal"
	fileNamePattern = "%020d-%016x" + fileSuffix
)

var _ types.SegmentFiler = &Filer{}

// Filer is the default types.SegmentFiler: segment files named by
// FileName in one directory of a VFS.
type Filer struct {
	dir string
	vfs types.VFS
}

// NewFiler returns a Filer for the segment files in dir.
func NewFiler(dir string, vfs types.VFS) *Filer {
	return &Filer{dir: dir, vfs: vfs}
}

// FileName returns the name of a segment's file: its BaseIndex in 20
// decimal digits, a dash, its ID in 16 lower-case hex digits, ".wal".
func FileName(i types.SegmentInfo) string {
	return fmt.Sprintf(fileNamePattern, i.BaseIndex, i.ID)
}

// Create makes the file for a new segment and returns its writer. The file
// header is written with the first append.
func (f *Filer) Create(info types.SegmentInfo) (types.SegmentWriter, error) {
	if info.BaseIndex == 0 {
		return nil, fmt.Errorf("creating segment %d: BaseIndex must be greater than zero", info.ID)
	}
	wf, err := f.vfs.Create(f.dir, FileName(info), uint64(info.SizeLimit))
	if err != nil {
		return nil, err
	}
	return newWriter(info, wf), nil
}

// RecoverTail opens the tail segment after a restart and returns a writer
// positioned after its last complete batch. See recoverWriter.
func (f *Filer) RecoverTail(info types.SegmentInfo) (types.SegmentWriter, error) {
	wf, err := f.vfs.OpenWriter(f.dir, FileName(info))
	if err != nil {
		return nil, err
	}
	w, err := recoverWriter(info, wf)
	if err != nil {
		wf.Close()
		return nil, err
	}
	return w, nil
}

// Open opens a sealed segment and checks its header and index frame. A
// segment sealed without an index frame (as raft-wal v0.4.0 seals one when
// truncating its tail) is read by scanning its frames instead.
func (f *Filer) Open(info types.SegmentInfo) (types.SegmentReader, error) {
	rf, err := f.vfs.OpenReader(f.dir, FileName(info))
	if err != nil {
		return nil, err
	}
	r, err := openSealed(info, rf)
	if err != nil {
		rf.Close()
		return nil, err
	}
	return r, nil
}

// List returns the segment files present, as a map from ID to BaseIndex.
// A file ending in ".wal" whose name does not parse is reported as damage.
func (f *Filer) List() (map[uint64]uint64, error) {
	names, err := f.vfs.ListDir(f.dir)
	if err != nil {
		return nil, err
	}
	segs := make(map[uint64]uint64)
	for _, name := range names {
		if !strings.HasSuffix(name, fileSuffix) {
			continue
		}
		var base, id uint64
		n, err := fmt.Sscanf(name, fileNamePattern, &base, &id)
		if err != nil || n != 2 || name != fmt.Sprintf(fileNamePattern, base, id) {
			return nil, fmt.Errorf("%w: unexpected segment file name %q", types.ErrCorrupt, name)
		}
		segs[id] = base
	}
	return segs, nil
}

// Delete removes a segment's file.
func (f *Filer) Delete(baseIndex, ID uint64) error {
	return f.vfs.Delete(f.dir, fmt.Sprintf(fileNamePattern, baseIndex, ID))
}
