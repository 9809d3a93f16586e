package sidebyside

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
)

// Measurement is one run of one library in one cell, written as one JSON
// line. Fields that do not apply to its mode are left out.
type Measurement struct {
	Mode    string `json:"mode"`              // throughput, failover-graceful, failover-crash, snapshot, reads
	Compare string `json:"compare"`           // the store comparison: bolt, wal, mem
	Library string `json:"library"`           // reference or ours
	Store   string `json:"store"`             // the library's store, e.g. "raft-boltdb v2.3.0"
	Clients int    `json:"clients,omitempty"` // throughput clients, or readers
	Read    string `json:"read,omitempty"`    // reads: the read variant (ReadVariants)
	Rep     int    `json:"rep"`               // repetition (or kill) number, from 1
	Start   string `json:"start"`

	// throughput
	Ops         uint64  `json:"ops,omitempty"`
	Errors      uint64  `json:"errors,omitempty"`
	Seconds     float64 `json:"seconds,omitempty"`
	OpsPerSec   float64 `json:"ops_per_sec,omitempty"`
	P50Ms       float64 `json:"p50_ms,omitempty"`
	P99Ms       float64 `json:"p99_ms,omitempty"`
	P90Ms       float64 `json:"p90_ms,omitempty"`  // throughput: the tail that sets a closed loop's mean
	P999Ms      float64 `json:"p999_ms,omitempty"` // throughput
	AllocsPerOp float64 `json:"allocs_per_op,omitempty"`
	BytesPerOp  float64 `json:"bytes_per_op,omitempty"`
	// CPUMicrosPerOp is the process's CPU time (every node and the
	// driver) per committed Apply; CPUCores and RunWaitCores below are
	// filled for throughput runs too.
	CPUMicrosPerOp float64 `json:"cpu_us_per_op,omitempty"`

	// reads: Ops, Errors, Seconds, OpsPerSec, P50Ms and P99Ms count the
	// reads; then the open-loop writes alongside them (asked for, and
	// acknowledged in the window), the check of every read against the
	// writes acknowledged before it started, and the process's CPU over
	// the window (writes included).
	Leader           string   `json:"leader,omitempty"` // the leader's ID, as the profiler labels its goroutines
	WriteRate        int      `json:"write_rate,omitempty"`
	WritesPerSec     float64  `json:"writes_per_sec,omitempty"`
	WriteErrors      uint64   `json:"write_errors,omitempty"`
	WritesLate       uint64   `json:"writes_late,omitempty"`      // due but not issued: too many in flight
	FirstReadError   string   `json:"first_read_error,omitempty"` // the first of the Errors
	Checked          uint64   `json:"checked,omitempty"`
	Stale            uint64   `json:"stale,omitempty"` // absent: none
	StaleSamples     []string `json:"stale_samples,omitempty"`
	CPUCores         float64  `json:"cpu_cores,omitempty"`
	CPUMicrosPerRead float64  `json:"cpu_us_per_read,omitempty"`
	// RunWaitCores is the time the process's threads spent runnable but
	// waiting for a CPU, per second of the window (Linux only): beside
	// CPUCores, it says whether the run was starved of CPU.
	RunWaitCores float64 `json:"run_wait_cores,omitempty"`
	// Unsupported says why the library could not read this way; the run
	// measured nothing and is no failure.
	Unsupported string `json:"unsupported,omitempty"`

	// failover: from the kill to the first commit by the new leader
	FailoverMs float64 `json:"failover_ms,omitempty"`

	// snapshot: from AddVoter to the new voter's restored FSM
	SnapshotBytes int64   `json:"snapshot_bytes,omitempty"`
	InstallMs     float64 `json:"install_ms,omitempty"`
	// FSMRestoreMs is the part of InstallMs spent inside the benchmark
	// machine's Restore, the same code for both libraries.
	FSMRestoreMs float64 `json:"fsm_restore_ms,omitempty"`
	MBPerSec     float64 `json:"mb_per_sec,omitempty"`
	// InstallCPUMs is the process's CPU time (every node and the driver)
	// over InstallMs, steadier than the time on a shared machine;
	// RunWaitCores (above) is filled too.
	InstallCPUMs float64 `json:"install_cpu_ms,omitempty"`

	// LeakedGoroutines is how many goroutines outlived the run.
	LeakedGoroutines int    `json:"leaked_goroutines,omitempty"`
	Err              string `json:"error,omitempty"`
}

