//go:build !linux

package main

import (
	"os"
	"time"
)

// reserve sets the file's size where fallocate is not available.
func reserve(f *os.File, size int64) error { return f.Truncate(size) }

// datasync falls back to a full sync.
func datasync(f *os.File) error { return f.Sync() }

// processCPU is not measured here.
func processCPU() time.Duration { return 0 }
