package raftboltdb

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/quorumkit/raft"
	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// DefaultOpenTimeout is how long New waits for the file lock when the
// caller's BoltOptions sets no Timeout. bbolt locks the file for the whole
// time a store is open, so the lock is held by another process using the
// same file (or by another store in this process). raft-boltdb waits
// forever in that case; New gives up and says so, because a node hanging
// silently at start-up is harder to diagnose than one that fails.
const DefaultOpenTimeout = 10 * time.Second

// dbFileMode is the mode of a newly created file, as in raft-boltdb.
const dbFileMode = 0o600

// The two buckets of the file format: log entries and stable values.
var (
	bucketLogs = []byte("logs")
	bucketConf = []byte("conf")
)

var (
	_ raft.LogStore    = (*BoltStore)(nil)
	_ raft.StableStore = (*BoltStore)(nil)
)

// BoltStore is a raft.LogStore and raft.StableStore kept in one bbolt file,
// in the format of github.com/hashicorp/raft-boltdb/v2. It is safe for
// concurrent use: reads run in parallel, writes one at a time.
type BoltStore struct {
	db   *bbolt.DB
	path string

	// useNewTimeFormat is Options.MsgpackUseNewTimeFormat.
	useNewTimeFormat bool

	// logger receives the context of errors returned as bare bbolt
	// sentinels (sentinel.go).
	logger hclog.Logger

	// failed holds the error that stopped the store after bbolt panicked or
	// faulted; once set, every call but Close returns it (see guard.go).
	failed atomic.Pointer[error]
}

// Options says how New opens a store.
type Options struct {
	// Path is the file holding the store. It is created (mode 0600) when
	// missing, unless BoltOptions asks for read-only access.
	Path string

	// BoltOptions is passed to bbolt.Open; nil means bbolt's defaults. With
	// ReadOnly set, the store only reads, and New refuses a file that lacks
	// the raft buckets instead of creating them. A zero Timeout is replaced
	// by DefaultOpenTimeout. NoSync here is ignored: Options.NoSync decides.
	BoltOptions *bbolt.Options

	// NoSync skips the fsync after each write. Writes are then lost, and
	// the file may be damaged, if the machine (not just the process) stops
	// before the operating system writes them out. Call Sync to flush.
	NoSync bool

	// MsgpackUseNewTimeFormat writes Log.AppendedAt as msgpack's timestamp
	// extension instead of the 15-byte time.MarshalBinary form that
	// raft-boltdb writes by default. Reading accepts both forms either way;
	// only readers built on go-msgpack older than v2.1.0 need the default.
	MsgpackUseNewTimeFormat bool

	// Logger receives the context of an error returned as bbolt's own value
	// (bbolt.ErrTimeout, bbolt.ErrDatabaseReadOnly and bbolt's other
	// sentinels are returned unwrapped, as raft-boltdb does, so callers can
	// compare with ==). Nil means hclog's default logger.
	Logger hclog.Logger
}

// NewBoltStore opens (or creates) the store at path with default options.
func NewBoltStore(path string) (*BoltStore, error) {
	return New(Options{Path: path})
}

// New opens (or creates) a store. Before bbolt reads an existing file, New
// checks it (see the package documentation): a damaged file, or one that is
// not a bolt database, is refused with an error wrapping ErrCorrupt instead
// of crashing the process. If another process holds the file, New waits for
// the lock up to BoltOptions.Timeout (DefaultOpenTimeout when zero) and then
// fails with bbolt.ErrTimeout itself (the file's name and the wait go to the
// log).
func New(options Options) (*BoltStore, error) {
	logger := storeLogger(options.Logger)
	bo := boltOptions(options.BoltOptions)
	checked, err := checkFile(options.Path, bo.ReadOnly, func(f *os.File) error { return lockShared(f, bo.Timeout) })
	if err != nil {
		return nil, openError(logger, options.Path, bo, err)
	}
	b := &BoltStore{path: options.Path, useNewTimeFormat: options.MsgpackUseNewTimeFormat, logger: logger}
	err = b.guard("open", func() error {
		db, err := bbolt.Open(options.Path, dbFileMode, bo)
		b.db = db
		return err
	})
	if err != nil {
		return nil, openError(logger, options.Path, bo, err)
	}
	b.db.NoSync = options.NoSync
	if err := b.prepare(checked, bo.ReadOnly); err != nil {
		b.db.Close()
		return nil, openError(logger, options.Path, bo, err)
	}
	return b, nil
}

