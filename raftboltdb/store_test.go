package raftboltdb

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quorumkit/raft"
	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

func TestNewCreatesStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	s, err := NewBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v; want 0600", info.Mode().Perm())
	}
	mustStore(t, s, makeLogs(1, 3, 10))
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Exactly the two buckets of the format, no more.
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
			names = append(names, string(name))
			return nil
		})
	})
	db.Close()
	if strings.Join(names, ",") != "conf,logs" {
		t.Fatalf("buckets %q; want conf and logs", names)
	}

	s = openStoreAt(t, path, Options{})
	checkRange(t, s, 1, 3, func(i uint64) *raft.Log { return makeLogs(i, 1, 10)[0] })
	if n, err := s.GetUint64([]byte("CurrentTerm")); n != 7 || err != nil {
		t.Fatalf("GetUint64 after reopening = %d, %v", n, err)
	}
}

// Like raft-boltdb's, the store may hold gaps in its indexes: it is not a
// raft.MonotonicLogStore (raft then keeps old entries around a restored
// snapshot instead of deleting them all).
func TestNotMonotonic(t *testing.T) {
	if _, ok := any(openTestStore(t)).(raft.MonotonicLogStore); ok {
		t.Fatal("BoltStore implements raft.MonotonicLogStore")
	}
}

func TestBoltOptions(t *testing.T) {
	if got := boltOptions(nil); got.Timeout != DefaultOpenTimeout || got.FreelistType != bbolt.DefaultOptions.FreelistType {
		t.Errorf("boltOptions(nil) = %+v; want bbolt's defaults with Timeout %v", got, DefaultOpenTimeout)
	}
	given := &bbolt.Options{PageSize: 1024}
	if got := boltOptions(given); got.Timeout != DefaultOpenTimeout || got.PageSize != 1024 || given.Timeout != 0 {
		t.Errorf("boltOptions(%+v) = %+v (and changed the caller's options?)", given, got)
	}
	if got := boltOptions(&bbolt.Options{Timeout: time.Minute}); got.Timeout != time.Minute {
		t.Errorf("boltOptions kept Timeout %v; want the caller's minute", got.Timeout)
	}
}

// Options.NoSync decides, whatever BoltOptions.NoSync says, as in
// raft-boltdb.
func TestNoSyncOption(t *testing.T) {
	dir := t.TempDir()
	s := openStoreAt(t, dir+"/a.db", Options{NoSync: true})
	if !s.db.NoSync {
		t.Errorf("NoSync: true did not reach bbolt")
	}
	s = openStoreAt(t, dir+"/b.db", Options{BoltOptions: &bbolt.Options{NoSync: true, Timeout: testTimeout}})
	if s.db.NoSync {
		t.Errorf("BoltOptions.NoSync overrode Options.NoSync")
	}
	if err := s.Sync(); err != nil {
		t.Errorf("Sync: %v", err)
	}
}

// Another process holding the file makes New fail after the timeout with
// bbolt.ErrTimeout itself, as raft-boltdb does, and a log line that says
// the file is locked, instead of waiting forever. The other process
// keeps writing meanwhile: New must not read the changing file and call it
// damaged.
func TestOpenLockedByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	s, err := New(Options{Path: path, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 20000; i += 1000 {
		mustStore(t, s, makeLogs(i, 1000, 500))
	}
	s.Close()
	c := startChild(t, "hold", path)
	if !c.Lines.Scan() || c.Lines.Text() != "ready" {
		t.Fatalf("child did not open the store: %q %v", c.Lines.Text(), c.Lines.Err())
	}
	for _, readOnly := range []bool{false, true, false} {
		var logged bytes.Buffer
		_, err = New(Options{Path: path, Logger: bufferLogger(&logged),
			BoltOptions: &bbolt.Options{ReadOnly: readOnly, Timeout: 200 * time.Millisecond}})
		if err != bbolt.ErrTimeout {
			t.Fatalf("New (read-only %v) on a file another process holds = %v; want bbolt.ErrTimeout", readOnly, err)
		}
		if !strings.Contains(logged.String(), "locked") || !strings.Contains(logged.String(), path) {
			t.Fatalf("New (read-only %v) on a file another process holds logged %q; want the file and why", readOnly, logged.String())
		}
	}
	t.Logf("New: %v", err)
	c.Stdin.Close()
	if err := c.Cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	openStoreAt(t, path, Options{})
}

// A second store on the same file in this process is refused the same way.
func TestOpenLockedInProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	openStoreAt(t, path, Options{})
	_, err := New(Options{Path: path, Logger: bufferLogger(new(bytes.Buffer)), BoltOptions: &bbolt.Options{Timeout: 100 * time.Millisecond}})
	if err != bbolt.ErrTimeout || err != berrors.ErrTimeout {
		t.Fatalf("second New on an open file = %v; want bbolt.ErrTimeout itself", err)
	}
}

func TestReadOnly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "raft.db")
	s := openStoreAt(t, path, Options{})
	mustStore(t, s, makeLogs(1, 5, 20))
	s.Close()

	ro := func() Options { return Options{BoltOptions: &bbolt.Options{ReadOnly: true, Timeout: testTimeout}} }
	r := openStoreAt(t, path, ro())
	checkRange(t, r, 1, 5, func(i uint64) *raft.Log { return makeLogs(i, 1, 20)[0] })
	if err := r.StoreLog(makeLogs(6, 1, 1)[0]); err != bbolt.ErrDatabaseReadOnly {
		t.Fatalf("StoreLog on a read-only store = %v; want bbolt.ErrDatabaseReadOnly itself", err)
	}
	if err := r.SetUint64([]byte("k"), 1); err != bbolt.ErrDatabaseReadOnly {
		t.Fatalf("SetUint64 on a read-only store = %v; want bbolt.ErrDatabaseReadOnly itself", err)
	}
	if err := r.DeleteRange(1, 2); err != bbolt.ErrDatabaseReadOnly {
		t.Fatalf("DeleteRange on a read-only store = %v; want bbolt.ErrDatabaseReadOnly itself", err)
	}
	// Read-only opens share the lock.
	openStoreAt(t, path, ro())

	// A bolt database without the raft buckets is refused read-only...
	other := filepath.Join(dir, "other.db")
	db, err := bbolt.Open(other, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("kv")); return err })
	db.Close()
	opts := ro()
	opts.Path = other
	if _, err := New(opts); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"logs" bucket`) {
		t.Fatalf("read-only New on a bolt file without buckets = %v; want ErrCorrupt naming the bucket", err)
	}
	// ...and given the buckets when opened for writing, as raft-boltdb does.
	openStoreAt(t, other, Options{})

	for name, content := range map[string][]byte{"missing.db": nil, "empty.db": {}} {
		p := filepath.Join(dir, name)
		if content != nil {
			os.WriteFile(p, content, 0o600)
		}
		opts.Path = p
		if _, err := New(opts); err == nil {
			t.Errorf("read-only New on %s succeeded", name)
		} else {
			t.Logf("read-only %s: %v", name, err)
		}
	}
}
