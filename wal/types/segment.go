package types

import (
	"io"
	"time"
)

// SegmentInfo describes one segment file. The meta store keeps one per
// segment of the log; the last one is the tail, the only unsealed segment.
type SegmentInfo struct {
	// ID is unique for the life of the directory; a segment created
	// after a truncation never reuses an ID, so an old file left behind
	// by a crash is never mistaken for a new one.
	ID uint64

	// BaseIndex is the raft index of the first entry in the file.
	BaseIndex uint64

	// MinIndex is the first index still part of the log: above
	// BaseIndex once a head truncation has dropped a prefix of the file.
	MinIndex uint64

	// MaxIndex is the last index still part of the log, set when the
	// segment is sealed: below the file's last entry once a tail
	// truncation has dropped a suffix. Zero while unsealed.
	MaxIndex uint64

	// Codec is the ID of the codec that encoded the file's entries.
	// IDs below 1<<16 are reserved for this package.
	Codec uint64

	// IndexStart is the file offset of the index array written when the
	// segment was sealed (just past the index frame's header). Zero while
	// unsealed.
	IndexStart uint64

	// CreateTime is when the segment was created.
	CreateTime time.Time

	// SealTime is when the segment was sealed; zero while it is the tail.
	SealTime time.Time

	// SizeLimit is the size the file is preallocated to. The batch that
	// crosses it seals the segment, so a file may end a little past it.
	SizeLimit uint32
}

// SegmentFiler creates, recovers, opens, lists and deletes segments. It
// hides the file format from the WAL; the default one (package segment)
// writes hashicorp/raft-wal's format through a VFS.
type SegmentFiler interface {
	// Create makes a new, empty segment for info and returns its writer.
	Create(info SegmentInfo) (SegmentWriter, error)

	// RecoverTail opens the unsealed tail segment after a restart, drops
	// whatever a crash left unfinished after its last complete batch, and
	// returns a writer ready to append. If the file does not exist the
	// error wraps os.ErrNotExist.
	RecoverTail(info SegmentInfo) (SegmentWriter, error)

	// Open opens a sealed segment for reading, checking its header
	// against info.
	Open(info SegmentInfo) (SegmentReader, error)

	// List returns the segments present, as a map from ID to BaseIndex,
	// so that files a crash left behind can be found and deleted.
	List() (map[uint64]uint64, error)

	// Delete removes the segment with this BaseIndex and ID, if present.
	Delete(baseIndex, ID uint64) error
}

// SegmentWriter appends to the tail segment and reads back from it.
type SegmentWriter interface {
	io.Closer
	SegmentReader

	// Append writes entries, whose indexes must continue the segment's,
	// and returns once they are durable. It is never called beside
	// another Append or Sealed.
	Append(entries []LogEntry) error

	// Sealed reports whether the last Append sealed the segment (wrote
	// its index frame because the file reached its size limit) and, if
	// so, the offset of the index array to record in SegmentInfo.
	Sealed() (bool, uint64, error)

	// LastIndex returns the last index made durable by Append, or zero
	// for an empty segment. Readers call it at any time, beside Append.
	LastIndex() uint64
}

// SegmentReader reads entries from one segment.
type SegmentReader interface {
	io.Closer

	// GetLog returns the encoded bytes of the entry at idx, or
	// ErrNotFound when the segment does not hold it.
	GetLog(idx uint64) (*PooledBuffer, error)
}
