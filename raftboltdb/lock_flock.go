//go:build !windows && !plan9 && !solaris && !aix && !android

package raftboltdb

import (
	"errors"
	"os"
	"syscall"
	"time"

	berrors "go.etcd.io/bbolt/errors"
)

// lockRetry is how often lockShared tries again, as bbolt does.
const lockRetry = 50 * time.Millisecond

// lockShared takes a shared flock on f, the lock bbolt takes for a
// read-only open, so that the checker never reads a file that another
// process is writing (bbolt holds an exclusive lock while a store is open
// for writing). It gives up with bbolt's errors.ErrTimeout after timeout.
// Closing f releases the lock.
func lockShared(f *os.File, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return err
		}
		if time.Now().After(deadline) {
			return berrors.ErrTimeout
		}
		time.Sleep(lockRetry)
	}
}
