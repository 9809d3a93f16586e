package raft

import (
	"hash/crc64"
	"math/rand/v2"
	"testing"
)

// TestSnapshotCRCMatchesHashCRC64 checks updateSnapshotCRC against
// hash/crc64 with the ECMA table: every length up to a few fold blocks,
// from several starting values, and splits of one message into writes of
// random sizes, whose result must not depend on the split.
func TestSnapshotCRCMatchesHashCRC64(t *testing.T) {
	if !crcFoldAvailable {
		t.Log("no carry-less multiplication here: only the table path is checked")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 8*crcFoldBlock+7)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, start := range []uint64{0, 1, ^uint64(0), 0x0123456789abcdef} {
		for n := 0; n <= len(data); n++ {
			want := crc64.Update(start, snapshotCRCTable, data[:n])
			if got := updateSnapshotCRC(start, data[:n]); got != want {
				t.Fatalf("start %#x, %d bytes: got %#x, want %#x", start, n, got, want)
			}
		}
	}
	big := make([]byte, 3<<20+13)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	want := crc64.Checksum(big, snapshotCRCTable)
	for round := 0; round < 20; round++ {
		h := newSnapshotHash()
		for rest := big; len(rest) > 0; {
			n := min(len(rest), rng.IntN(300<<10))
			h.Write(rest[:n])
			rest = rest[n:]
		}
		if got := h.Sum64(); got != want {
			t.Fatalf("round %d: got %#x, want %#x", round, got, want)
		}
		ref := crc64.New(snapshotCRCTable)
		ref.Write(big)
		if got, want := h.Sum([]byte{9}), ref.Sum([]byte{9}); string(got) != string(want) {
			t.Fatalf("Sum: got %x, want %x", got, want)
		}
	}
}

// TestSnapshotCRCAllOnesAndZeros checks the folding on the two messages
// whose bits are all alike, where a wrong constant shows at once.
func TestSnapshotCRCAllOnesAndZeros(t *testing.T) {
	for _, b := range []byte{0, 0xff} {
		data := make([]byte, 1<<16+crcFoldBlock)
		for i := range data {
			data[i] = b
		}
		for _, n := range []int{crcFoldMin, crcFoldMin + 1, 1 << 12, len(data)} {
			want := crc64.Checksum(data[:n], snapshotCRCTable)
			if got := updateSnapshotCRC(0, data[:n]); got != want {
				t.Fatalf("%d bytes of %#x: got %#x, want %#x", n, b, got, want)
			}
		}
	}
}

func BenchmarkSnapshotCRC(b *testing.B) {
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	b.Run("fold", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			updateSnapshotCRC(0, data)
		}
	})
	b.Run("hash-crc64", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			crc64.Update(0, snapshotCRCTable, data)
		}
	})
}
