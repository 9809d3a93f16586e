package raft

import (
	"os"
	"syscall"
)

// startWriteback asks the kernel to start writing n bytes of f from off
// to disk, without waiting for it. The fsync that finishes the snapshot
// then has little left to do: the disk works while the rest of the
// snapshot is still arriving, instead of all at the end. Failures are
// ignored, since the fsync reports anything that matters.
func startWriteback(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = syscall.SyncFileRange(int(fd), off, n, syncFileRangeWrite)
	})
}

// syncFileRangeWrite is SYNC_FILE_RANGE_WRITE: start writeback of the
// range's dirty pages, do not wait.
const syncFileRangeWrite = 0x2