// jsonLines writes each measurement as one line.
type jsonLines struct{ enc *json.Encoder }

func newJSONLines(w io.Writer) *jsonLines {
	if w == nil {
		return nil
	}
	return &jsonLines{enc: json.NewEncoder(w)}
}

func (j *jsonLines) write(m Measurement) error {
	if j == nil {
		return nil
	}
	return j.enc.Encode(m)
}

// cellKey names one cell of the table: a mode, a store comparison and,
// for throughput, a number of clients; for reads, a number of readers
// and a read variant.
type cellKey struct {
	mode    string
	compare string
	clients int
	read    string
}

// cell collects a cell's measurements by library.
type cell struct {
	key    cellKey
	stores map[string]string // library -> store label
	runs   map[string][]Measurement
}

// values extracts one figure of every successful run of lib.
func (c *cell) values(lib string, f func(Measurement) float64) []float64 {
	var out []float64
	for _, m := range c.runs[lib] {
		if m.Err == "" && m.Unsupported == "" {
			out = append(out, f(m))
		}
	}
	return out
}

func (c *cell) failures() int {
	n := 0
	for _, ms := range c.runs {
		for _, m := range ms {
			if m.Err != "" {
				n++
			}
		}
	}
	return n
}

// writeTables writes the cells as Markdown tables, one per mode, with
// medians over repetitions and ours/reference ratios.
func writeTables(w io.Writer, cells []*cell) {
	byMode := map[string][]*cell{}
	var modes []string
	for _, c := range cells {
		if _, ok := byMode[c.key.mode]; !ok {
			modes = append(modes, c.key.mode)
		}
		byMode[c.key.mode] = append(byMode[c.key.mode], c)
	}
	for _, mode := range modes {
		switch mode {
		case modeThroughput:
			throughputTable(w, byMode[mode])
		case modeGraceful, modeCrash:
			failoverTable(w, mode, byMode[mode])
		case modeSnapshot:
			snapshotTable(w, byMode[mode])
		case modeReads:
			readsTable(w, byMode[mode])
		}
		fmt.Fprintln(w)
	}
}

func throughputTable(w io.Writer, cells []*cell) {
	fmt.Fprintln(w, "Throughput and latency (closed-loop clients; medians over repetitions; allocations for the whole process per committed Apply):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| stores (reference / ours) | clients | reference ops/s | p50 / p99 ms | ours ops/s | p50 / p99 ms | ratio | p99 ratio | allocs/op ref / ours | B/op ref / ours |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, c := range cells {
		get := func(lib string, f func(Measurement) float64) float64 { return median(c.values(lib, f)) }
		rOps, oOps := get(libReference, opsOf), get(libOurs, opsOf)
		rP50, oP50 := get(libReference, p50Of), get(libOurs, p50Of)
		rP99, oP99 := get(libReference, p99Of), get(libOurs, p99Of)
		fmt.Fprintf(w, "| %s | %d | %s | %s / %s | %s | %s / %s | %s | %s | %s / %s | %s / %s |\n",
			storesOf(c), c.key.clients,
			num(rOps, 0), num(rP50, 2), num(rP99, 2),
			num(oOps, 0), num(oP50, 2), num(oP99, 2),
			num(oOps/rOps, 2), num(oP99/rP99, 2),
			num(get(libReference, allocsOf), 1), num(get(libOurs, allocsOf), 1),
			num(get(libReference, bytesOf), 0), num(get(libOurs, bytesOf), 0))
	}
}

