//go:build linux

package interop

import (
	"os"
	"syscall"
)

// floorPrepare reserves size bytes for f as the wal package does on
// Linux (fallocate), so the floor's file starts out the same way.
func floorPrepare(f *os.File, size int64) error {
	return syscall.Fallocate(int(f.Fd()), 0, 0, size)
}

// floorSync is the data sync the wal package uses on Linux.
func floorSync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
