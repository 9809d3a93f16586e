package segment

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"sync/atomic"

	"github.com/quorumkit/raft/wal/types"
)

// maxKeptBuf bounds the write buffer a Writer keeps between appends.
const maxKeptBuf = 4 << 20

// Writer appends to the tail segment and reads entries back from it.
//
// Append, ForceSeal and Sealed run on one goroutine at a time (the WAL's
// writer, under its write lock); GetLog and LastIndex run on any goroutine
// beside them. Readers see entries through locs and committed only:
// Append publishes new locations and then the new committed index, so a
// reader that sees index i committed finds its location, and never reads
// a byte that is not yet synced.
type Writer struct {
	info types.SegmentInfo
	wf   types.WritableFile

	// locs is the location of each entry, BaseIndex first. The slice is
	// only ever appended to: a published slice's elements never change,
	// and a reader indexes only below the committed count.
	locs atomic.Pointer[[]loc]
	// committed is the last index made durable, zero if none.
	committed atomic.Uint64

	// Owned by the writing goroutine.
	end        uint64 // offset where the next append goes; 0 before the header
	buf        []byte // reused encoding buffer
	indexStart uint64 // offset of the index array once sealed
	failed     error  // a write or sync failed: the file's state is unknown
}

var _ types.SegmentWriter = &Writer{}

func newWriter(info types.SegmentInfo, wf types.WritableFile) *Writer {
	w := &Writer{info: info, wf: wf}
	w.locs.Store(new([]loc))
	return w
}

// recoverWriter continues a tail segment after a restart: it keeps every
// complete batch (see scanSegment), forgets what follows, and zeroes the
// frames a torn append left so that a later scan cannot mistake them for
// data. A batch that sealed the segment leaves the writer sealed.
func recoverWriter(info types.SegmentInfo, wf types.WritableFile) (*Writer, error) {
	res, err := scanSegment(info, wf)
	if err != nil {
		return nil, err
	}
	if res.end > 0 && res.headerErr != nil {
		return nil, res.headerErr
	}
	w := newWriter(info, wf)
	w.end, w.indexStart = res.end, res.indexStart
	locs := res.committed
	w.locs.Store(&locs)
	if len(locs) > 0 {
		w.committed.Store(info.BaseIndex + uint64(len(locs)) - 1)
	}
	if res.dirtyEnd > res.end {
		zeros := make([]byte, res.dirtyEnd-res.end)
		if _, err := wf.WriteAt(zeros, int64(res.end)); err != nil {
			return nil, fmt.Errorf("clearing the torn end of segment %s: %w", FileName(info), err)
		}
		if err := wf.Sync(); err != nil {
			return nil, fmt.Errorf("clearing the torn end of segment %s: %w", FileName(info), err)
		}
	}
	return w, nil
}

// Append writes entries as one batch: their frames, an index frame if the
// batch takes the file past its size limit, and a commit frame, in one
// write followed by one sync. It returns once they are durable.
func (w *Writer) Append(entries []types.LogEntry) error {
	if len(entries) == 0 {
		return nil
	}
	if w.failed != nil {
		return w.failed
	}
	if w.indexStart != 0 {
		return types.ErrSealed
	}
	locs := *w.locs.Load()
	next := w.info.BaseIndex + uint64(len(locs))
	size := uint64(0)
	if w.end == 0 {
		size = fileHeaderLen
	}
	for i, e := range entries {
		if e.Index != next+uint64(i) {
			return fmt.Errorf("non-monotonic append to segment with BaseIndex=%d. Entry index %d, expected %d",
				w.info.BaseIndex, e.Index, next+uint64(i))
		}
		if len(e.Data) > MaxEntrySize {
			return ErrTooBig
		}
		size += frameSize(uint64(len(e.Data)))
	}
	// The same rule as raft-wal's, so both libraries seal at the same
	// batch: seal if the frames and an index for every entry would end
	// past the limit.
	seal := w.end+size+indexFrameSize(len(locs)+len(entries)) > uint64(w.info.SizeLimit)
	if seal {
		size += indexFrameSize(len(locs) + len(entries))
	}
	size += frameHeaderLen
	if w.end+size > math.MaxUint32 {
		return fmt.Errorf("segment %s would grow past 4GiB", FileName(w.info))
	}

	b := w.buffer(size)
	p := uint64(0)
	if w.end == 0 {
		putFileHeader(b, w.info)
		p = fileHeaderLen
	}
	newLocs := locs
	for _, e := range entries {
		n := uint64(len(e.Data))
		putFrameHeader(b[p:], frameHeader{typ: FrameEntry, length: uint32(n)})
		copy(b[p+frameHeaderLen:], e.Data)
		clear(b[p+frameHeaderLen+n : p+frameSize(n)])
		newLocs = append(newLocs, loc{off: uint32(w.end + p), length: uint32(n)})
		p += frameSize(n)
	}
	var indexStart uint64
	if seal {
		indexStart = w.end + p + frameHeaderLen
		p += w.putIndex(b[p:], newLocs)
	}
	putFrameHeader(b[p:], frameHeader{typ: FrameCommit, crc: crc32.Checksum(b[:p], castagnoli)})
	p += frameHeaderLen

	if err := w.writeAndSync(b[:p]); err != nil {
		return err
	}
	w.end += p
	w.indexStart = indexStart
	w.locs.Store(&newLocs)
	w.committed.Store(entries[len(entries)-1].Index)
	return nil
}

