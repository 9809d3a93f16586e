package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/bbolt"
)

// store is one node's durable log: append writes a batch of commands
// whose first index is first and returns once they are durable. Only one
// goroutine calls it.
type store interface {
	append(first uint64, cmds [][]byte) error
	close() error
}

// openStore opens a store of the named kind in dir.
func openStore(kind, dir string) (store, error) {
	switch kind {
	case "bolt":
		return openBolt(dir)
	case "wal":
		return openFile(dir)
	case "raftboltdb":
		return openRaftBoltDB(dir)
	case "walstore":
		return openWALStore(dir)
	case "mem":
		return newMemStore(), nil
	}
	return nil, fmt.Errorf("unknown store %q (bolt, wal, mem, raftboltdb or walstore)", kind)
}

// boltStore writes a batch as raftboltdb's StoreLogs does, minus the
// entry encoding: one read-write transaction putting every command under
// its big-endian index in the "logs" bucket filled for appends, then
// bbolt's commit (its two fsyncs).
type boltStore struct{ db *bbolt.DB }

var boltBucket = []byte("logs")

func openBolt(dir string) (*boltStore, error) {
	// raftboltdb passes bbolt's default options with a lock timeout.
	opts := *bbolt.DefaultOptions
	opts.Timeout = 10 * time.Second
	db, err := bbolt.Open(filepath.Join(dir, "raft.db"), 0o600, &opts)
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(boltBucket)
		return err
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &boltStore{db: db}, nil
}

func (s *boltStore) append(first uint64, cmds [][]byte) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(boltBucket)
		b.FillPercent = 1.0 // raftboltdb's appendFillPercent
		for i, c := range cmds {
			var key [8]byte
			binary.BigEndian.PutUint64(key[:], first+uint64(i))
			if err := b.Put(key[:], c); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *boltStore) close() error { return s.db.Close() }

// fileSize is the size of each node's append-only file; writes wrap
// around to its start when they reach its end.
const fileSize = 64 << 20

// fileStore writes a batch as a one-fsync log does: the frames of all its
// commands (an 8-byte header each, the command padded to 8 bytes) and an
// 8-byte commit frame, in one write at the end of a preallocated file,
// then one fdatasync. The whole file is written with zeros and synced
// when it is opened, so no append ever pays for a block's first write
// (the wal package spreads that cost over its appends by writing zeros
// ahead): a lower bound for any such log.
type fileStore struct {
	f   *os.File
	off int64
	buf []byte
}

func openFile(dir string) (*fileStore, error) {
	f, err := os.OpenFile(filepath.Join(dir, "log"), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := prezero(f, fileSize); err != nil {
		f.Close()
		return nil, err
	}
	return &fileStore{f: f}, nil
}

// prezero preallocates f and writes it with zeros, synced.
func prezero(f *os.File, size int64) error {
	if err := reserve(f, size); err != nil {
		return err
	}
	zeros := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(zeros)) {
		if _, err := f.WriteAt(zeros, off); err != nil {
			return err
		}
	}
	return f.Sync()
}

func (s *fileStore) append(first uint64, cmds [][]byte) error {
	b := s.buf[:0]
	for _, c := range cmds {
		var h [8]byte
		binary.LittleEndian.PutUint32(h[:4], uint32(len(c)))
		h[4] = 1 // entry frame
		b = append(b, h[:]...)
		b = append(b, c...)
		for len(b)%8 != 0 {
			b = append(b, 0)
		}
	}
	var commit [8]byte
	commit[4] = 2 // commit frame
	binary.LittleEndian.PutUint32(commit[:4], uint32(len(cmds)))
	b = append(b, commit[:]...)
	s.buf = b
	if s.off+int64(len(b)) > fileSize {
		s.off = 0
	}
	if _, err := s.f.WriteAt(b, s.off); err != nil {
		return err
	}
	s.off += int64(len(b))
	_ = first
	return datasync(s.f)
}

func (s *fileStore) close() error { return s.f.Close() }

// memRing is how many commands a memStore keeps.
const memRing = 1 << 16

// memStore keeps the commands in memory, as the side-by-side benchmark's
// "mem" cells do (both libraries' InmemStore), with nothing durable: the
// floor it gives is the network and the hand-offs alone. It copies each
// command into a ring of reused buffers, so it allocates less than any
// store that keeps every entry: a lower bound again.
type memStore struct {
	ring [][]byte
	next int
}

func newMemStore() *memStore { return &memStore{ring: make([][]byte, memRing)} }

func (s *memStore) append(first uint64, cmds [][]byte) error {
	for _, c := range cmds {
		s.ring[s.next] = append(s.ring[s.next][:0], c...)
		s.next = (s.next + 1) % memRing
	}
	_ = first
	return nil
}

func (s *memStore) close() error { return nil }
