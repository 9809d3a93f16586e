package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/quorumkit/raft/wal/types"
)

// Reader reads entries from a sealed segment. A segment sealed with an
// index frame is read through it: one read of two index slots gives the
// entry frame's offset and extent, a second read fetches exactly that
// frame. A segment sealed without one keeps the offsets its scan found.
type Reader struct {
	info types.SegmentInfo
	rf   types.ReadableFile

	// count is the number of entries the index frame lists.
	count uint64
	// locs holds the entries found by scanning, when the segment has no
	// index frame; nil otherwise. Never modified after openSealed.
	locs []loc
}

var _ types.SegmentReader = &Reader{}

// openSealed checks a sealed segment's header and its index frame (or
// scans it, when it has none) and returns its reader.
func openSealed(info types.SegmentInfo, rf types.ReadableFile) (*Reader, error) {
	name := FileName(info)
	var hdr [fileHeaderLen]byte
	if _, err := rf.ReadAt(hdr[:], 0); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: sealed segment %s is shorter than its header", types.ErrCorrupt, name)
		}
		return nil, fmt.Errorf("reading segment %s: %w", name, err)
	}
	if err := checkFileHeader(hdr[:], info); err != nil {
		return nil, err
	}
	if info.MinIndex < info.BaseIndex || info.MaxIndex < info.MinIndex && info.MaxIndex != 0 {
		return nil, fmt.Errorf("%w: segment %s: metadata range %d..%d outside BaseIndex %d",
			types.ErrCorrupt, name, info.MinIndex, info.MaxIndex, info.BaseIndex)
	}
	r := &Reader{info: info, rf: rf}
	last := info.MaxIndex
	if info.IndexStart == 0 {
		// Sealed without an index frame: raft-wal v0.4.0 does this when
		// a tail truncation seals the tail. Its entries are the ones its
		// complete batches hold.
		res, err := scanSegment(info, rf)
		if err != nil {
			return nil, err
		}
		if res.end > 0 && res.headerErr != nil {
			return nil, res.headerErr
		}
		r.locs, r.count = res.committed, uint64(len(res.committed))
	} else {
		if info.IndexStart < fileHeaderLen+frameHeaderLen || info.IndexStart%frameHeaderLen != 0 || info.IndexStart >= 1<<32 {
			return nil, fmt.Errorf("%w: segment %s: index offset %d is impossible", types.ErrCorrupt, name, info.IndexStart)
		}
		var fh [frameHeaderLen]byte
		if _, err := rf.ReadAt(fh[:], int64(info.IndexStart-frameHeaderLen)); err != nil {
			return nil, fmt.Errorf("%w: segment %s: reading the index frame at %d: %v", types.ErrCorrupt, name, info.IndexStart, err)
		}
		h, err := parseFrameHeader(fh[:])
		if err != nil || h.typ != FrameIndex || h.length%4 != 0 || h.length == 0 {
			return nil, fmt.Errorf("%w: segment %s: no index frame at offset %d", types.ErrCorrupt, name, info.IndexStart-frameHeaderLen)
		}
		r.count = uint64(h.length / 4)
		// The whole array must be readable.
		var tailBytes [4]byte
		if n, err := rf.ReadAt(tailBytes[:], int64(info.IndexStart)+int64(h.length)-4); n < 4 {
			return nil, fmt.Errorf("%w: segment %s: index array cut short: %v", types.ErrCorrupt, name, err)
		}
	}
	if last == 0 {
		last = info.BaseIndex + r.count - 1
	}
	if r.count == 0 || last > info.BaseIndex+r.count-1 {
		return nil, fmt.Errorf("%w: segment %s holds %d entries from %d, the metadata says it ends at %d",
			types.ErrCorrupt, name, r.count, info.BaseIndex, last)
	}
	return r, nil
}

// GetLog returns the encoded entry at idx, in a buffer the caller owns.
func (r *Reader) GetLog(idx uint64) (*types.PooledBuffer, error) {
	if idx < r.info.BaseIndex || idx-r.info.BaseIndex >= r.count {
		return nil, types.ErrNotFound
	}
	i := idx - r.info.BaseIndex
	if r.locs != nil {
		l := r.locs[i]
		return readEntry(r.rf, r.info, idx, uint64(l.off), frameSize(uint64(l.length)))
	}
	// Two index slots give this frame's offset and the next one's; the
	// last entry's frame ends at the latest where the index frame starts.
	var slots [8]byte
	want := 8
	if i+1 == r.count {
		want = 4
	}
	if n, err := r.rf.ReadAt(slots[:want], int64(r.info.IndexStart+4*i)); n < want {
		return nil, fmt.Errorf("%w: segment %s: reading index slot %d: %v", types.ErrCorrupt, FileName(r.info), i, err)
	}
	off := uint64(binary.LittleEndian.Uint32(slots[0:4]))
	end := r.info.IndexStart - frameHeaderLen
	if want == 8 {
		end = uint64(binary.LittleEndian.Uint32(slots[4:8]))
	}
	if off < fileHeaderLen || end <= off || end > r.info.IndexStart-frameHeaderLen {
		return nil, fmt.Errorf("%w: segment %s: index gives entry %d the impossible extent %d..%d", types.ErrCorrupt, FileName(r.info), idx, off, end)
	}
	return readEntry(r.rf, r.info, idx, off, end-off)
}

// readEntry reads the entry frame for idx at off, of which at most span
// bytes belong to it, and returns its payload.
func readEntry(rf io.ReaderAt, info types.SegmentInfo, idx, off, span uint64) (*types.PooledBuffer, error) {
	if span < frameHeaderLen || span > frameSize(MaxEntrySize) {
		return nil, fmt.Errorf("%w: segment %s: entry %d spans %d bytes", types.ErrCorrupt, FileName(info), idx, span)
	}
	buf := make([]byte, span)
	n, err := rf.ReadAt(buf, int64(off))
	if n < frameHeaderLen {
		if err == nil || errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: segment %s: entry %d at offset %d is past the end of the file", types.ErrCorrupt, FileName(info), idx, off)
		}
		return nil, err
	}
	h, herr := parseFrameHeader(buf)
	if herr != nil || h.typ != FrameEntry || uint64(h.length)+frameHeaderLen > uint64(n) {
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: segment %s: no entry frame for index %d at offset %d", types.ErrCorrupt, FileName(info), idx, off)
	}
	return &types.PooledBuffer{Bs: buf[frameHeaderLen : frameHeaderLen+h.length : frameHeaderLen+h.length]}, nil
}

// Close closes the file.
func (r *Reader) Close() error { return r.rf.Close() }
