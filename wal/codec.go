package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/quorumkit/raft"
)

const (
	// FirstExternalCodecID is the lowest ID a codec from outside this
	// package may use; lower IDs are reserved.
	FirstExternalCodecID = 1 << 16

	// CodecBinaryV1 identifies BinaryCodec's encoding in segment headers
	// and metadata.
	CodecBinaryV1 uint64 = iota
)

// Codec turns log entries into bytes and back. A custom codec can add
// compression or encryption; its ID is stored with every segment and must
// identify the encoding for the life of the log.
type Codec interface {
	// ID identifies the encoding. External codecs use IDs from
	// FirstExternalCodecID up.
	ID() uint64

	// Encode writes l's encoding to w.
	Encode(l *raft.Log, w io.Writer) error

	// Decode fills l from an encoding. l must not keep references to the
	// input, which the caller may reuse.
	Decode([]byte, *raft.Log) error
}

// BinaryCodec is the default codec, byte for byte raft-wal's: the fields
// Index, Term and Type as unsigned varints; Data and Extensions each as a
// varint length and the bytes; AppendedAt as time.MarshalBinary's form,
// which ends the encoding.
type BinaryCodec struct{}

// ID returns CodecBinaryV1.
func (c *BinaryCodec) ID() uint64 { return CodecBinaryV1 }

// Encode writes l's encoding to w in one Write.
func (c *BinaryCodec) Encode(l *raft.Log, w io.Writer) error {
	b, err := appendLog(nil, l)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// Decode fills l from bs, copying Data and Extensions out of bs.
func (c *BinaryCodec) Decode(bs []byte, l *raft.Log) error {
	return decodeLog(bs, l, true)
}

// appendLog appends l's encoding to dst.
func appendLog(dst []byte, l *raft.Log) ([]byte, error) {
	dst = binary.AppendUvarint(dst, l.Index)
	dst = binary.AppendUvarint(dst, l.Term)
	dst = binary.AppendUvarint(dst, uint64(l.Type))
	dst = binary.AppendUvarint(dst, uint64(len(l.Data)))
	dst = append(dst, l.Data...)
	dst = binary.AppendUvarint(dst, uint64(len(l.Extensions)))
	dst = append(dst, l.Extensions...)
	return l.AppendedAt.AppendBinary(dst)
}

var errShortEntry = errors.New("entry encoding ends early")

// decodeLog fills l from bs. With copyBytes false, Data and Extensions
// point into bs, which the caller then hands over to l.
func decodeLog(bs []byte, l *raft.Log, copyBytes bool) error {
	d := decoder{buf: bs}
	l.Index = d.uvarint()
	l.Term = d.uvarint()
	typ := d.uvarint()
	l.Data = d.bytes(copyBytes)
	l.Extensions = d.bytes(copyBytes)
	if d.err != nil {
		return d.err
	}
	if typ > 255 {
		return fmt.Errorf("entry type %d does not fit raft.LogType", typ)
	}
	l.Type = raft.LogType(typ)
	var t time.Time
	if err := t.UnmarshalBinary(d.buf); err != nil {
		return fmt.Errorf("entry time: %w", err)
	}
	l.AppendedAt = t
	return nil
}

type decoder struct {
	buf []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.err = errShortEntry
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) bytes(copyBytes bool) []byte {
	n := d.uvarint()
	if d.err != nil || n == 0 {
		return nil
	}
	if n > uint64(len(d.buf)) {
		d.err = errShortEntry
		return nil
	}
	b := d.buf[:n:n]
	d.buf = d.buf[n:]
	if copyBytes {
		return append([]byte(nil), b...)
	}
	return b
}
