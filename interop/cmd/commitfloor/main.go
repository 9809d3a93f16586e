// Command commitfloor measures the machine's floor for a replicated
// commit in the side-by-side benchmark's throughput topology: the fastest
// any library can answer a closed-loop client here if it keeps the rule
// that both hashicorp/raft and QuorumKit Raft keep, that a command is
// answered only once it is durable on the leader and on at least one of
// two followers (the leader's FSM applies only entries durable on its own
// node: see nextFSMTask in fsm.go at the repository root).
//
//	cd interop && go run ./cmd/commitfloor -stores bolt,wal -clients 1,16,128 -duration 3s
//	go run ./cmd/commitfloor -stores bolt -clients 1 -stages   # where the time of a commit goes
//	go run ./cmd/commitfloor -limits -duration 2s              # single operations, alone and three at once
//
// The topology is sidebyside's (cmd/sidebyside): three nodes in this
// process, each with its own store in its own directory, a persistent TCP
// connection on 127.0.0.1 from the leader to each follower, closed-loop
// clients submitting 256-byte commands. What it leaves out is everything
// a library adds on top of the disk and the network: no terms, votes,
// consistency checks, heartbeats, configuration, log cache, FSM or
// futures, a length per command for an encoding, and as few goroutine
// hand-offs as the rule allows (client to leader, follower connection to
// its store, the leader's acknowledgement readers back to the client).
// The leader takes everything pending as one batch (group commit), writes
// it to both followers' connections without waiting for earlier batches'
// acknowledgements (pipelined), then writes and syncs it in its own
// store, so that its sync overlaps the followers'. A follower reads a
// batch and every further one already arrived whole, stores them with one
// append and acknowledges the last index.
//
// Stores do the same disk work per batch as the libraries' stores, with
// no encoding: bolt is bbolt opened with raftboltdb's options, one
// transaction putting each command under its big-endian index in a
// "logs" bucket filled for appends (raftboltdb/log_store.go), committed
// with bbolt's two fsyncs; wal is one write of the batch's frames (an
// 8-byte header per command, padded to 8 bytes) and a commit frame at the
// end of a preallocated file, then one fdatasync, as the wal package does
// per StoreLogs (wal/wal.go) minus its segment bookkeeping. The file (64
// MiB, written from its start again when full) is written with zeros and
// synced beforehand, so no append pays for a block's first write, which
// the wal package spreads over its appends. The ops/s it reports are
// therefore an upper bound on what a library that keeps the rule can do in
// this topology on this machine, and its latencies a lower bound. It is a
// bound for this greedy batching (a batch is whatever is pending when the
// leader's previous write returns): a library that waits for more
// commands before a write trades latency for batch size, and single runs
// on a loaded machine scatter around the bound.
//
// Store mem keeps the commands in memory with nothing durable, as the
// side-by-side benchmark's in-memory cells do: its floor is the network
// and the hand-offs alone. It bounds one client; with many, a library's
// in-memory cells are bound by CPU, and its larger batches can beat this
// greedy batching.
//
// Stores raftboltdb and walstore run the same floor on this repository's
// own stores (raftboltdb.NewBoltStore, wal.Open, as sidebyside opens them
// for ours), handed raft.Log entries: between the bare store and a
// library on that store, they tell the store's share of a gap from the
// library's.
//
// With -limits it measures the single operations alone and three at once
// (as three nodes run them): a 256-byte append plus fdatasync on such a
// file, a bbolt commit of one 256-byte put, and a round trip of 8 bytes
// over a TCP connection on 127.0.0.1. With -stages it prints, per run, the
// percentiles of each stage of a command (the leader took the batch, sent
// it, stored it; each follower received, stored and acknowledged it; the
// client was answered) in microseconds after the client submitted it, to
// set beside cmd/commitstages's timelines of a library.
//
// Compare it with sidebyside by alternating the two commands, cell by
// cell, with the same durations, so both see the same machine:
// interleave.sh in this directory does, and -ratios prints the medians of
// the per-run ratios (floor/reference, ours/floor, ours/reference) from
// both commands' JSON lines. It prints
// a Markdown table and, with -json, appends one JSON line per run in the
// fields sidebyside uses (mode "floor" or "limit", library "floor"). It
// reports; it asserts nothing.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumkit/raft/interop/internal/sidebyside"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "commitfloor:", err)
		os.Exit(2)
	}
}