// ForceSeal seals the segment now, whatever its size: it appends an index
// frame for every entry and a commit frame, synced, and returns the index
// array's offset. The WAL calls it when a tail truncation ends the segment
// early, so that the sealed file can be read after a restart (raft-wal
// v0.4.0 seals without it, in its metadata only). Sealing an already
// sealed segment returns its index offset.
func (w *Writer) ForceSeal() (uint64, error) {
	if w.indexStart != 0 {
		return w.indexStart, nil
	}
	if w.failed != nil {
		return 0, w.failed
	}
	locs := *w.locs.Load()
	if len(locs) == 0 {
		return 0, fmt.Errorf("segment %s: cannot seal an empty segment", FileName(w.info))
	}
	size := indexFrameSize(len(locs)) + frameHeaderLen
	if w.end+size > math.MaxUint32 {
		return 0, fmt.Errorf("segment %s would grow past 4GiB", FileName(w.info))
	}
	b := w.buffer(size)
	p := w.putIndex(b, locs)
	putFrameHeader(b[p:], frameHeader{typ: FrameCommit, crc: crc32.Checksum(b[:p], castagnoli)})
	p += frameHeaderLen
	if err := w.writeAndSync(b[:p]); err != nil {
		return 0, err
	}
	w.indexStart = w.end + frameHeaderLen
	w.end += p
	return w.indexStart, nil
}

// putIndex writes an index frame for locs into b and returns its size.
func (w *Writer) putIndex(b []byte, locs []loc) uint64 {
	n := uint64(len(locs)) * 4
	putFrameHeader(b, frameHeader{typ: FrameIndex, length: uint32(n)})
	for i, l := range locs {
		binary.LittleEndian.PutUint32(b[frameHeaderLen+4*i:], l.off)
	}
	clear(b[frameHeaderLen+n : frameSize(n)])
	return frameSize(n)
}

// buffer returns a scratch buffer of n bytes.
func (w *Writer) buffer(n uint64) []byte {
	if uint64(cap(w.buf)) < n {
		w.buf = make([]byte, n)
	}
	b := w.buf[:n]
	if cap(w.buf) > maxKeptBuf {
		w.buf = nil
	}
	return b
}

// writeAndSync writes b at the end of the file and syncs. After a failure
// the writer refuses further appends: what reached the disk is unknown,
// and a failed sync may have dropped pages that a retry would not rewrite.
func (w *Writer) writeAndSync(b []byte) error {
	if _, err := w.wf.WriteAt(b, int64(w.end)); err != nil {
		w.failed = fmt.Errorf("writing segment %s: %w", FileName(w.info), err)
		return w.failed
	}
	if err := w.wf.Sync(); err != nil {
		w.failed = fmt.Errorf("syncing segment %s: %w", FileName(w.info), err)
		return w.failed
	}
	return nil
}

// Sealed reports whether the segment is sealed and where its index array
// starts.
func (w *Writer) Sealed() (bool, uint64, error) {
	return w.indexStart != 0, w.indexStart, nil
}

// LastIndex returns the last durable index, or zero if there is none.
func (w *Writer) LastIndex() uint64 { return w.committed.Load() }

// GetLog returns the encoded entry at idx if it is durable in this
// segment, in a buffer the caller owns.
func (w *Writer) GetLog(idx uint64) (*types.PooledBuffer, error) {
	last := w.committed.Load()
	if idx < w.info.BaseIndex || idx > last || last == 0 {
		return nil, types.ErrNotFound
	}
	l := (*w.locs.Load())[idx-w.info.BaseIndex]
	return readEntry(w.wf, w.info, idx, uint64(l.off), frameSize(uint64(l.length)))
}

// Close closes the file.
func (w *Writer) Close() error { return w.wf.Close() }
