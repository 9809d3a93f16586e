package raft

// crcFoldAvailable says the processor has PCLMULQDQ (CPUID leaf 1, ECX
// bit 1), which crcFold needs.
var crcFoldAvailable = cpuidLeaf1ECX()&(1<<1) != 0

// crcFold folds p, whose length is a positive multiple of crcFoldBlock,
// with state XORed into its first eight bytes, into a 16-byte residue
// returned as its little-endian halves (see snapshot_crc.go).
//
//go:noescape
func crcFold(state uint64, p []byte, k *[4]uint64) (lo, hi uint64)

// cpuidLeaf1ECX returns ECX of CPUID leaf 1, the feature flags.
func cpuidLeaf1ECX() uint32
