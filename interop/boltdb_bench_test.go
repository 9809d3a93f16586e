package interop

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
	refbolt "github.com/hashicorp/raft-boltdb/v2"
	"github.com/quorumkit/raft"
	ourbolt "github.com/quorumkit/raft/raftboltdb"
	"go.etcd.io/bbolt"
)

// The benchmarks of raftboltdb/bench_test.go, run against both libraries
// in one run: StoreLogs of 1, 16 and 256 entries of 256 bytes with an
// fsync per batch, GetLog, and DeleteRange of 256 entries. Each library is
// called directly with entries of its own type, so no conversion is timed.

const benchEntrySize = 256

// benchStore drives one library's store.
type benchStore struct {
	// storeNext stores the prepared batch, then moves its indexes past it.
	storeNext func() error
	get       func(index uint64) error
	del       func(min, max uint64) error
}

// benchLibs opens a store of each library at path, with a prepared batch
// of size entries from index 1.
var benchLibs = []struct {
	name string
	open func(b *testing.B, path string, size int, noSync bool) benchStore
}{
	{"raftboltdb", openOurBench},
	{"raft-boltdb", openRefBench},
}

func benchData(index uint64) []byte {
	d := make([]byte, benchEntrySize)
	for i := range d {
		d[i] = byte(index + uint64(i))
	}
	return d
}

// newBenchStore prepares a batch of size entries (made by newLog) for a
// store whose own calls are given; index points into an entry's Index.
func newBenchStore[L any](size int, newLog func(index uint64) *L, index func(*L) *uint64,
	storeLogs func([]*L) error, get func(uint64, *L) error, del func(min, max uint64) error) benchStore {
	batch := make([]*L, size)
	for i := range batch {
		batch[i] = newLog(uint64(i + 1))
	}
	var l L
	return benchStore{
		storeNext: func() error {
			err := storeLogs(batch)
			for _, e := range batch {
				*index(e) += uint64(size)
			}
			return err
		},
		get: func(i uint64) error { return get(i, &l) },
		del: del,
	}
}

func openOurBench(b *testing.B, path string, size int, noSync bool) benchStore {
	s, err := ourbolt.New(ourbolt.Options{Path: path, NoSync: noSync})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return newBenchStore(size,
		func(i uint64) *raft.Log {
			return &raft.Log{Index: i, Term: 1, Data: benchData(i), AppendedAt: time.Now()}
		},
		func(l *raft.Log) *uint64 { return &l.Index },
		s.StoreLogs, s.GetLog, s.DeleteRange)
}

func openRefBench(b *testing.B, path string, size int, noSync bool) benchStore {
	s, err := refbolt.New(refbolt.Options{Path: path, NoSync: noSync, BoltOptions: &bbolt.Options{Timeout: 5 * time.Second}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return newBenchStore(size,
		func(i uint64) *hraft.Log {
			return &hraft.Log{Index: i, Term: 1, Data: benchData(i), AppendedAt: time.Now()}
		},
		func(l *hraft.Log) *uint64 { return &l.Index },
		s.StoreLogs, s.GetLog, s.DeleteRange)
}

func BenchmarkBoltStoreLogs(b *testing.B) {
	for _, size := range []int{1, 16, 256} {
		for _, lib := range benchLibs {
			b.Run(fmt.Sprintf("%s/batch=%d", lib.name, size), func(b *testing.B) {
				s := lib.open(b, filepath.Join(b.TempDir(), "raft.db"), size, false)
				b.SetBytes(int64(size * benchEntrySize))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := s.storeNext(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "entries/s")
			})
		}
	}
}

func BenchmarkBoltGetLog(b *testing.B) {
	const n = 10_000
	for _, lib := range benchLibs {
		b.Run(lib.name, func(b *testing.B) {
			s := lib.open(b, filepath.Join(b.TempDir(), "raft.db"), 500, true)
			for i := 0; i < n/500; i++ {
				if err := s.storeNext(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := s.get(uint64(i*7919%n) + 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkBoltDeleteRange(b *testing.B) {
	const chunk = 256
	for _, lib := range benchLibs {
		b.Run(lib.name, func(b *testing.B) {
			s := lib.open(b, filepath.Join(b.TempDir(), "raft.db"), chunk, false)
			for i := 0; i < 4; i++ {
				if err := s.storeNext(); err != nil {
					b.Fatal(err)
				}
			}
			var first uint64 = 1
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if err := s.storeNext(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := s.del(first, first+chunk-1); err != nil {
					b.Fatal(err)
				}
				first += chunk
			}
		})
	}
}
