//go:build !amd64

package raft

// crcFoldAvailable is false: only amd64 folds (snapshot_crc_amd64.s).
const crcFoldAvailable = false

// crcFold is never called where crcFoldAvailable is false.
func crcFold(state uint64, p []byte, k *[4]uint64) (lo, hi uint64) {
	panic("raft: crcFold without carry-less multiplication")
}
