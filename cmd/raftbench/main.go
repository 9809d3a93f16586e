// Command raftbench measures the write path of a QuorumKit Raft cluster
// running in this process: throughput and latency percentiles of Apply,
// beside the physical limit that bounds them, the disk's fsync rate.
//
//	go run ./cmd/raftbench                      # 3 nodes, TCP on loopback, wal directories, 64 clients
//	go run ./cmd/raftbench -store bolt          # the same on raftboltdb files
//	go run ./cmd/raftbench -clients 1 -duration 5s
//	go run ./cmd/raftbench -store inmem -transport inmem
//	go run ./cmd/raftbench -clients 1 -cpuprofile cpu.out -blockprofile block.out -mutexprofile mutex.out
//
// CPU profile samples carry a "node" label (n0, n1, ...) and the leader's
// ID is printed, so that `go tool pprof -tagfocus node=n1 cpu.out` shows
// one node alone. Block and mutex profiles carry no labels and cover the
// whole process.
//
// It reports; it asserts nothing.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/quorumkit/raft"
	"github.com/quorumkit/raft/raftboltdb"
	"github.com/quorumkit/raft/wal"
)

type options struct {
	nodes     int
	clients   int
	duration  time.Duration
	size      int
	store     string
	transport string
	dir       string
	inflight  int
	cpuProf   string
	blockProf string
	mutexProf string
}

func main() {
	var o options
	flag.IntVar(&o.nodes, "nodes", 3, "cluster size")
	flag.IntVar(&o.clients, "clients", 64, "concurrent clients applying on the leader")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long to measure")
	flag.IntVar(&o.size, "size", 256, "bytes per command")
	flag.StringVar(&o.store, "store", "wal", "log store: wal (fsync on), bolt (raftboltdb, fsync on) or inmem")
	flag.StringVar(&o.transport, "transport", "tcp", "transport: tcp (loopback) or inmem")
	flag.StringVar(&o.dir, "dir", "", "directory for the bolt or wal files (a temporary one by default)")
	flag.IntVar(&o.inflight, "inflight", 0, "MaxRPCsInFlight of the TCP transports (0: the default)")
	flag.StringVar(&o.cpuProf, "cpuprofile", "", "write a CPU profile of the measured window to this file")
	flag.StringVar(&o.blockProf, "blockprofile", "", "write a block profile of the measured window to this file")
	flag.StringVar(&o.mutexProf, "mutexprofile", "", "write a mutex profile of the measured window to this file")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "raftbench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.dir == "" {
		dir, err := os.MkdirTemp("", "raftbench")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.dir = dir
	}
	fmt.Printf("raftbench: %d nodes, %d clients, %d-byte commands, store=%s, transport=%s, %v\n",
		o.nodes, o.clients, o.size, o.store, o.transport, o.duration)
	if o.store == "bolt" || o.store == "wal" {
		rate, err := fsyncRate(o.dir, o.size, 2*time.Second)
		if err != nil {
			return err
		}
		fmt.Printf("disk: %.0f fsyncs/s (write %d bytes + fsync, one at a time): the bound on sequential durable writes\n", rate, o.size)
	}
	c, err := startCluster(o)
	if err != nil {
		return err
	}
	defer c.close()
	leader, err := c.waitForLeader(30 * time.Second)
	if err != nil {
		return err
	}
	for _, n := range c.nodes {
		if n.raft == leader {
			fmt.Printf("leader: %s\n", n.id)
		}
	}
	stopProfiles, err := startProfiles(o)
	if err != nil {
		return err
	}
	res := measure(leader, o)
	if err := stopProfiles(); err != nil {
		return err
	}
	fmt.Printf("throughput: %.0f applies/s (%d applies, %d errors)\n", res.rate, res.n, res.errors)
	fmt.Printf("latency: p50 %v  p90 %v  p99 %v  max %v\n", res.p(50), res.p(90), res.p(99), res.p(100))
	for _, n := range c.nodes {
		calls, entries := n.store.calls.Load(), n.store.entries.Load()
		if calls > 0 {
			fmt.Printf("  %s: %d StoreLogs calls, %.1f entries per call\n", n.id, calls, float64(entries)/float64(calls))
		}
	}
	return nil
}

