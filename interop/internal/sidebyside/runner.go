package sidebyside

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// The modes, as the command line names them.
const (
	modeThroughput = "throughput"
	modeGraceful   = "failover-graceful"
	modeCrash      = "failover-crash"
	modeSnapshot   = "snapshot"
	modeReads      = "reads"
)

// Modes lists every mode in the order they run.
var Modes = []string{modeThroughput, modeGraceful, modeCrash, modeSnapshot, modeReads}

// DefaultModes are the modes run when none are named: all but reads, which
// has its own, longer matrix (see reads.go).
var DefaultModes = Modes[:4]

const (
	libReference = "reference"
	libOurs      = "ours"
)

// Options say what to measure and where the results go.
type Options struct {
	Modes   []string // a subset of Modes
	Stores  []string // store comparisons: bolt, wal, mem
	Clients []int    // client counts for the throughput mode
	Readers []int    // reader counts for the reads mode
	Reads   []string // read variants for the reads mode (ReadVariants)
	// WriteRate is the open-loop writes per second that run alongside the
	// readers of the reads mode; 0 for none.
	WriteRate int
	Duration  time.Duration // measured window of a throughput run
	Warmup    time.Duration // load before the window opens
	Reps      int           // runs of each library per throughput or snapshot cell
	Kills     int           // kills of each library per failover cell
	Snapshot  int           // FSM state, in bytes, for the snapshot mode
	CmdSize   int           // bytes per workload command
	Timeout   time.Duration // bound on each wait inside a run (an election, an install)

	// ProfileDir, when set, receives CPU, block, mutex and allocation
	// profiles of every throughput window (profile.go).
	ProfileDir string
	// Contention adds block and mutex profiles (every event) to
	// ProfileDir's profiles.
	Contention bool
	// Trace adds an execution trace of every throughput window to
	// ProfileDir's profiles.
	Trace bool

	Table    io.Writer // the Markdown tables; nil for none
	JSON     io.Writer // one JSON line per measurement; nil for none
	Progress io.Writer // a line per run as it finishes; nil for none
}

// Run measures reference and ours with the options: for every cell, runs
// of the two libraries alternate (reference first on odd repetitions,
// ours first on even ones), so that both see the same machine. It returns
// an error for bad options or unwritable output; a run that fails is
// reported in its measurement and in the table, and the others go on.
func Run(ref, ours Library, o Options) error {
	if err := o.check(); err != nil {
		return err
	}
	out := newJSONLines(o.JSON)
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	var cells []*cell
	for _, mode := range o.Modes {
		for _, cmp := range o.Stores {
			refStore, oursStore, oursLabel, err := pairStores(ref, ours, cmp)
			if err != nil {
				return err
			}
			refLabel, _ := ref.StoreLabel(refStore)
			clients := []int{0}
			variants := []string{""}
			reps := o.Reps
			switch mode {
			case modeThroughput:
				clients = o.Clients
			case modeGraceful, modeCrash:
				reps = o.Kills
			case modeReads:
				clients, variants = o.Readers, o.Reads
			}
			for _, n := range clients {
				for _, variant := range variants {
					c := &cell{
						key:    cellKey{mode: mode, compare: cmp, clients: n, read: variant},
						stores: map[string]string{libReference: refLabel, libOurs: oursLabel},
						runs:   map[string][]Measurement{},
					}
					cells = append(cells, c)
					if err := runCell(c, ref, ours, refStore, oursStore, reps, o, out, progress); err != nil {
						return err
					}
				}
			}
		}
	}
	if o.Table != nil {
		writeTables(o.Table, cells)
	}
	return nil
}

// runCell runs a cell's repetitions, alternating the libraries.
func runCell(c *cell, ref, ours Library, refStore, oursStore string, reps int, o Options, out *jsonLines, progress io.Writer) error {
	for rep := 1; rep <= reps; rep++ {
		type side struct {
			lib   Library
			store string
		}
		order := []side{{ref, refStore}, {ours, oursStore}}
		if rep%2 == 0 {
			order[0], order[1] = order[1], order[0]
		}
		for _, s := range order {
			m := runOne(s.lib, s.store, c.stores[s.lib.Name()], c.key, rep, o)
			c.runs[m.Library] = append(c.runs[m.Library], m)
			if err := out.write(m); err != nil {
				return fmt.Errorf("writing JSON: %w", err)
			}
			fmt.Fprintln(progress, progressLine(m))
		}
	}
	return nil
}