// result is one run's figures, in sidebyside's JSON field names.
type result struct {
	Mode           string  `json:"mode"`    // floor or limit
	Compare        string  `json:"compare"` // bolt or wal; for limits the operation
	Library        string  `json:"library"` // floor
	Clients        int     `json:"clients,omitempty"`
	Parallel       int     `json:"parallel,omitempty"` // limits: operations running at once
	Rep            int     `json:"rep"`
	Start          string  `json:"start"`
	Ops            uint64  `json:"ops"`
	Seconds        float64 `json:"seconds"`
	OpsPerSec      float64 `json:"ops_per_sec"`
	P50Ms          float64 `json:"p50_ms"`
	P99Ms          float64 `json:"p99_ms"`
	CPUMicrosPerOp float64 `json:"cpu_us_per_op,omitempty"`
	EntriesPerBat  float64 `json:"entries_per_batch,omitempty"` // the leader's mean batch
	LoadAverage    string  `json:"load_average"`
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("commitfloor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stores := fs.String("stores", "bolt,wal", "stores: bolt, wal (bare), mem (in memory, nothing durable), raftboltdb, walstore (this module's stores under the floor)")
	clients := fs.String("clients", "1,16,128", "closed-loop client counts")
	duration := fs.Duration("duration", 3*time.Second, "measured window of each run (it stays open until one command was measured)")
	warmup := fs.Duration("warmup", time.Second, "load before each window opens")
	reps := fs.Int("reps", 1, "runs per cell")
	size := fs.Int("size", 256, "bytes per command")
	limits := fs.Bool("limits", false, "measure the single-operation limits instead")
	dir := fs.String("dir", "", "directory for the stores (default: a temporary one)")
	withStages := fs.Bool("stages", false, "also print per-stage timelines of each run (as cmd/commitstages does for ours)")
	ratios := fs.String("ratios", "", "print the ratios of alternated floor and sidebyside runs from these comma-separated JSON files, and nothing else")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	jsonPath := fs.String("json", "", "append one JSON line per run to this file (- for stdout)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	stages = nil
	if *ratios != "" {
		return printRatios(stdout, sidebyside.SplitList(*ratios))
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var out io.Writer
	switch *jsonPath {
	case "":
	case "-":
		out = stdout
	default:
		f, err := os.OpenFile(*jsonPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	base := *dir
	if base == "" {
		d, err := os.MkdirTemp("", "commitfloor")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		base = d
	}
	fmt.Fprintf(stdout, "commitfloor: %s, GOMAXPROCS %d, load average %s at start\n\n", runtime.Version(), runtime.GOMAXPROCS(0), sidebyside.LoadAverage())
	var results []result
	emit := func(r result) error {
		results = append(results, r)
		if out != nil {
			b, _ := json.Marshal(r)
			if _, err := fmt.Fprintf(out, "%s\n", b); err != nil {
				return err
			}
		}
		return nil
	}
	n := 0
	newDir := func() (string, error) {
		n++
		d := fmt.Sprintf("%s/run%d", base, n)
		return d, os.MkdirAll(d, 0o700)
	}
	if *limits {
		for _, op := range []string{"fdatasync", "bolt", "loopback"} {
			for _, par := range []int{1, 3} {
				for rep := 1; rep <= *reps; rep++ {
					d, err := newDir()
					if err != nil {
						return err
					}
					r, err := measureLimit(op, par, *size, *duration, d)
					if err != nil {
						return fmt.Errorf("%s x%d: %w", op, par, err)
					}
					r.Rep = rep
					if err := emit(r); err != nil {
						return err
					}
					os.RemoveAll(d)
				}
			}
		}
		printLimits(stdout, results)
	} else {
		cl, err := sidebyside.ParseCounts(*clients)
		if err != nil {
			return fmt.Errorf("-clients: %w", err)
		}
		for _, st := range sidebyside.SplitList(*stores) {
			for _, c := range cl {
				for rep := 1; rep <= *reps; rep++ {
					d, err := newDir()
					if err != nil {
						return err
					}
					if *withStages {
						stages = &stageLog{at: map[string]map[uint64]int64{}}
					}
					r, err := measureFloor(st, c, *size, *warmup, *duration, d)
					if *withStages && err == nil {
						printStages(stdout, st, c)
					}
					if err != nil {
						return fmt.Errorf("%s, %d clients: %w", st, c, err)
					}
					r.Rep = rep
					if err := emit(r); err != nil {
						return err
					}
					os.RemoveAll(d)
				}
			}
		}
		printFloor(stdout, results)
	}
	fmt.Fprintf(stdout, "\nload average %s at the end\n", sidebyside.LoadAverage())
	return nil
}

// Phases of a run, which every client checks after each command.
const (
	phaseWarmup = iota
	phaseMeasure
	phaseStop
)

// measureFloor runs clients closed-loop clients against a fresh cluster on
// the named store.
func measureFloor(kind string, clients, size int, warmup, window time.Duration, dir string) (result, error) {
	c, err := startCluster(kind, dir)
	if err != nil {
		return result{}, err
	}
	var (
		phase atomic.Int32
		wg    sync.WaitGroup
		mu    sync.Mutex
		lat   []time.Duration
		// measured is closed by the first command measured: the window
		// stays open until then, however long the machine takes.
		measured     = make(chan struct{})
		measuredOnce sync.Once
	)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := make([]byte, size)
			cmd[1] = byte(i)
			r := &request{cmd: cmd, done: make(chan struct{}, 1)}
			var mine []time.Duration
			for {
				p := phase.Load()
				if p == phaseStop {
					break
				}
				t0 := time.Now()
				if stages != nil {
					r.at = now()
				}
				c.submit(r)
				<-r.done
				d := time.Since(t0)
				if p == phaseMeasure && phase.Load() == phaseMeasure {
					mine = append(mine, d)
					measuredOnce.Do(func() { close(measured) })
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	time.Sleep(warmup) // the warm-up is a length of load, not a condition
	cpu0 := processCPU()
	start := time.Now()
	c.mu.Lock()
	b0, e0 := c.batchesEntries()
	c.mu.Unlock()
	phase.Store(phaseMeasure)
	time.Sleep(window) // the window is a length of time
	<-measured         // and lasts until one command was measured
	phase.Store(phaseStop)
	elapsed := time.Since(start)
	cpu1 := processCPU()
	c.mu.Lock()
	b1, e1 := c.batchesEntries()
	c.mu.Unlock()
	wg.Wait()
	if err := c.stop(); err != nil {
		return result{}, err
	}
	r := summarize(lat, elapsed)
	r.Mode, r.Compare, r.Library, r.Clients = "floor", kind, "floor", clients
	r.Start = start.UTC().Format(time.RFC3339)
	if r.Ops > 0 {
		r.CPUMicrosPerOp = float64((cpu1-cpu0)/time.Microsecond) / float64(r.Ops)
	}
	if b1 > b0 {
		r.EntriesPerBat = float64(e1-e0) / float64(b1-b0)
	}
	if r.Ops == 0 {
		return r, errors.New("nothing committed in the window")
	}
	return r, nil
}

// batchesEntries reads the leader's batch counters; c.mu is held.
func (c *cluster) batchesEntries() (uint64, uint64) { return c.batches, c.entries }

// summarize turns latencies measured over elapsed into a result.
func summarize(lat []time.Duration, elapsed time.Duration) result {
	slices.Sort(lat)
	r := result{Ops: uint64(len(lat)), Seconds: elapsed.Seconds(), LoadAverage: sidebyside.LoadAverage()}
	r.OpsPerSec = float64(len(lat)) / elapsed.Seconds()
	r.P50Ms = percentile(lat, 50)
	r.P99Ms = percentile(lat, 99)
	return r
}

// percentile is the p-th percentile of sorted, in milliseconds (nearest rank).
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(int(float64(len(sorted))*p/100), len(sorted)-1)
	return float64(sorted[i]) / float64(time.Millisecond)
}

func printFloor(w io.Writer, rs []result) {
	fmt.Fprintln(w, "| store | clients | rep | ops/s | p50 ms | p99 ms | CPU µs/op | entries/batch | load |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %d | %d | %.0f | %.3f | %.3f | %.1f | %.1f | %s |\n",
			r.Compare, r.Clients, r.Rep, r.OpsPerSec, r.P50Ms, r.P99Ms, r.CPUMicrosPerOp, r.EntriesPerBat, r.LoadAverage)
	}
}
