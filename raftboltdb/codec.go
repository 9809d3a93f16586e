package raftboltdb

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/quorumkit/raft"
)

// Log entries are stored as msgpack maps with go-msgpack's default
// settings, exactly as raft-boltdb/v2 stores them, so that either library
// reads the other's files. The only setting that varies is how AppendedAt
// is written: by default as the 15-byte time.MarshalBinary form
// (TimeNotBuiltin), with Options.MsgpackUseNewTimeFormat as the msgpack
// timestamp extension. The decoder accepts both.
//
// Handles are built once and shared: they cache per-type encoding plans, so
// building one per call (as the reference does) is slow. Encoders and
// decoders are pooled for the same reason.
var (
	legacyTimeHandle = &codec.MsgpackHandle{BasicHandle: codec.BasicHandle{TimeNotBuiltin: true}}
	newTimeHandle    = &codec.MsgpackHandle{}
	decodeHandle     = &codec.MsgpackHandle{}

	legacyTimeBatches = batchPool(legacyTimeHandle)
	newTimeBatches    = batchPool(newTimeHandle)

	decoders = sync.Pool{New: func() any { return codec.NewDecoderBytes(noBytes, decodeHandle) }}
)

// noBytes resets a pooled decoder so that it keeps no reference to the
// memory map (go-msgpack ignores a nil slice there).
var noBytes = []byte{}

// maxPooledBatch is the largest encoded batch whose buffer goes back to
// the pool; a rare huge batch should not pin its memory forever.
const maxPooledBatch = 4 << 20

// batch holds a StoreLogs call's entries encoded: keys and values each in
// one buffer, so a batch costs a few allocations, not a few per entry.
// bbolt keeps the key and value slices given to Put until the transaction
// ends, so a batch goes back to its pool only after that.
type batch struct {
	pool *sync.Pool
	enc  *codec.Encoder
	keys []byte // 8-byte big-endian index per entry
	vals []byte // encoded entries, back to back
	ends []int  // ends[i] is where entry i's value ends in vals
}

func batchPool(h *codec.MsgpackHandle) *sync.Pool {
	p := &sync.Pool{}
	p.New = func() any {
		var out []byte
		return &batch{pool: p, enc: codec.NewEncoderBytes(&out, h)}
	}
	return p
}

// encodeBatch encodes logs for storing. The caller must release the batch.
func encodeBatch(logs []*raft.Log, useNewTimeFormat bool) (*batch, error) {
	pool := legacyTimeBatches
	if useNewTimeFormat {
		pool = newTimeBatches
	}
	b := pool.Get().(*batch)
	b.keys, b.vals, b.ends = b.keys[:0], b.vals[:0], b.ends[:0]
	b.enc.ResetBytes(&b.vals)
	for i, l := range logs {
		if l == nil {
			b.release()
			return nil, fmt.Errorf("raftboltdb: store logs: entry %d of the batch is nil", i)
		}
		if err := b.enc.Encode(l); err != nil {
			b.release()
			return nil, fmt.Errorf("raftboltdb: encode log %d: %w", l.Index, err)
		}
		b.keys = binary.BigEndian.AppendUint64(b.keys, l.Index)
		b.ends = append(b.ends, len(b.vals))
	}
	return b, nil
}

// len returns the number of entries in the batch.
func (b *batch) len() int { return len(b.ends) }

// entry returns the key and value of entry i.
func (b *batch) entry(i int) (key, val []byte) {
	start := 0
	if i > 0 {
		start = b.ends[i-1]
	}
	return b.keys[8*i : 8*i+8], b.vals[start:b.ends[i]]
}

// release returns the batch to its pool.
func (b *batch) release() {
	if cap(b.vals) > maxPooledBatch {
		return
	}
	b.pool.Put(b)
}

// decodeLog decodes the value stored under index into out, which it first
// resets: go-msgpack would otherwise decode Data and Extensions into the
// caller's old slices when they are large enough, and keep fields the value
// lacks. val may be memory-mapped: go-msgpack copies every byte slice it
// decodes (Data and Extensions; times are parsed, not kept), so out never
// points into val and stays valid after the read transaction ends.
func decodeLog(index uint64, val []byte, out *raft.Log) (err error) {
	dec := decoders.Get().(*codec.Decoder)
	defer func() {
		// go-msgpack turns its own panics into errors; this catches the
		// rest (and a fault on a damaged map), and drops the decoder.
		if p := recover(); p != nil {
			err = fmt.Errorf("the entry cannot be decoded: %v: %w", p, ErrCorrupt)
		}
	}()
	*out = raft.Log{}
	dec.ResetBytes(val)
	err = dec.Decode(out)
	dec.ResetBytes(noBytes)
	decoders.Put(dec)
	if err != nil {
		return fmt.Errorf("the entry cannot be decoded: %w (%w)", err, ErrCorrupt)
	}
	if out.Index != index {
		return fmt.Errorf("the entry stored under index %d says it is index %d: %w", index, out.Index, ErrCorrupt)
	}
	return nil
}