func failoverTable(w io.Writer, mode string, cells []*cell) {
	what := map[string]string{
		modeGraceful: "Graceful failover (leader Shutdown to the first commit by the new leader)",
		modeCrash:    "Crash failover (leader cut off without a goodbye to the first commit by the new leader)",
	}[mode]
	fmt.Fprintf(w, "%s, median and interquartile range over kills:\n\n", what)
	fmt.Fprintln(w, "| stores (reference / ours) | kills ref / ours | reference ms, median [IQR] | ours ms, median [IQR] | ratio of medians |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	for _, c := range cells {
		r, o := c.values(libReference, failoverOf), c.values(libOurs, failoverOf)
		fmt.Fprintf(w, "| %s | %d / %d | %s | %s | %s |\n", storesOf(c), len(r), len(o),
			spread(r), spread(o), num(median(o)/median(r), 2))
	}
}

func snapshotTable(w io.Writer, cells []*cell) {
	fmt.Fprintln(w, "Snapshot install to a new voter (AddVoter to the new node's restored FSM; MB = 10^6 bytes; medians over repetitions):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| stores (reference / ours) | snapshot MiB | reference MB/s | ours MB/s | ratio | install ms (reference / ours) | of which FSM Restore ms (reference / ours) |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	for _, c := range cells {
		r := median(c.values(libReference, mbpsOf))
		o := median(c.values(libOurs, mbpsOf))
		size := median(append(c.values(libReference, sizeOf), c.values(libOurs, sizeOf)...))
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s / %s | %s / %s |\n", storesOf(c), num(size/(1<<20), 0), num(r, 0), num(o, 0), num(o/r, 2),
			num(median(c.values(libReference, installOf)), 0), num(median(c.values(libOurs, installOf)), 0),
			num(median(c.values(libReference, fsmRestoreOf)), 0), num(median(c.values(libOurs, fsmRestoreOf)), 0))
	}
}

func opsOf(m Measurement) float64      { return m.OpsPerSec }
func p50Of(m Measurement) float64      { return m.P50Ms }
func p99Of(m Measurement) float64      { return m.P99Ms }
func allocsOf(m Measurement) float64   { return m.AllocsPerOp }
func bytesOf(m Measurement) float64    { return m.BytesPerOp }
func failoverOf(m Measurement) float64 { return m.FailoverMs }
func mbpsOf(m Measurement) float64     { return m.MBPerSec }
func sizeOf(m Measurement) float64     { return float64(m.SnapshotBytes) }
func installOf(m Measurement) float64  { return m.InstallMs }
func fsmRestoreOf(m Measurement) float64 {
	return m.FSMRestoreMs
}

// storesOf names the cell's stores, with a count of its failed runs
// (whose errors are in the JSON lines and progress).
func storesOf(c *cell) string {
	s := c.stores[libReference] + " / " + c.stores[libOurs]
	if n := c.failures(); n > 0 {
		s += fmt.Sprintf(" (%d failed runs)", n)
	}
	return s
}

// spread is "median [q1, q3]" in milliseconds.
func spread(xs []float64) string {
	if len(xs) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%s [%s, %s]", num(median(xs), 0), num(quantile(xs, 0.25), 0), num(quantile(xs, 0.75), 0))
}

// num formats x with the given decimals and thousands separators, "n/a"
// for a missing or meaningless figure.
func num(x float64, decimals int) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "n/a"
	}
	s := fmt.Sprintf("%.*f", decimals, x)
	intPart, frac, _ := strings.Cut(s, ".")
	neg := strings.HasPrefix(intPart, "-")
	intPart = strings.TrimPrefix(intPart, "-")
	var b strings.Builder
	for i, r := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	out := b.String()
	if neg {
		out = "-" + out
	}
	if frac != "" {
		out += "." + frac
	}
	return out
}
