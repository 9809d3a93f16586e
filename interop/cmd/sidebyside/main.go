// Command sidebyside measures hashicorp/raft v1.8.0 (the reference) and
// QuorumKit Raft (ours) side by side with one workload driver: three nodes
// in this process, TCP on 127.0.0.1, DefaultConfig, 256-byte commands,
// closed-loop clients, a LogCache of 512 over the disk store and a
// FileSnapshotStore in a temporary directory. Runs of the two libraries
// alternate within every cell, so both see the same machine.
//
//	cd interop && go run ./cmd/sidebyside                      # everything, a few minutes
//	go run ./cmd/sidebyside -modes throughput -stores bolt -clients 1,16 -duration 2s
//	go run ./cmd/sidebyside -modes failover-crash -stores bolt -kills 30 -json crash.jsonl
//	go run ./cmd/sidebyside -modes reads -stores wal,bolt -readers 16,128 -duration 3s
//
// Modes: throughput (ops/s, p50 and p99 latency, allocations and bytes
// per committed Apply for the whole process), failover-graceful (leader
// Shutdown to the first commit by the new leader), failover-crash (the
// leader cut off without a goodbye, same measure), snapshot (install MB/s
// to a new voter), reads (reads/s and p50/p99 latency of closed-loop
// readers, each way of reading: log, verify, verify-barrier, readindex,
// follower, lease, with an open-loop writer alongside; see
// interop/internal/sidebyside/reads.go; not run unless named). Store comparisons: bolt (raft-boltdb v2.3.0 against
// raftboltdb), wal (raft-wal v0.4.0 against ours' wal store, raftboltdb
// until that exists), mem (the InmemStores).
//
// It prints Markdown tables with ours/reference ratios on stdout and, with
// -json, one JSON line per measurement. It reports; it asserts nothing.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/quorumkit/raft/interop/internal/sidebyside"
	"github.com/quorumkit/raft/interop/internal/sidebyside/ours"
	"github.com/quorumkit/raft/interop/internal/sidebyside/reference"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sidebyside:", err)
		os.Exit(2)
	}
}

// run parses args, measures, and writes the tables to stdout and progress
// to stderr.
func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sidebyside", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modes := fs.String("modes", strings.Join(sidebyside.DefaultModes, ","), "modes to run: "+strings.Join(sidebyside.Modes, ", "))
	stores := fs.String("stores", "bolt,mem,wal", "store comparisons: bolt, wal, mem")
	clients := fs.String("clients", "1,16,128", "client counts for the throughput mode")
	readers := fs.String("readers", "16,128", "reader counts for the reads mode")
	readVariants := fs.String("reads", strings.Join(sidebyside.ReadVariants, ","), "read variants for the reads mode: "+strings.Join(sidebyside.ReadVariants, ", "))
	writeRate := fs.Int("write-rate", 1000, "open-loop writes per second alongside the readers of the reads mode (0 for none)")
	duration := fs.Duration("duration", 5*time.Second, "measured window of each throughput or reads run")
	warmup := fs.Duration("warmup", time.Second, "load before each throughput or reads window opens")
	reps := fs.Int("reps", 2, "runs of each library per throughput, reads or snapshot cell, alternating")
	kills := fs.Int("kills", 10, "leader kills of each library per failover cell, alternating (30 or more to compare crash failover)")
	snapshot := fs.Int("snapshot-mib", 64, "FSM state for the snapshot mode, in MiB")
	cmdSize := fs.Int("size", 256, "bytes per command")
	timeout := fs.Duration("timeout", time.Minute, "bound on each wait inside a run")
	jsonPath := fs.String("json", "", "write one JSON line per measurement to this file (- for stdout)")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	profileDir := fs.String("profiledir", "", "write CPU and allocation profiles of every throughput or reads window and snapshot install to this directory")
	contention := fs.Bool("contention", false, "with -profiledir, also record block and mutex profiles (costly: every event)")
	traceWindows := fs.Bool("trace", false, "with -profiledir, also write an execution trace of every throughput window and snapshot install")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run (both libraries) to this file")
	blockProfile := fs.String("blockprofile", "", "write a profile of blocking (channel, select, lock waits of 10µs or more, both libraries) to this file")
	mutexProfile := fs.String("mutexprofile", "", "write a profile of mutex contention (both libraries) to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	cl, err := sidebyside.ParseCounts(*clients)
	if err != nil {
		return fmt.Errorf("-clients: %w", err)
	}
	rd, err := sidebyside.ParseCounts(*readers)
	if err != nil {
		return fmt.Errorf("-readers: %w", err)
	}
	o := sidebyside.Options{
		Modes:     sidebyside.SplitList(*modes),
		Stores:    sidebyside.SplitList(*stores),
		Clients:   cl,
		Readers:   rd,
		Reads:     sidebyside.SplitList(*readVariants),
		WriteRate: *writeRate,
		Duration:  *duration,
		Warmup:    *warmup,
		Reps:      *reps,
		Kills:     *kills,
		Snapshot:  *snapshot << 20,
		CmdSize:   *cmdSize,
		Timeout:   *timeout,
		Table:     stdout,

		ProfileDir: *profileDir,
		Trace:      *traceWindows,
		Contention: *contention,
	}
	if !*quiet {
		o.Progress = stderr
	}
	switch *jsonPath {
	case "":
	case "-":
		o.JSON = stdout
	default:
		f, err := os.Create(*jsonPath)
		if err != nil {
			return err
		}
		defer f.Close()
		o.JSON = f
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
	if *blockProfile != "" {
		runtime.SetBlockProfileRate(int(10 * time.Microsecond))
		defer writeProfile("block", *blockProfile, stderr)
	}
	if *mutexProfile != "" {
		runtime.SetMutexProfileFraction(10)
		defer writeProfile("mutex", *mutexProfile, stderr)
	}
	fmt.Fprintf(stdout, "sidebyside: %s, GOMAXPROCS %d, %d CPUs, load average %s at start\n\n",
		runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU(), sidebyside.LoadAverage())
	err = sidebyside.Run(reference.Library{}, ours.Library{}, o)
	fmt.Fprintf(stdout, "load average %s at the end\n", sidebyside.LoadAverage())
	return err
}

// writeProfile writes the named runtime profile to path, reporting a
// failure on stderr.
func writeProfile(name, path string, stderr io.Writer) {
	f, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup(name).WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "sidebyside: writing the %s profile: %v\n", name, err)
	}
}
