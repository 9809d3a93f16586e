//go:build !linux

package raft

import "os"

// startWriteback does nothing where the kernel offers no way to start
// writeback early; the fsync at Close writes everything.
func startWriteback(f *os.File, off, n int64) {}
