package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/quorumkit/raft/wal/types"
)

// dumpFunc receives one entry read by DumpSegment or DumpLogs, with the
// segment's identity as its file header gives it (the codec tells how to
// decode e.Data). e.Data is valid only during the call. Returning false
// stops the dump; an error stops it and is returned as is.
type dumpFunc = func(info types.SegmentInfo, e types.LogEntry) (bool, error)

// DumpSegment reads the file of the segment with the given BaseIndex and
// ID without the metadata, for debugging (a process may still be writing
// it), and calls fn for each committed entry in order: every entry of a
// batch whose commit frame and checksum are intact. after and before,
// when not zero, are exclusive bounds on the indexes passed to fn.
func (f *Filer) DumpSegment(baseIndex uint64, ID uint64, after, before uint64, fn func(info types.SegmentInfo, e types.LogEntry) (bool, error)) error {
	_, err := f.dumpSegment(baseIndex, ID, after, before, fn)
	return err
}

// dumpSegment is DumpSegment, saying whether fn asked to go on.
func (f *Filer) dumpSegment(baseIndex, ID, after, before uint64, fn dumpFunc) (bool, error) {
	name := FileName(types.SegmentInfo{BaseIndex: baseIndex, ID: ID})
	rf, err := f.vfs.OpenReader(f.dir, name)
	if err != nil {
		return false, err
	}
	defer rf.Close()
	var hdr [fileHeaderLen]byte
	n, err := rf.ReadAt(hdr[:], 0)
	if n < fileHeaderLen && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("segment %s: reading its header: %w", name, err)
	}
	if n < fileHeaderLen || hdr == [fileHeaderLen]byte{} {
		// Created, its first batch not yet written: no entries.
		return true, nil
	}
	info := types.SegmentInfo{
		BaseIndex: binary.LittleEndian.Uint64(hdr[8:16]),
		ID:        binary.LittleEndian.Uint64(hdr[16:24]),
		Codec:     binary.LittleEndian.Uint64(hdr[24:32]),
	}
	info.MinIndex = info.BaseIndex
	if err := checkFileHeader(hdr[:], types.SegmentInfo{BaseIndex: baseIndex, ID: ID, Codec: info.Codec}); err != nil {
		return false, err
	}
	res, err := scanSegment(info, rf)
	if err != nil {
		return false, err
	}
	var buf []byte
	for i, l := range res.committed {
		idx := info.BaseIndex + uint64(i)
		if idx <= after {
			continue
		}
		if before != 0 && idx >= before {
			break
		}
		if uint64(cap(buf)) < uint64(l.length) {
			buf = make([]byte, l.length)
		}
		buf = buf[:l.length]
		if _, err := rf.ReadAt(buf, int64(l.off)+frameHeaderLen); err != nil {
			return false, fmt.Errorf("segment %s: reading entry %d: %w", name, idx, err)
		}
		more, err := fn(info, types.LogEntry{Index: idx, Data: buf})
		if err != nil || !more {
			return false, err
		}
	}
	return true, nil
}

// DumpLogs calls DumpSegment for every segment file in the directory, in
// order of BaseIndex, without the metadata: for debugging, it may show
// entries the WAL has truncated or not yet committed. after and before,
// when not zero, are exclusive bounds on the indexes passed to fn;
// segment files wholly outside them are not read.
func (f *Filer) DumpLogs(after, before uint64, fn func(info types.SegmentInfo, e types.LogEntry) (bool, error)) error {
	segs, err := f.List()
	if err != nil {
		return err
	}
	type seg struct{ base, id uint64 }
	list := make([]seg, 0, len(segs))
	for id, base := range segs {
		list = append(list, seg{base, id})
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].base != list[j].base {
			return list[i].base < list[j].base
		}
		return list[i].id < list[j].id
	})
	for i, s := range list {
		if before != 0 && s.base >= before {
			break
		}
		if i+1 < len(list) && list[i+1].base > s.base && list[i+1].base-1 <= after {
			continue // every entry of s is at or below after
		}
		more, err := f.dumpSegment(s.base, s.id, after, before, fn)
		if err != nil || !more {
			return err
		}
	}
	return nil
}
