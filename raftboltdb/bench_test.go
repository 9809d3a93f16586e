package raftboltdb

import (
	"fmt"
	"testing"

	"github.com/quorumkit/raft"
)

// benchEntrySize is the payload of each entry in the benchmarks.
const benchEntrySize = 256

// The same benchmarks run against raft-boltdb/v2 in the interop module
// (interop/boltdb_bench_test.go), for comparison in one run.

// BenchmarkStoreLogs stores batches of 256-byte entries, one fsync per
// batch.
func BenchmarkStoreLogs(b *testing.B) {
	for _, size := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := openTestStore(b)
			batch := makeLogs(1, size, benchEntrySize)
			b.SetBytes(int64(size * benchEntrySize))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := s.StoreLogs(batch); err != nil {
					b.Fatal(err)
				}
				for _, l := range batch { // the store keeps nothing of a stored batch
					l.Index += uint64(size)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// BenchmarkGetLog reads entries of 256 bytes from a log of 10,000.
func BenchmarkGetLog(b *testing.B) {
	const n = 10_000
	s := openStoreAt(b, b.TempDir()+"/raft.db", Options{NoSync: true})
	for i := uint64(1); i <= n; i += 500 {
		mustStore(b, s, makeLogs(i, 500, benchEntrySize))
	}
	var l raft.Log
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.GetLog(uint64(i*7919%n)+1, &l); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDeleteRange deletes the oldest 256 entries of the log, as
// compaction does, with the fsync; refilling is not timed.
func BenchmarkDeleteRange(b *testing.B) {
	const chunk = 256
	s := openTestStore(b)
	mustStore(b, s, makeLogs(1, 4*chunk, benchEntrySize))
	var first, next uint64 = 1, 4*chunk + 1
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		mustStore(b, s, makeLogs(next, chunk, benchEntrySize))
		next += chunk
		b.StartTimer()
		if err := s.DeleteRange(first, first+chunk-1); err != nil {
			b.Fatal(err)
		}
		first += chunk
	}
}

// BenchmarkCheckFile measures the open-time check on a log of 200,000
// entries of 256 bytes. The reported MB/s is file bytes checked per second
// (from the page cache: the file was just written).
func BenchmarkCheckFile(b *testing.B) {
	const n = 200_000
	path := b.TempDir() + "/raft.db"
	s := openStoreAt(b, path, Options{NoSync: true})
	for i := uint64(1); i <= n; i += 1000 {
		mustStore(b, s, makeLogs(i, 1000, benchEntrySize))
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	st, err := checkFile(path, true, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(st.pgid) * int64(st.pageSize))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := checkFile(path, true, nil); err != nil {
			b.Fatal(err)
		}
	}
}
