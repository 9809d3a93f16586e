package raftboltdb

import (
	"encoding/binary"
	"fmt"

	"go.etcd.io/bbolt"
)

// Set stores the value v under the key k in the conf bucket, durably
// (fsynced unless Options.NoSync) before it returns. bbolt refuses an empty
// key.
func (b *BoltStore) Set(k, v []byte) error {
	err := b.update("set", func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketConf).Put(k, v)
	})
	if err != nil {
		return withContext(b.logger, err, fmt.Errorf("raftboltdb: set %q: %w", k, err))
	}
	return nil
}

// Get returns a copy of the value stored under the key k, or
// ErrKeyNotFound (unwrapped, text "not found") when it was never set.
func (b *BoltStore) Get(k []byte) ([]byte, error) {
	var val []byte
	err := b.view("get", func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketConf).Get(k)
		if v == nil {
			return ErrKeyNotFound
		}
		val = append([]byte(nil), v...)
		return nil
	})
	if err == ErrKeyNotFound {
		return nil, err
	}
	if err != nil {
		return nil, withContext(b.logger, err, fmt.Errorf("raftboltdb: get %q: %w", k, err))
	}
	return val, nil
}

// SetUint64 stores val under key as 8 big-endian bytes.
func (b *BoltStore) SetUint64(key []byte, val uint64) error {
	return b.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns the number stored under key by SetUint64, or 0 and
// ErrKeyNotFound (unwrapped) when the key was never set. A value that is
// not 8 bytes long is an error wrapping ErrCorrupt.
func (b *BoltStore) GetUint64(key []byte) (uint64, error) {
	val, err := b.Get(key)
	if err != nil {
		return 0, err
	}
	if len(val) != 8 {
		return 0, fmt.Errorf("raftboltdb: get %q: the value is %d bytes, not the 8 of a number: %w", key, len(val), ErrCorrupt)
	}
	return binary.BigEndian.Uint64(val), nil
}
