//go:build linux

package fs

import (
	"errors"
	"os"
	"syscall"
)

// preallocate reserves size bytes for f, extending it. Where fallocate is
// not supported it falls back to setting the size, which leaves a sparse
// file that reads as zeros.
func preallocate(f *os.File, size int64) error {
	for {
		err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.ENOSYS):
			return f.Truncate(size)
		default:
			return err
		}
	}
}

// datasync flushes f's data and the metadata needed to read it back.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
