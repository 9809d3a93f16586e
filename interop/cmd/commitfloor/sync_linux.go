//go:build linux

package main

import (
	"os"
	"syscall"
	"time"
)

// reserve preallocates size bytes for f, as the wal package does on Linux.
func reserve(f *os.File, size int64) error {
	return syscall.Fallocate(int(f.Fd()), 0, 0, size)
}

// datasync is the data-only sync the wal package uses on Linux.
func datasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }

// processCPU is the process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
