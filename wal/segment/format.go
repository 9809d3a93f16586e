// Package segment reads and writes segment files in hashicorp/raft-wal's
// format (version 0), through a types.VFS.
//
// A segment file is a 32-byte header followed by frames. Each frame starts
// with an 8-byte header (type, three zero bytes, a little-endian uint32
// that is the payload length, or for a commit frame a CRC) and its payload
// is padded with zeros to a multiple of 8 bytes, so every frame header is
// 8-byte aligned and never straddles a disk sector. Entry frames hold one
// encoded log entry each. Every append ends with a commit frame whose CRC32
// (Castagnoli) covers every byte written since the previous commit frame
// (or the file's start), and then one data sync. The batch that takes the
// file past its size limit also writes an index frame, the file offsets of
// all its entry frames, before its commit frame: the segment is then sealed.
package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/quorumkit/raft/wal/types"
)

const (
	// MaxEntrySize is the largest encoded entry a segment accepts. A
	// length above it in a frame header is damage, not an entry.
	MaxEntrySize = 64 * 1024 * 1024

	fileHeaderLen  = 32
	frameHeaderLen = 8
	magic          = 0x58eb6b0d
	formatVersion  = 0
)

// Frame types, the first byte of a frame header. Zero is never written, so
// that unwritten (zeroed) space never reads as a frame.
const (
	FrameInvalid uint8 = iota
	FrameEntry
	FrameIndex
	FrameCommit
)

// ErrTooBig is returned by Append for an entry above MaxEntrySize.
var ErrTooBig = errors.New("entries larger than 64MiB are not supported")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// putFileHeader writes the 32-byte file header for info into b.
func putFileHeader(b []byte, info types.SegmentInfo) {
	binary.LittleEndian.PutUint32(b[0:4], magic)
	b[4], b[5], b[6] = 0, 0, 0
	b[7] = formatVersion
	binary.LittleEndian.PutUint64(b[8:16], info.BaseIndex)
	binary.LittleEndian.PutUint64(b[16:24], info.ID)
	binary.LittleEndian.PutUint64(b[24:32], info.Codec)
}

// checkFileHeader checks a file header against the segment it should
// belong to.
func checkFileHeader(b []byte, want types.SegmentInfo) error {
	if len(b) < fileHeaderLen {
		return fmt.Errorf("%w: segment %s: file header is %d bytes long", types.ErrCorrupt, FileName(want), len(b))
	}
	if binary.LittleEndian.Uint32(b[0:4]) != magic || b[4] != 0 || b[5] != 0 || b[6] != 0 {
		return fmt.Errorf("%w: segment %s: not a segment file (bad magic)", types.ErrCorrupt, FileName(want))
	}
	if b[7] != formatVersion {
		return fmt.Errorf("%w: segment %s: unknown format version %d", types.ErrCorrupt, FileName(want), b[7])
	}
	base := binary.LittleEndian.Uint64(b[8:16])
	id := binary.LittleEndian.Uint64(b[16:24])
	codec := binary.LittleEndian.Uint64(b[24:32])
	switch {
	case id != want.ID:
		return fmt.Errorf("%w: segment %s: header ID %x does not match the metadata's %x", types.ErrCorrupt, FileName(want), id, want.ID)
	case base != want.BaseIndex:
		return fmt.Errorf("%w: segment %s: header BaseIndex %d does not match the metadata's %d", types.ErrCorrupt, FileName(want), base, want.BaseIndex)
	case codec != want.Codec:
		return fmt.Errorf("%w: segment %s: header codec %d does not match the metadata's %d", types.ErrCorrupt, FileName(want), codec, want.Codec)
	}
	return nil
}

// frameHeader is a decoded frame header. For a commit frame, length is
// zero and crc holds the checksum.
type frameHeader struct {
	typ    uint8
	length uint32
	crc    uint32
}

// putFrameHeader writes h into the first 8 bytes of b.
func putFrameHeader(b []byte, h frameHeader) {
	b[0] = h.typ
	b[1], b[2], b[3] = 0, 0, 0
	v := h.length
	if h.typ == FrameCommit {
		v = h.crc
	}
	binary.LittleEndian.PutUint32(b[4:8], v)
}

// errZeroFrame reports an all-zero frame header: the end of what was
// written.
var errZeroFrame = errors.New("zero frame header")

// parseFrameHeader decodes the 8 bytes at the start of b.
func parseFrameHeader(b []byte) (frameHeader, error) {
	var h frameHeader
	h.typ = b[0]
	v := binary.LittleEndian.Uint32(b[4:8])
	if b[1] != 0 || b[2] != 0 || b[3] != 0 {
		return h, fmt.Errorf("%w: frame header has non-zero reserved bytes", types.ErrCorrupt)
	}
	switch h.typ {
	case FrameInvalid:
		if v == 0 {
			return h, errZeroFrame
		}
		return h, fmt.Errorf("%w: frame header of type 0 with a non-zero length", types.ErrCorrupt)
	case FrameEntry, FrameIndex:
		h.length = v
	case FrameCommit:
		h.crc = v
	default:
		return h, fmt.Errorf("%w: frame header of unknown type %d", types.ErrCorrupt, h.typ)
	}
	return h, nil
}

// padLen is how many zero bytes follow a payload of n bytes.
func padLen(n uint64) uint64 { return (frameHeaderLen - n%frameHeaderLen) % frameHeaderLen }

// frameSize is the space a frame with an n-byte payload takes.
func frameSize(n uint64) uint64 { return frameHeaderLen + n + padLen(n) }

// indexFrameSize is the space an index frame for n entries takes.
func indexFrameSize(n int) uint64 {
	if n == 0 {
		return 0
	}
	return frameSize(uint64(n) * 4)
}
