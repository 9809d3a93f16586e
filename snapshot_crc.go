package raft

import (
	"encoding/binary"
	"hash"
	"hash/crc64"
)

// The snapshot checksum is CRC-64 with the ECMA polynomial, as hash/crc64
// computes it with crc64.MakeTable(crc64.ECMA): the value meta.json records
// (file_snapshot.go). A snapshot install hashes every byte at least twice,
// on the leader as it sends and on the follower as it stores, so on amd64
// the bulk of each write is folded with carry-less multiplication
// (snapshot_crc_amd64.s), many times faster than the table hash/crc64
// uses; the result is the same number (snapshot_crc_test.go checks it
// against hash/crc64 for every length up to a few blocks and for random
// data).
//
// The folding works on the message as a polynomial over GF(2), byte 0's
// lowest bit being its highest coefficient, as a reflected CRC reads it.
// Four 16-byte accumulators each hold a residue of their lane; one step
// replaces an accumulator A = H·x^64 + L by
//
//	H·(x^(d+63) mod P)·x + L·(x^(d-1) mod P)·x + B
//
// which is congruent to A·x^d + B modulo the CRC polynomial P, where B is
// the lane's next block and d the distance between the lane's blocks (512
// bits). A carry-less product of two bit-reversed 64-bit numbers is the
// bit-reversed product times x, hence the exponents one lower. At the end
// the lanes are folded into one 16-byte residue, whose CRC is the CRC of
// everything folded, and the table finishes from there.

// crc64ECMANormal is the ECMA-182 polynomial without its x^64 term, in
// the normal (most significant bit first) order; crc64.ECMA is the same
// polynomial bit-reversed.
const crc64ECMANormal = 0x42F0E1EBA9EA3693

// crcFoldBlock is the block the folding consumes at once: four lanes of
// 16 bytes. Writes shorter than crcFoldMin go through the table only.
const (
	crcFoldBlock = 64
	crcFoldMin   = 2 * crcFoldBlock
)

// crcFoldConsts holds, bit-reversed, x^(512+63), x^(512-1), x^(128+63)
// and x^(128-1), each modulo the polynomial: the multipliers that move a
// lane's high and low halves 512 bits on, and then 128 bits when the four
// lanes are combined.
var crcFoldConsts = [4]uint64{
	reverseBits64(xPowModECMA(512 + 63)), reverseBits64(xPowModECMA(512 - 1)),
	reverseBits64(xPowModECMA(128 + 63)), reverseBits64(xPowModECMA(128 - 1)),
}

// xPowModECMA returns x^n modulo the ECMA polynomial, in normal order.
func xPowModECMA(n int) uint64 {
	r := uint64(1)
	for range n {
		carry := r >> 63
		r <<= 1
		if carry != 0 {
			r ^= crc64ECMANormal
		}
	}
	return r
}

// reverseBits64 reverses the order of v's bits.
func reverseBits64(v uint64) uint64 {
	var r uint64
	for i := 0; i < 64; i++ {
		r = r<<1 | v&1
		v >>= 1
	}
	return r
}

// updateSnapshotCRC returns crc updated with p, as
// crc64.Update(crc, snapshotCRCTable, p) does.
func updateSnapshotCRC(crc uint64, p []byte) uint64 {
	if crcFoldAvailable && len(p) >= crcFoldMin {
		n := len(p) &^ (crcFoldBlock - 1)
		// The register, complemented as crc64.Update complements it,
		// joins the first eight bytes of the message.
		lo, hi := crcFold(^crc, p[:n], &crcFoldConsts)
		var rest [16]byte
		binary.LittleEndian.PutUint64(rest[:8], lo)
		binary.LittleEndian.PutUint64(rest[8:], hi)
		// The residue's CRC from a zero register is the register after
		// everything folded; complemented, it is crc64.Update's result.
		crc = crc64.Update(^uint64(0), snapshotCRCTable, rest[:])
		p = p[n:]
	}
	return crc64.Update(crc, snapshotCRCTable, p)
}

// snapshotCRC is the hash.Hash64 of the snapshot checksum: crc64.New with
// the ECMA table, computed by updateSnapshotCRC.
type snapshotCRC struct{ crc uint64 }

var _ hash.Hash64 = (*snapshotCRC)(nil)

// newSnapshotHash returns a hash of the snapshot checksum, at zero.
func newSnapshotHash() hash.Hash64 { return &snapshotCRC{} }

func (d *snapshotCRC) Write(p []byte) (int, error) {
	d.crc = updateSnapshotCRC(d.crc, p)
	return len(p), nil
}

// Sum appends the checksum in big-endian order, as hash/crc64 does.
func (d *snapshotCRC) Sum(b []byte) []byte { return binary.BigEndian.AppendUint64(b, d.crc) }
func (d *snapshotCRC) Sum64() uint64       { return d.crc }
func (d *snapshotCRC) Reset()              { d.crc = 0 }
func (d *snapshotCRC) Size() int           { return crc64.Size }
func (d *snapshotCRC) BlockSize() int      { return 1 }