// openError explains why New failed, naming the file. A lock timeout says
// that another process holds the file. A bbolt sentinel is returned bare,
// with the explanation logged (sentinel.go).
func openError(logger hclog.Logger, path string, bo *bbolt.Options, err error) error {
	var wrapped error
	if errors.Is(err, berrors.ErrTimeout) {
		wrapped = fmt.Errorf("raftboltdb: open %s: the file is locked by another process or store; gave up after %v: %w", path, bo.Timeout, err)
	} else {
		wrapped = fmt.Errorf("raftboltdb: open %s: %w", path, err)
	}
	return withContext(logger, err, wrapped)
}

// boltOptions returns a copy of the caller's options (never changed in
// place) with the defaults New applies.
func boltOptions(given *bbolt.Options) *bbolt.Options {
	bo := *bbolt.DefaultOptions
	if given != nil {
		bo = *given
	}
	if bo.Timeout == 0 {
		bo.Timeout = DefaultOpenTimeout
	}
	return &bo
}

// prepare finishes opening: it confirms that bbolt opened the state the
// checker passed, then creates the buckets (or, read-only, requires them).
func (b *BoltStore) prepare(checked *fileState, readOnly bool) error {
	opened, err := b.currentState()
	if err != nil {
		return err
	}
	if checked == nil || *checked != opened {
		// The file was created, or changed by another process, between the
		// check and bbolt's lock. Check what is there now, under bbolt's
		// lock (taking another would wait for ourselves).
		if checked, err = checkFile(b.path, readOnly, nil); err != nil {
			return err
		}
		if checked == nil || *checked != opened {
			return corruptf("bbolt opened a state (%+v) other than the one checked (%+v)", opened, checked)
		}
	}
	if !readOnly {
		err := b.update("create buckets", func(tx *bbolt.Tx) error {
			for _, name := range [][]byte{bucketLogs, bucketConf} {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return fmt.Errorf("bucket %q: %w", name, err)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("create buckets: %w", err)
		}
	}
	return b.view("find buckets", func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketLogs, bucketConf} {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("the bolt database has no %q bucket, so it is not a raft log store: %w", name, ErrCorrupt)
			}
		}
		return nil
	})
}

// currentState describes the meta page bbolt is using, in checker terms.
func (b *BoltStore) currentState() (fileState, error) {
	var s fileState
	err := b.view("read meta", func(tx *bbolt.Tx) error {
		s.pageSize = b.db.Info().PageSize
		s.txid = uint64(tx.ID())
		s.pgid = uint64(tx.Size()) / uint64(s.pageSize)
		return nil
	})
	return s, err
}

// closeWait bounds how long Close waits for bbolt once the store has
// failed (see guard.go).
var closeWait = 5 * time.Second

// Close closes the file. It waits for reads in progress to finish. The
// store must not be used afterwards.
//
// After a failure that stopped the store, bbolt may have been interrupted
// while holding its own locks, and closing it would then wait forever. So
// Close waits at most a few seconds in that case and then returns an error:
// the file stays open, and locked, until the process exits.
func (b *BoltStore) Close() error {
	if b.failed.Load() == nil {
		return b.closeDB()
	}
	done := make(chan error, 1) // closeDB's result; buffered so it never blocks
	go func() { done <- b.closeDB() }()
	select {
	case err := <-done:
		return err
	case <-time.After(closeWait):
		return fmt.Errorf("raftboltdb: close %s: bbolt did not let go of its locks after the failure that stopped the store; the file stays open until the process exits", b.path)
	}
}

func (b *BoltStore) closeDB() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("raftboltdb: close %s: bbolt panicked: %v", b.path, p)
		}
	}()
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("raftboltdb: close %s: %w", b.path, err)
	}
	return nil
}

// Sync flushes the file to stable storage. Every write already does this
// unless Options.NoSync is set.
func (b *BoltStore) Sync() error {
	if err := b.db.Sync(); err != nil {
		return fmt.Errorf("raftboltdb: sync %s: %w", b.path, err)
	}
	return nil
}

// Stats returns bbolt's counters for the file: free pages, transactions,
// and the work its writes have done. RunMetrics publishes them.
func (b *BoltStore) Stats() bbolt.Stats {
	return b.db.Stats()
}
