//go:build !linux

package fs

import "os"

// preallocate sets f's size; the file is sparse where the system allows.
func preallocate(f *os.File, size int64) error { return f.Truncate(size) }

// datasync flushes f with a full sync.
func datasync(f *os.File) error { return f.Sync() }
