package segment

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/quorumkit/raft/wal/types"
)

// scanChunk is how much of a file a scan reads at a time.
const scanChunk = 1 << 20

// loc is where an entry frame is: the frame's file offset and the
// length of its payload.
type loc struct {
	off    uint32
	length uint32
}

// scanResult is what scanning a segment from its start found.
type scanResult struct {
	// committed are the entries up to the last commit frame whose CRC
	// matched.
	committed []loc
	// end is the offset just past that commit frame: where the next
	// append goes. Zero if no batch was complete (not even the header).
	end uint64
	// indexStart is the offset of the index array if a complete batch
	// sealed the segment, else zero.
	indexStart uint64
	// dirtyEnd is the end of the furthest frame read after end: bytes
	// a torn append left behind.
	dirtyEnd uint64
	// headerErr says how the file header disagrees with the metadata;
	// nil if it agrees. It matters only if a batch was complete.
	headerErr error
}

// scanner reads a file sequentially through a buffer.
type scanner struct {
	r      io.ReaderAt
	buf    []byte
	bufOff uint64 // file offset of buf[0]
}

// view returns n bytes at off, or nil if the file ends first. The slice
// is valid until the next call.
func (s *scanner) view(off uint64, n uint64) ([]byte, error) {
	if off >= s.bufOff && off+n <= s.bufOff+uint64(len(s.buf)) {
		return s.buf[off-s.bufOff : off-s.bufOff+n], nil
	}
	if n > scanChunk {
		// A damaged length can claim up to MaxEntrySize: check the file
		// is that long before allocating for it.
		var probe [1]byte
		if got, _ := s.r.ReadAt(probe[:], int64(off+n-1)); got < 1 {
			return nil, nil
		}
	}
	size := max(n, scanChunk)
	if uint64(cap(s.buf)) < size {
		s.buf = make([]byte, size)
	}
	s.buf = s.buf[:size]
	got, err := s.r.ReadAt(s.buf, int64(off))
	if err != nil && !errors.Is(err, io.EOF) {
		s.buf = s.buf[:0]
		return nil, fmt.Errorf("reading segment at offset %d: %w", off, err)
	}
	s.buf, s.bufOff = s.buf[:got], off
	if uint64(got) < n {
		return nil, nil
	}
	return s.buf[:n], nil
}

// scanSegment reads a segment's frames from the start and finds the last
// complete batch: the last commit frame whose CRC matches the bytes since
// the commit before it. Everything after that batch is what a crash left
// of an append that was never acknowledged.
//
// Beyond raft-wal, which checks only the last batch's CRC, every batch's
// CRC is checked; and a batch whose CRC fails but is followed by a later
// batch whose CRC matches is reported as damage (ErrCorrupt): appends
// happen one after another, each after the previous one's sync, so only
// the last batch can be torn by a crash.
func scanSegment(info types.SegmentInfo, r io.ReaderAt) (scanResult, error) {
	var res scanResult
	s := &scanner{r: r}
	hdr, err := s.view(0, fileHeaderLen)
	if err != nil {
		return res, err
	}
	if hdr == nil {
		// A file shorter than a header: nothing was ever committed.
		res.headerErr = fmt.Errorf("%w: segment %s: shorter than its header", types.ErrCorrupt, FileName(info))
		return res, nil
	}
	res.headerErr = checkFileHeader(hdr, info)
	crc := crc32.Checksum(hdr, castagnoli)

	var (
		pending     []loc  // entries since the last good commit
		pendingIdx  uint64 // index array offset seen since it
		pos         = uint64(fileHeaderLen)
		badAt       uint64 // offset of the first commit frame that failed
		badBatch    uint64 // where that commit's batch started
		batchStart  uint64 // where the current batch started
		entriesSeen = 0
	)
scan:
	for {
		hb, err := s.view(pos, frameHeaderLen)
		if err != nil {
			return res, err
		}
		if hb == nil {
			break
		}
		h, err := parseFrameHeader(hb)
		if err != nil {
			break // zeros (the end) or bytes a torn write left
		}
		if h.typ == FrameCommit {
			if badAt == 0 && h.crc == crc {
				res.committed = append(res.committed, pending...)
				entriesSeen = len(res.committed)
				res.end = pos + frameHeaderLen
				if pendingIdx != 0 {
					res.indexStart = pendingIdx
					return res, nil // a sealed segment ends here
				}
			} else if badAt != 0 && h.crc == crc {
				return res, fmt.Errorf("%w: segment %s: the batch at offset %d fails its checksum but a later one at offset %d matches: damage, not a torn write",
					types.ErrCorrupt, FileName(info), badBatch, pos)
			} else if badAt == 0 {
				badAt, badBatch = pos, batchStart
			}
			pending, pendingIdx = pending[:0], 0
			pos += frameHeaderLen
			res.dirtyEnd = max(res.dirtyEnd, pos)
			crc, batchStart = 0, pos
			continue
		}
		size := frameSize(uint64(h.length))
		if h.typ == FrameEntry && h.length > MaxEntrySize || pos+size > 1<<32 {
			break
		}
		fb, err := s.view(pos, size)
		if err != nil {
			return res, err
		}
		if fb == nil {
			break
		}
		crc = crc32.Update(crc, castagnoli, fb)
		switch h.typ {
		case FrameEntry:
			pending = append(pending, loc{off: uint32(pos), length: h.length})
		case FrameIndex:
			if h.length%4 != 0 || int(h.length/4) != entriesSeen+len(pending) {
				res.dirtyEnd = max(res.dirtyEnd, pos+size)
				break scan
			}
			pendingIdx = pos + frameHeaderLen
		}
		pos += size
		res.dirtyEnd = max(res.dirtyEnd, pos)
	}
	if res.end == 0 {
		res.committed = nil
	}
	return res, nil
}