// startProfiles starts the profiles o asks for and returns the function
// that stops them and writes them out.
func startProfiles(o options) (func() error, error) {
	var cpu *os.File
	if o.cpuProf != "" {
		f, err := os.Create(o.cpuProf)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, err
		}
		cpu = f
	}
	if o.blockProf != "" {
		runtime.SetBlockProfileRate(1)
	}
	if o.mutexProf != "" {
		runtime.SetMutexProfileFraction(1)
	}
	return func() error {
		if cpu != nil {
			pprof.StopCPUProfile()
			if err := cpu.Close(); err != nil {
				return err
			}
		}
		for _, p := range []struct{ name, path string }{{"block", o.blockProf}, {"mutex", o.mutexProf}} {
			if p.path == "" {
				continue
			}
			f, err := os.Create(p.path)
			if err != nil {
				return err
			}
			if err := pprof.Lookup(p.name).WriteTo(f, 0); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

// withNodeLabel runs f with the pprof label node=id on the calling
// goroutine, so that the goroutines f starts (and theirs) carry it too.
func withNodeLabel(id raft.ServerID, f func() error) error {
	var err error
	pprof.Do(context.Background(), pprof.Labels("node", string(id)), func(context.Context) { err = f() })
	return err
}

// fsyncRate measures how many write+fsync rounds the disk does per second.
func fsyncRate(dir string, size int, d time.Duration) (float64, error) {
	f, err := os.CreateTemp(dir, "fsync")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, size)
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		if _, err := f.Write(buf); err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// result is what a measurement saw.
type result struct {
	n, errors int
	rate      float64
	latencies []time.Duration
}

func (r result) p(pct int) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := min(len(r.latencies)*pct/100, len(r.latencies)-1)
	return r.latencies[i]
}

// measure runs the clients against the leader for the duration.
func measure(leader *raft.Raft, o options) result {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		all    []time.Duration
		errors atomic.Int64
	)
	stop := time.Now().Add(o.duration)
	start := time.Now()
	for c := 0; c < o.clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := make([]byte, o.size)
			var lat []time.Duration
			for time.Now().Before(stop) {
				t0 := time.Now()
				if err := leader.Apply(cmd, 0).Error(); err != nil {
					errors.Add(1)
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(all)
	return result{n: len(all), errors: int(errors.Load()), rate: float64(len(all)) / elapsed.Seconds(), latencies: all}
}

// node is one server of the benchmark cluster.
type node struct {
	id    raft.ServerID
	raft  *raft.Raft
	store *countingStore
}

// countingStore counts StoreLogs calls and the entries they carry, which
// shows how much group commit batches.
type countingStore struct {
	raft.LogStore
	calls, entries atomic.Int64
}

func (s *countingStore) StoreLogs(logs []*raft.Log) error {
	s.calls.Add(1)
	s.entries.Add(int64(len(logs)))
	return s.LogStore.StoreLogs(logs)
}

type cluster struct{ nodes []*node }

func startCluster(o options) (*cluster, error) {
	var trans []raft.Transport
	var cfg raft.Configuration
	for i := 0; i < o.nodes; i++ {
		var t raft.Transport
		id := raft.ServerID(fmt.Sprintf("n%d", i))
		switch o.transport {
		case "inmem":
			_, t = raft.NewInmemTransport("")
		case "tcp":
			err := withNodeLabel(id, func() error {
				nt, err := raft.NewTCPTransportWithConfig("127.0.0.1:0", nil, &raft.NetworkTransportConfig{
					MaxPool:         3,
					Timeout:         10 * time.Second,
					MaxRPCsInFlight: o.inflight,
					Logger:          hclog.NewNullLogger(),
				})
				t = nt
				return err
			})
			if err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("unknown transport %q", o.transport)
		}
		trans = append(trans, t)
		cfg.Servers = append(cfg.Servers, raft.Server{ID: id, Address: t.LocalAddr()})
	}
	if o.transport == "inmem" {
		for _, a := range trans {
			for _, b := range trans {
				if a != b {
					a.(*raft.InmemTransport).Connect(b.LocalAddr(), b)
				}
			}
		}
	}
	c := &cluster{}
	for i, t := range trans {
		n := &node{id: cfg.Servers[i].ID}
		var stable raft.StableStore
		switch o.store {
		case "inmem":
			s := raft.NewInmemStore()
			n.store, stable = &countingStore{LogStore: s}, s
		case "bolt":
			s, err := raftboltdb.NewBoltStore(filepath.Join(o.dir, string(n.id)+".db"))
			if err != nil {
				return nil, err
			}
			n.store, stable = &countingStore{LogStore: s}, s
		case "wal":
			dir := filepath.Join(o.dir, string(n.id))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, err
			}
			s, err := wal.Open(dir)
			if err != nil {
				return nil, err
			}
			n.store, stable = &countingStore{LogStore: s}, s
		default:
			return nil, fmt.Errorf("unknown store %q", o.store)
		}
		conf := raft.DefaultConfig()
		conf.LocalID = n.id
		conf.LogOutput = io.Discard
		conf.SnapshotThreshold = 1 << 40
		snaps := raft.NewDiscardSnapshotStore()
		if err := raft.BootstrapCluster(conf, n.store, stable, snaps, t, cfg); err != nil {
			return nil, err
		}
		var r *raft.Raft
		err := withNodeLabel(n.id, func() error {
			var err error
			r, err = raft.NewRaft(conf, &countFSM{}, n.store, stable, snaps, t)
			return err
		})
		if err != nil {
			return nil, err
		}
		n.raft = r
		c.nodes = append(c.nodes, n)
	}
	return c, nil
}

func (c *cluster) waitForLeader(timeout time.Duration) (*raft.Raft, error) {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, n := range c.nodes {
			if n.raft.State() == raft.Leader && n.raft.Barrier(time.Second).Error() == nil {
				return n.raft, nil
			}
		}
	}
	return nil, fmt.Errorf("no leader within %v", timeout)
}

func (c *cluster) close() {
	for _, n := range c.nodes {
		n.raft.Shutdown().Error()
		if cl, ok := n.store.LogStore.(io.Closer); ok {
			cl.Close()
		}
	}
}

// countFSM counts applies and nothing else, so the benchmark measures raft.
type countFSM struct{ n atomic.Uint64 }

func (f *countFSM) Apply(*raft.Log) interface{}         { f.n.Add(1); return nil }
func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, fmt.Errorf("not used") }
func (f *countFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }
