package raft

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"
)

// Benchmarks of the write path. They run in real time (fake time would
// make throughput meaningless) and only report; they assert nothing about
// speed.

// benchCluster starts n connected in-memory nodes and returns them once one
// leads.
func benchCluster(b *testing.B, n int) []*Raft {
	b.Helper()
	var trans []*InmemTransport
	var cfg Configuration
	for i := 0; i < n; i++ {
		addr, t := NewInmemTransport("")
		trans = append(trans, t)
		cfg.Servers = append(cfg.Servers, Server{Voter, ServerID(fmt.Sprintf("bench%d", i)), addr})
	}
	for _, a := range trans {
		for _, t := range trans {
			if a != t {
				a.Connect(t.LocalAddr(), t)
			}
		}
	}
	var nodes []*Raft
	for i := 0; i < n; i++ {
		conf := DefaultConfig()
		conf.LocalID = cfg.Servers[i].ID
		// The default timeouts, so that a loaded machine does not cost the
		// leader its lease in the middle of a measurement.
		conf.LogOutput = io.Discard
		// Keep snapshots out of the measurement.
		conf.SnapshotThreshold = 1 << 40
		store := NewInmemStore()
		snaps := NewInmemSnapshotStore()
		if err := BootstrapCluster(conf, store, store, snaps, trans[i], cfg); err != nil {
			b.Fatal(err)
		}
		r, err := NewRaft(conf, &benchFSM{}, store, store, snaps, trans[i])
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, r)
	}
	b.Cleanup(func() {
		for _, r := range nodes {
			r.Shutdown().Error()
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range nodes {
			if r.State() == Leader && r.Barrier(time.Second).Error() == nil {
				return append([]*Raft{r}, nodes...)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatal("no leader")
	return nil
}

// benchFSM counts what it applies, and nothing more.
type benchFSM struct {
	mu sync.Mutex
	n  int
}

func (f *benchFSM) Apply(*Log) interface{} {
	f.mu.Lock()
	f.n++
	f.mu.Unlock()
	return nil
}
func (f *benchFSM) Snapshot() (FSMSnapshot, error) { return &testSnapshot{}, nil }
func (f *benchFSM) Restore(rc io.ReadCloser) error { return rc.Close() }

// BenchmarkApply_Inmem3Nodes measures Apply on the leader of a 3-node
// in-memory cluster: throughput, latency percentiles, and allocations per
// Apply across the whole cluster (-benchmem).
func BenchmarkApply_Inmem3Nodes(b *testing.B) {
	for _, clients := range []int{1, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			nodes := benchCluster(b, 3)
			leader := nodes[0]
			cmd := make([]byte, 128)
			latencies := make([][]time.Duration, clients)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for c := 0; c < clients; c++ {
				n := b.N / clients
				if c < b.N%clients {
					n++
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					lat := make([]time.Duration, 0, n)
					for i := 0; i < n; i++ {
						t0 := time.Now()
						if err := leader.Apply(cmd, 0).Error(); err != nil {
							b.Error(err)
							return
						}
						lat = append(lat, time.Since(t0))
					}
					latencies[c] = lat
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			var all []time.Duration
			for _, l := range latencies {
				all = append(all, l...)
			}
			slices.Sort(all)
			if len(all) > 0 {
				b.ReportMetric(float64(len(all))/elapsed.Seconds(), "ops/s")
				b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
			}
		})
	}
}
