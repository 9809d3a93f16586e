package interop

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	refwal "github.com/hashicorp/raft-wal"
	refmeta "github.com/hashicorp/raft-wal/metadb"
	"github.com/quorumkit/raft"
	"github.com/quorumkit/raft/wal"
)

// Benchmarks of wal beside raft-wal v0.4.0 in one run: StoreLogs of 1, 16
// and 256 entries of 256 bytes (one sync per batch in both), GetLog of
// recent entries (in the tail segment) and of older ones (in sealed
// segments), and DeleteRange of the head and of the tail. Each library is
// called with entries of its own type, so no conversion is timed.

// walBench drives one library's WAL.
type walBench struct {
	benchStore
	// rewind moves the prepared batch's indexes back by n, to continue
	// the log after a tail truncation.
	rewind func(n uint64)
}

func newWALBench[L any](size int, newLog func(index uint64) *L, index func(*L) *uint64,
	storeLogs func([]*L) error, get func(uint64, *L) error, del func(min, max uint64) error) walBench {
	batch := make([]*L, size)
	for i := range batch {
		batch[i] = newLog(uint64(i + 1))
	}
	var l L
	return walBench{
		benchStore: benchStore{
			storeNext: func() error {
				err := storeLogs(batch)
				for _, e := range batch {
					*index(e) += uint64(size)
				}
				return err
			},
			get: func(i uint64) error { return get(i, &l) },
			del: del,
		},
		rewind: func(n uint64) {
			for _, e := range batch {
				*index(e) -= n
			}
		},
	}
}

var walLibs = []struct {
	name string
	open func(b *testing.B, dir string, size, segmentSize int) walBench
}{
	{"wal", openOurWALBench},
	{"raft-wal", openRefWALBench},
}

func openOurWALBench(b *testing.B, dir string, size, segmentSize int) walBench {
	w, err := wal.Open(dir, wal.WithSegmentSize(segmentSize), wal.WithLogger(hclog.NewNullLogger()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { w.Close() })
	return newWALBench(size,
		func(i uint64) *raft.Log {
			return &raft.Log{Index: i, Term: 1, Data: benchData(i), AppendedAt: time.Now()}
		},
		func(l *raft.Log) *uint64 { return &l.Index },
		w.StoreLogs, w.GetLog, w.DeleteRange)
}

func openRefWALBench(b *testing.B, dir string, size, segmentSize int) walBench {
	meta := &refmeta.BoltMetaDB{}
	w, err := refwal.Open(dir, refwal.WithMetaStore(meta), refwal.WithSegmentSize(segmentSize),
		refwal.WithLogger(hclog.NewNullLogger()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { w.Close(); meta.Close() })
	return newWALBench(size,
		func(i uint64) *hraft.Log {
			return &hraft.Log{Index: i, Term: 1, Data: benchData(i), AppendedAt: time.Now()}
		},
		func(l *hraft.Log) *uint64 { return &l.Index },
		w.StoreLogs, w.GetLog, w.DeleteRange)
}

func BenchmarkWALStoreLogs(b *testing.B) {
	for _, size := range []int{1, 16, 256} {
		for _, lib := range walLibs {
			b.Run(fmt.Sprintf("%s/batch=%d", lib.name, size), func(b *testing.B) {
				s := lib.open(b, b.TempDir(), size, wal.DefaultSegmentSize)
				tail := newTailTimes(b.N)
				b.SetBytes(int64(size * benchEntrySize))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					start := time.Now()
					if err := s.storeNext(); err != nil {
						b.Fatal(err)
					}
					tail.add(start)
				}
				b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "entries/s")
				tail.report(b)
			})
		}
		b.Run(fmt.Sprintf("floor/batch=%d", size), func(b *testing.B) { benchWALFloor(b, size) })
	}
}

