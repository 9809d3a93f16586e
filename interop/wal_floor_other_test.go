//go:build !linux

package interop

import "os"

// floorPrepare sets f's size, as the wal package does here.
func floorPrepare(f *os.File, size int64) error { return f.Truncate(size) }

// floorSync is the sync the wal package uses here.
func floorSync(f *os.File) error { return f.Sync() }
