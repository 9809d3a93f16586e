package raftboltdb

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"testing"

	"github.com/quorumkit/raft/internal/storetest"
	"go.etcd.io/bbolt"
)

// Some tests need a second process: one that holds the file lock, one that
// is killed while writing, one that shows what bbolt does to a damaged file
// without the checker. They re-execute this test binary with childEnv set
// to the child's role; TestMain then runs that role instead of the tests.
const (
	childEnv     = "RAFTBOLTDB_TEST_CHILD"
	childPathEnv = "RAFTBOLTDB_TEST_PATH"
	childSeedEnv = "RAFTBOLTDB_TEST_SEED"
	childLogEnv  = "RAFTBOLTDB_TEST_LOG"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(runChild(role, os.Getenv(childPathEnv)))
	}
	os.Exit(m.Run())
}

// runChild runs a child role and returns its exit code.
func runChild(role, path string) int {
	var err error
	switch role {
	case "hold":
		err = childHold(path)
	case "crash":
		err = childCrashWriter(path, os.Getenv(childSeedEnv), os.Getenv(childLogEnv))
	case "bbolt-unchecked":
		err = childUncheckedRead(path)
	default:
		err = fmt.Errorf("unknown child role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// childHold opens the store, says "ready", and keeps appending to it
// until its standard input is closed.
func childHold(path string) error {
	// Without fsyncs it rewrites pages as fast as it can: the worst case
	// for a reader that ignored its lock.
	s, err := New(Options{Path: path, NoSync: true})
	if err != nil {
		return err
	}
	stdinClosed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stdinClosed)
	}()
	fmt.Println("ready")
	for next := uint64(20001); ; next += 10 {
		select {
		case <-stdinClosed:
			return s.Close()
		default:
		}
		if err := s.StoreLogs(makeLogs(next, 10, 500)); err != nil {
			return err
		}
		if next > 20000 {
			if err := s.DeleteRange(next-20000, next-19990); err != nil {
				return err
			}
		}
	}
}

// startChild starts this test binary in a child role on path
// (storetest.StartChild). The child is killed, if still running, when the
// test ends.
func startChild(t testing.TB, role, path string) *storetest.Child {
	t.Helper()
	return storetest.StartChild(t, os.Stderr, childEnv+"="+role, childPathEnv+"="+path)
}

// childUncheckedRead opens path with bbolt alone, skipping the checker,
// and looks up the first log entry.
func childUncheckedRead(path string) error {
	debug.SetMaxStack(16 << 20) // overflow in moments, not after a gigabyte
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: testTimeout})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error {
		tx.Bucket(bucketLogs).Get([]byte{0, 0, 0, 0, 0, 0, 0, 1})
		return nil
	})
}
