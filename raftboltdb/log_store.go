package raftboltdb

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	metrics "github.com/hashicorp/go-metrics"
	"github.com/quorumkit/raft"
	"go.etcd.io/bbolt"
)

// appendFillPercent is how full bbolt packs a page of the logs bucket when
// it splits one. bbolt's default, half full, suits random inserts; raft
// only ever appends past the last index (after truncating a conflicting
// suffix, it appends again), so full pages halve the file and the pages
// each commit writes. It changes how pages are filled, not the format.
const appendFillPercent = 1.0

// FirstIndex returns the lowest index stored, or 0 when the log is empty.
func (b *BoltStore) FirstIndex() (uint64, error) {
	return b.edgeIndex("first index", (*bbolt.Cursor).First)
}

// LastIndex returns the highest index stored, or 0 when the log is empty.
func (b *BoltStore) LastIndex() (uint64, error) {
	return b.edgeIndex("last index", (*bbolt.Cursor).Last)
}

// edgeIndex returns the index of the key the cursor move lands on.
func (b *BoltStore) edgeIndex(op string, move func(*bbolt.Cursor) ([]byte, []byte)) (uint64, error) {
	var index uint64
	err := b.view(op, func(tx *bbolt.Tx) error {
		key, _ := move(tx.Bucket(bucketLogs).Cursor())
		if key == nil {
			return nil
		}
		var err error
		index, err = keyIndex(key)
		return err
	})
	if err != nil {
		return 0, withContext(b.logger, err, fmt.Errorf("raftboltdb: %s: %w", op, err))
	}
	return index, nil
}

// GetLog fills log with the entry at index idx, or returns
// raft.ErrLogNotFound (unwrapped) when there is none. An entry that cannot
// be decoded is an error wrapping ErrCorrupt that names its index. The
// entry is decoded straight from the memory-mapped file; log shares no
// memory with the file.
func (b *BoltStore) GetLog(idx uint64, log *raft.Log) error {
	defer metrics.MeasureSince(metricGetLog, time.Now())
	var key [8]byte
	binary.BigEndian.PutUint64(key[:], idx)
	err := b.view("get log", func(tx *bbolt.Tx) error {
		val := tx.Bucket(bucketLogs).Get(key[:])
		if val == nil {
			return raft.ErrLogNotFound
		}
		return decodeLog(idx, val, log)
	})
	if err == raft.ErrLogNotFound {
		return err
	}
	if err != nil {
		return withContext(b.logger, err, fmt.Errorf("raftboltdb: get log %d: %w", idx, err))
	}
	return nil
}

// StoreLog stores one entry; see StoreLogs.
func (b *BoltStore) StoreLog(log *raft.Log) error {
	return b.StoreLogs([]*raft.Log{log})
}

// StoreLogs stores the entries under their indexes, replacing any entry
// already there. The batch is one transaction: when StoreLogs returns nil
// all of it is on disk (fsynced unless Options.NoSync); after an error, or
// a crash at any moment, either all of it is there or none. Entries are
// encoded before the write lock is taken.
func (b *BoltStore) StoreLogs(logs []*raft.Log) error {
	start := time.Now()
	if len(logs) == 0 {
		return nil
	}
	enc, err := encodeBatch(logs, b.useNewTimeFormat)
	if err != nil {
		return err
	}
	defer enc.release()
	err = b.update("store logs", func(tx *bbolt.Tx) error {
		bucket := tx.Bucket(bucketLogs)
		bucket.FillPercent = appendFillPercent
		for i := 0; i < enc.len(); i++ {
			key, val := enc.entry(i)
			if err := bucket.Put(key, val); err != nil {
				return fmt.Errorf("put log %d: %w", logs[i].Index, err)
			}
		}
		return nil
	})
	metrics.MeasureSince(metricStoreLogs, start)
	if err != nil {
		return withContext(b.logger, err, fmt.Errorf("raftboltdb: store %d logs from index %d: %w", len(logs), logs[0].Index, err))
	}
	emitBatchMetrics(enc, time.Since(start))
	return nil
}

// DeleteRange deletes the entries from min to max, both included, in one
// transaction. Indexes in the range that hold no entry are skipped.
func (b *BoltStore) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	var minKey, maxKey [8]byte
	binary.BigEndian.PutUint64(minKey[:], min)
	binary.BigEndian.PutUint64(maxKey[:], max)
	err := b.update("delete range", func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketLogs).Cursor()
		for key, _ := c.Seek(minKey[:]); key != nil; key, _ = c.Next() {
			if _, err := keyIndex(key); err != nil {
				return err
			}
			if bytes.Compare(key, maxKey[:]) > 0 {
				break
			}
			if err := c.Delete(); err != nil {
				return fmt.Errorf("delete log %d: %w", binary.BigEndian.Uint64(key), err)
			}
		}
		return nil
	})
	if err != nil {
		return withContext(b.logger, err, fmt.Errorf("raftboltdb: delete logs %d to %d: %w", min, max, err))
	}
	return nil
}

// keyIndex decodes a key of the logs bucket.
func keyIndex(key []byte) (uint64, error) {
	if len(key) != 8 {
		return 0, fmt.Errorf("the logs bucket holds a key of %d bytes; index keys have 8: %w", len(key), ErrCorrupt)
	}
	return binary.BigEndian.Uint64(key), nil
}
