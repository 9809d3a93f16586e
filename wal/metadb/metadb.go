// Package metadb is the WAL's default meta store: wal-meta.db, a bbolt
// file in the WAL's directory with two buckets, as raft-wal writes it.
// "wal-meta" holds one key, "m", whose value is the JSON encoding of
// types.PersistentState; "stable" holds the raft StableStore values,
// verbatim.
package metadb

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/quorumkit/raft/raftboltdb"
	"github.com/quorumkit/raft/wal/types"
	"go.etcd.io/bbolt"
)

const (
	// FileName is the meta database's file name inside the WAL directory.
	FileName = "wal-meta.db"

	// MetaBucket holds the segment list, StableBucket the stable values.
	MetaBucket   = "wal-meta"
	StableBucket = "stable"

	// MetaKey is the one key in MetaBucket.
	MetaKey = "m"

	// openTimeout bounds the wait for another process's lock on the file.
	openTimeout = 5 * time.Second
)

// ErrUnintialized is returned by calls made before Load opened the file.
// (The spelling is raft-wal's.)
var ErrUnintialized = errors.New("uninitialized")

var _ types.MetaStore = &BoltMetaDB{}

// BoltMetaDB implements types.MetaStore with bbolt. Its zero value is ready
// for Load.
type BoltMetaDB struct {
	mu  sync.RWMutex // guards db against Close
	dir string
	db  *bbolt.DB
}

// Load opens wal-meta.db in dir, creating it if absent, and returns the
// state last committed. It gives up with an error if another process holds
// the file for more than a few seconds.
func (m *BoltMetaDB) Load(dir string) (types.PersistentState, error) {
	var st types.PersistentState
	if err := m.open(dir); err != nil {
		return st, err
	}
	var raw []byte
	err := m.run("loading the WAL state", false, func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(MetaBucket))
		if b == nil {
			return fmt.Errorf("%w: %s has no %q bucket", types.ErrCorrupt, FileName, MetaBucket)
		}
		if tx.Bucket([]byte(StableBucket)) == nil {
			return fmt.Errorf("%w: %s has no %q bucket", types.ErrCorrupt, FileName, StableBucket)
		}
		raw = append(raw, b.Get([]byte(MetaKey))...)
		return nil
	})
	if err != nil || len(raw) == 0 {
		return st, err
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, fmt.Errorf("%w: failed to parse persisted state: %v", types.ErrCorrupt, err)
	}
	return st, nil
}

func (m *BoltMetaDB) open(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.db != nil {
		if m.dir != dir {
			return fmt.Errorf("can't load dir %s, already open in dir %s", dir, m.dir)
		}
		return nil
	}
	path := filepath.Join(dir, FileName)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := create(dir); err != nil {
			return fmt.Errorf("creating %s: %w", path, err)
		}
	} else if err != nil {
		return err
	}
	db, err := openBolt(path)
	if err != nil {
		return err
	}
	// bbolt walks the tree recursively and trusts every page id, so a
	// damaged page that points at itself would overflow the stack, a
	// crash no recover catches. Check the file while the lock bbolt took
	// keeps writers out.
	if err := raftboltdb.CheckFile(path); err != nil {
		db.Close()
		return fmt.Errorf("%w: %s: %v", types.ErrCorrupt, path, err)
	}
	m.db, m.dir = db, dir
	return nil
}

// openBolt opens an existing bbolt file, turning a panic on a damaged
// file into an error.
func openBolt(path string) (db *bbolt.DB, err error) {
	prev := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(prev)
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: opening %s: %v", types.ErrCorrupt, path, p)
		}
	}()
	db, err = bbolt.Open(path, 0o644, &bbolt.Options{Timeout: openTimeout})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("opening %s: another process holds it locked", path)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	return db, nil
}

// create makes a new meta database with both buckets under a temporary
// name and renames it into place, so that a crash never leaves a
// half-initialised wal-meta.db.
func create(dir string) error {
	tmp := filepath.Join(dir, FileName+".tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	db, err := bbolt.Open(tmp, 0o644, &bbolt.Options{Timeout: openTimeout})
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		if _, err := tx.CreateBucket([]byte(MetaBucket)); err != nil {
			return err
		}
		_, err := tx.CreateBucket([]byte(StableBucket))
		return err
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, FileName)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// run runs fn in a transaction, turning a panic or memory fault inside
// bbolt (a damaged file) into an error wrapping types.ErrCorrupt.
func (m *BoltMetaDB) run(op string, write bool, fn func(*bbolt.Tx) error) (err error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.db == nil {
		return ErrUnintialized
	}
	prev := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(prev)
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %s in %s: %v", types.ErrCorrupt, op, FileName, p)
		}
	}()
	if write {
		return m.db.Update(fn)
	}
	return m.db.View(fn)
}

// CommitState replaces the stored segment list with state, durably.
func (m *BoltMetaDB) CommitState(state types.PersistentState) error {
	raw, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("failed to encode persisted state: %w", err)
	}
	return m.run("committing the WAL state", true, func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(MetaBucket))
		if b == nil {
			return fmt.Errorf("%w: %s has no %q bucket", types.ErrCorrupt, FileName, MetaBucket)
		}
		return b.Put([]byte(MetaKey), raw)
	})
}

// GetStable returns a copy of the value stored under key, or nil if none.
func (m *BoltMetaDB) GetStable(key []byte) ([]byte, error) {
	var val []byte
	err := m.run("reading a stable value", false, func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(StableBucket))
		if b == nil {
			return fmt.Errorf("%w: %s has no %q bucket", types.ErrCorrupt, FileName, StableBucket)
		}
		if v := b.Get(key); v != nil {
			val = append(make([]byte, 0, len(v)), v...)
		}
		return nil
	})
	return val, err
}

// SetStable stores value under key, or deletes key if value is nil.
func (m *BoltMetaDB) SetStable(key, value []byte) error {
	return m.run("writing a stable value", true, func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(StableBucket))
		if b == nil {
			return fmt.Errorf("%w: %s has no %q bucket", types.ErrCorrupt, FileName, StableBucket)
		}
		if value == nil {
			return b.Delete(key)
		}
		return b.Put(key, value)
	})
}

// Close closes the file, releasing its lock. Later calls fail with
// ErrUnintialized until Load opens it again.
func (m *BoltMetaDB) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.db == nil {
		return nil
	}
	err := m.db.Close()
	m.db, m.dir = nil, ""
	return err
}