func (o *Options) check() error {
	var errs []error
	for _, m := range o.Modes {
		if !contains(Modes, m) {
			errs = append(errs, fmt.Errorf("unknown mode %q (modes: %s)", m, strings.Join(Modes, ", ")))
		}
	}
	for _, n := range append(append([]int(nil), o.Clients...), o.Readers...) {
		if n < 1 {
			errs = append(errs, fmt.Errorf("clients and readers must be at least 1, not %d", n))
		}
	}
	for _, r := range o.Reads {
		if _, ok := variantNamed(r); !ok {
			errs = append(errs, fmt.Errorf("unknown read variant %q (variants: %s)", r, strings.Join(ReadVariants, ", ")))
		}
	}
	if contains(o.Modes, modeReads) && (len(o.Readers) == 0 || len(o.Reads) == 0) {
		errs = append(errs, errors.New("the reads mode needs reader counts and read variants"))
	}
	if o.WriteRate < 0 {
		errs = append(errs, fmt.Errorf("write rate must not be negative, not %d", o.WriteRate))
	}
	if o.Duration <= 0 || o.Warmup < 0 || o.Timeout <= 0 {
		errs = append(errs, errors.New("duration and timeout must be positive, warmup not negative"))
	}
	if o.Reps < 1 || o.Kills < 1 {
		errs = append(errs, errors.New("repetitions and kills must be at least 1"))
	}
	if o.Snapshot < 1 || o.CmdSize < 1 {
		errs = append(errs, errors.New("snapshot and command sizes must be positive"))
	}
	return errors.Join(errs...)
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// pairStores picks each library's store for a comparison: both run on the
// store the comparison names.
func pairStores(ref, ours Library, cmp string) (refStore, oursStore, oursLabel string, err error) {
	if _, ok := ref.StoreLabel(cmp); !ok {
		return "", "", "", fmt.Errorf("unknown store %q (stores: bolt, wal, mem)", cmp)
	}
	label, ok := ours.StoreLabel(cmp)
	if !ok {
		return "", "", "", fmt.Errorf("ours has no store for %q", cmp)
	}
	return cmp, cmp, label, nil
}

// runOne runs one measurement on a fresh cluster in a fresh directory and
// cleans up after it: the cluster is closed, the directory removed, and
// the goroutines the run started are waited for, so that nothing of one
// run weighs on the next.
func runOne(lib Library, store, label string, key cellKey, rep int, o Options) Measurement {
	mode := key.mode
	m := Measurement{Mode: mode, Compare: key.compare, Library: lib.Name(), Store: label, Clients: key.clients, Read: key.read, Rep: rep}
	variant, _ := variantNamed(key.read)
	if mode == modeReads {
		m.WriteRate = o.WriteRate
		if err := lib.ReadSupport(variant.way); err != nil {
			m.Unsupported = unsupportedReason(err) // nothing to start
			return m
		}
	}
	runtime.GC() // garbage of the previous run is not this run's to collect
	before := runtime.NumGoroutine()
	m.Start = time.Now().UTC().Format(time.RFC3339)
	dir, err := os.MkdirTemp("", "sidebyside-")
	if err != nil {
		m.Err = err.Error()
		return m
	}
	spec := ClusterSpec{Nodes: 3, Store: store, Dir: dir, Crashable: mode == modeCrash, Leases: variant.way == ReadLease}
	c, err := lib.Start(spec)
	if err == nil {
		switch mode {
		case modeThroughput:
			err = throughput(c, key.clients, o, &m)
		case modeReads:
			err = reads(c, variant, key.clients, o, &m)
			var u errUnsupported
			if errors.As(err, &u) {
				m.Unsupported, err = u.reason, nil
			}
		case modeGraceful, modeCrash:
			err = failover(c, mode == modeCrash, o, &m)
		case modeSnapshot:
			err = installSnapshot(c, o, &m)
		}
		err = errors.Join(err, c.Close())
	}
	err = errors.Join(err, os.RemoveAll(dir))
	if err != nil {
		m.Err = err.Error()
	}
	m.LeakedGoroutines = settle(before, o.Timeout)
	return m
}

// settle waits until no more goroutines run than before the run, and
// returns how many more there still are when the timeout passes.
func settle(before int, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		extra := runtime.NumGoroutine() - before
		if extra <= 0 || time.Now().After(deadline) {
			return max(extra, 0)
		}
		time.Sleep(10 * time.Millisecond) // polling the count: there is no event to wait for
	}
}

func progressLine(m Measurement) string {
	s := fmt.Sprintf("%s %s %-9s %-34s", m.Mode, m.Compare, m.Library, m.Store)
	if m.Read != "" {
		s += " read=" + m.Read
	}
	switch {
	case m.Mode == modeReads:
		s += fmt.Sprintf(" readers=%d", m.Clients)
	case m.Clients > 0:
		s += fmt.Sprintf(" clients=%d", m.Clients)
	}
	s += fmt.Sprintf(" rep=%d", m.Rep)
	switch {
	case m.Unsupported != "":
		s += " unsupported: " + m.Unsupported
	case m.Mode == modeReads && m.Err == "":
		s += fmt.Sprintf(" %.0f reads/s p50 %.2f ms p99 %.2f ms, %.0f writes/s, %.2f cores, %.2f waiting for a CPU, %.0f µs CPU/read, %d stale of %d checked",
			m.OpsPerSec, m.P50Ms, m.P99Ms, m.WritesPerSec, m.CPUCores, m.RunWaitCores, m.CPUMicrosPerRead, m.Stale, m.Checked)
		if m.Errors > 0 {
			s += fmt.Sprintf(", %d failed reads (the first %s)", m.Errors, m.FirstReadError)
		}
	case m.Err != "":
		s += " ERROR: " + m.Err
	case m.Mode == modeThroughput:
		s += fmt.Sprintf(" %.0f ops/s p50 %.2f ms p90 %.2f ms p99 %.2f ms p99.9 %.2f ms %.1f allocs/op %.0f B/op %.0f µs CPU/op, %.2f cores, %.2f waiting for a CPU", m.OpsPerSec, m.P50Ms, m.P90Ms, m.P99Ms, m.P999Ms, m.AllocsPerOp, m.BytesPerOp, m.CPUMicrosPerOp, m.CPUCores, m.RunWaitCores)
	case m.Mode == modeSnapshot:
		s += fmt.Sprintf(" %.0f MB/s (%d bytes in %.0f ms, %.0f ms of them in the FSM's Restore; %.0f ms of CPU, %.2f waiting for a CPU)", m.MBPerSec, m.SnapshotBytes, m.InstallMs, m.FSMRestoreMs, m.InstallCPUMs, m.RunWaitCores)
	default:
		s += fmt.Sprintf(" %.0f ms", m.FailoverMs)
	}
	for _, st := range m.StaleSamples {
		s += "\n  STALE READ: " + st
	}
	if m.LeakedGoroutines > 0 {
		s += fmt.Sprintf(" (%d goroutines outlived the run)", m.LeakedGoroutines)
	}
	return s
}