// benchWALFloor is the machine's floor for a StoreLogs of size entries:
// one write of as many bytes as wal writes for the batch (its frames and
// commit frame) at the end of a preallocated file, and one data sync,
// with nothing else. The blocks it writes into were zeroed and synced
// beforehand, outside the timer, so it never pays for a block's first
// write, which wal spreads over its appends (zeros ahead, wal/fs).
func benchWALFloor(b *testing.B, size int) {
	var enc bytes.Buffer
	if err := (&wal.BinaryCodec{}).Encode(&raft.Log{Index: 1, Term: 1, Data: benchData(1), AppendedAt: time.Now()}, &enc); err != nil {
		b.Fatal(err)
	}
	frame := 8 + (enc.Len()+7)/8*8
	buf := make([]byte, size*frame+8)
	for i := range buf {
		buf[i] = byte(i)
	}
	const fileSize, zeroChunk = 64 << 20, 1 << 20
	f, err := os.Create(filepath.Join(b.TempDir(), "floor"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := floorPrepare(f, fileSize); err != nil {
		b.Fatal(err)
	}
	zeros := make([]byte, zeroChunk)
	off, zeroed := int64(0), int64(0)
	tail := newTailTimes(b.N)
	b.SetBytes(int64(size * benchEntrySize))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if off+int64(len(buf)) > fileSize {
			off = 0 // written blocks from here on
		}
		for off+int64(len(buf)) > zeroed {
			b.StopTimer()
			if _, err := f.WriteAt(zeros, zeroed); err != nil {
				b.Fatal(err)
			}
			if err := floorSync(f); err != nil {
				b.Fatal(err)
			}
			zeroed += zeroChunk
			b.StartTimer()
		}
		start := time.Now()
		if _, err := f.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
		if err := floorSync(f); err != nil {
			b.Fatal(err)
		}
		tail.add(start)
		off += int64(len(buf))
	}
	b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "entries/s")
	tail.report(b)
}

// tailTimes keeps the duration of every timed call of a benchmark, so
// that it reports the slowest ones beside the mean: a sync that costs ten
// times the others once every few hundred calls (a block's first write,
// a journal commit) barely moves ns/op but is what a client's p99 sees.
type tailTimes []time.Duration

// newTailTimes makes room for n calls up front, so that recording them
// allocates nothing inside the timed loop.
func newTailTimes(n int) tailTimes { return make(tailTimes, 0, n) }

// add records a call that started at start and has just returned.
func (t *tailTimes) add(start time.Time) { *t = append(*t, time.Since(start)) }

// report adds the 99th and 99.9th percentiles and the maximum of the
// recorded calls, in microseconds, to the benchmark's results.
func (t tailTimes) report(b *testing.B) {
	if len(t) == 0 {
		return
	}
	slices.Sort(t)
	b.ReportMetric(float64(t[len(t)*99/100].Microseconds()), "p99-us")
	b.ReportMetric(float64(t[len(t)*999/1000].Microseconds()), "p999-us")
	b.ReportMetric(float64(t[len(t)-1].Microseconds()), "max-us")
}

// BenchmarkWALGetLog reads from a log of 20,000 entries in 1 MiB
// segments: "hot" reads the last 256 entries (the tail segment, as a
// leader replicating recent entries does), "cold" reads all over the
// sealed segments (as a follower catching up does).
func BenchmarkWALGetLog(b *testing.B) {
	const n, chunk = 20_000, 500
	for _, where := range []string{"hot", "cold"} {
		for _, lib := range walLibs {
			b.Run(where+"/"+lib.name, func(b *testing.B) {
				s := lib.open(b, b.TempDir(), chunk, 1<<20)
				for i := 0; i < n/chunk; i++ {
					if err := s.storeNext(); err != nil {
						b.Fatal(err)
					}
				}
				index := func(i int) uint64 { return n - 255 + uint64(i%256) }
				if where == "cold" {
					index = func(i int) uint64 { return uint64(i*7919%(n-2000)) + 1 }
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := s.get(index(i)); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkWALDeleteRange times DeleteRange alone: "head" removes the
// oldest 256 entries (a compaction after a snapshot), "tail" the newest
// 16 (a follower's conflicting suffix). Appends between them are not
// timed.
func BenchmarkWALDeleteRange(b *testing.B) {
	const chunk = 256
	for _, where := range []string{"head", "tail"} {
		for _, lib := range walLibs {
			b.Run(where+"/"+lib.name, func(b *testing.B) {
				s := lib.open(b, b.TempDir(), chunk, 1<<20)
				for i := 0; i < 4; i++ {
					if err := s.storeNext(); err != nil {
						b.Fatal(err)
					}
				}
				first, last := uint64(1), uint64(4*chunk)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					if err := s.storeNext(); err != nil {
						b.Fatal(err)
					}
					last += chunk
					b.StartTimer()
					var err error
					if where == "head" {
						err = s.del(first, first+chunk-1)
						first += chunk
					} else {
						// Remove the newest 16; the next batch continues
						// from the new end.
						err = s.del(last-15, last)
						last -= 16
						s.rewind(16)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
