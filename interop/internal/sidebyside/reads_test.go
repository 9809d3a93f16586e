package sidebyside

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// putNode is a Node whose Apply answers at once and records the puts.
type putNode struct {
	Node // nil: only Apply is called
	mu   sync.Mutex
	max  [ReadKeys]uint64
	n    atomic.Uint64
}

func (p *putNode) Apply(cmd []byte, _ time.Duration) error {
	m := NewMachine()
	m.Apply(cmd)
	p.mu.Lock()
	for k := range p.max {
		p.max[k] = max(p.max[k], m.Get(uint32(k)))
	}
	p.mu.Unlock()
	p.n.Add(1)
	return nil
}

// TestWriterAcknowledgesLargestPut checks that, once the writer has
// stopped and every put answered, each register's acknowledged value is
// the largest value put to it, whether the put answered inside the window
// or after it.
func TestWriterAcknowledgesLargestPut(t *testing.T) {
	node := &putNode{}
	var phase atomic.Int32
	phase.Store(phaseMeasure)
	w := startWriter(node, 1000, 64, &phase)
	for node.n.Load() < 3*ReadKeys {
		time.Sleep(time.Millisecond) // polling the count of puts: there is no event to wait for
	}
	phase.Store(phaseStop)
	w.wait()
	// Puts that answer after the window closed are not counted as window
	// acknowledgements, but they still raise the registers.
	if got, applied := w.acks.Load(), node.n.Load(); got == 0 || got > applied {
		t.Errorf("%d puts acknowledged in the window, %d applied", got, applied)
	}
	for k := range ReadKeys {
		if got, want := w.acked[k].Load(), node.max[k]; got != want {
			t.Errorf("register %d: acknowledged %d, largest put %d", k, got, want)
		}
	}
}

func TestStaleCheck(t *testing.T) {
	var s staleCheck
	s.check(1, "n1", 2, 5, 5)
	s.check(1, "n1", 2, 5, 9)
	for i := range maxStaleSamples + 2 {
		s.check(3, "n2", 4, 8, uint64(i%8))
	}
	if s.checked.Load() != maxStaleSamples+4 || s.stale.Load() != maxStaleSamples+2 {
		t.Errorf("checked %d, stale %d; want %d, %d", s.checked.Load(), s.stale.Load(), maxStaleSamples+4, maxStaleSamples+2)
	}
	if len(s.samples) != maxStaleSamples || !strings.Contains(s.samples[0], "reader 3 on n2, register 4: read 0, but 8 was acknowledged") {
		t.Errorf("samples: %q", s.samples)
	}
}

func TestReadOptionsCheck(t *testing.T) {
	o := Options{Modes: []string{modeReads}, Readers: []int{16, 0}, Reads: []string{"log", "nope"}, WriteRate: -1,
		Duration: time.Second, Timeout: time.Second, Reps: 1, Kills: 1, Snapshot: 1, CmdSize: 1}
	err := o.check()
	for _, want := range []string{"not 0", `unknown read variant "nope"`, "write rate"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("check() = %v, want an error saying %q", err, want)
		}
	}
	o.Readers, o.Reads = nil, ReadVariants
	if err := o.check(); err == nil || !strings.Contains(err.Error(), "needs reader counts") {
		t.Errorf("check() = %v with no readers", err)
	}
}

func TestUnsupportedReason(t *testing.T) {
	err := fmt.Errorf("%w: no such thing", ErrUnsupported)
	if got := unsupportedReason(err); got != "no such thing" {
		t.Errorf("reason %q", got)
	}
	if !errors.Is(err, ErrUnsupported) {
		t.Error("not ErrUnsupported")
	}
}

// readCell is a reads cell of the given runs.
func readCell(readers int, read string, runs ...Measurement) *cell {
	c := &cell{
		key:    cellKey{mode: modeReads, compare: "wal", clients: readers, read: read},
		stores: map[string]string{libReference: "raft-wal v0.4.0", libOurs: "wal"},
		runs:   map[string][]Measurement{},
	}
	for _, m := range runs {
		m.Mode, m.Read, m.Clients = modeReads, read, readers
		c.runs[m.Library] = append(c.runs[m.Library], m)
	}
	return c
}

func TestReadsTable(t *testing.T) {
	ref := func(ops float64) Measurement {
		return Measurement{Library: libReference, OpsPerSec: ops, P50Ms: 1, P99Ms: 9, WritesPerSec: 1000, CPUCores: 1.5, RunWaitCores: 3}
	}
	ours := func(ops float64) Measurement {
		return Measurement{Library: libOurs, OpsPerSec: ops, P50Ms: 0.5, P99Ms: 4, WritesPerSec: 990, CPUCores: 1.25, RunWaitCores: 2.5}
	}
	refNo := Measurement{Library: libReference, Unsupported: "hashicorp/raft has no ReadIndex"}
	cells := []*cell{
		readCell(16, "log", ref(1000), ours(1500), ours(2500)), // ours' median 2,000
		readCell(16, "verify", ref(8000), ours(4000), Measurement{Library: libOurs, Err: "boom", Stale: 2}),
		readCell(16, "readindex", refNo, ours(24000)),
		readCell(16, "follower", refNo, Measurement{Library: libOurs, Unsupported: "follower ReadIndex answered ErrNotLeader"}),
		readCell(16, "lease", refNo, ours(30000)),
	}
	var buf bytes.Buffer
	writeTables(&buf, cells)
	out := buf.String()
	for _, want := range []string{
		"| raft-wal v0.4.0 / wal | 16 | log | 1,000 | 1.00 / 9.00 | 2,000 | 0.50 / 4.00 | 2.00 | 1.00 | — | 1,000 / 990 | 1.50 / 1.25 | 3.00 / 2.50 | 0 / 0 |",
		"| raft-wal v0.4.0 / wal (1 failed runs) | 16 | verify | 8,000 | 1.00 / 9.00 | 4,000 | 0.50 / 4.00 | 0.50 | 2.00 | — | 1,000 / 990 | 1.50 / 1.25 | 3.00 / 2.50 | 0 / 2 |",
		"| 16 | readindex | n/a | n/a | 24,000 | 0.50 / 4.00 | n/a | 12.00 | ≥ 10× log: 12.00×, met |",
		"| 16 | follower | n/a | n/a | unsupported (follower ReadIndex answered ErrNotLeader) | n/a | n/a | n/a | ≥ 1.5× readindex | n/a / n/a |",
		"| 16 | lease | n/a | n/a | 30,000 | 0.50 / 4.00 | n/a | 15.00 | ≥ 30× log: 15.00×, not met |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestReadsProgressLine(t *testing.T) {
	m := Measurement{Mode: modeReads, Compare: "bolt", Library: libOurs, Store: "raftboltdb", Clients: 128, Read: "readindex", Rep: 2,
		OpsPerSec: 1234, P50Ms: 1, P99Ms: 2, WritesPerSec: 999, CPUCores: 1.9, RunWaitCores: 0.5, CPUMicrosPerRead: 1500, Checked: 10, Stale: 1,
		StaleSamples: []string{"reader 1 on n1, register 1: read 1, but 2 was acknowledged before the read started"},
		Err:          "1 stale reads of 10 checked"}
	got := progressLine(m)
	for _, want := range []string{"read=readindex readers=128 rep=2 ERROR: 1 stale reads", "\n  STALE READ: reader 1 on n1"} {
		if !strings.Contains(got, want) {
			t.Errorf("progress line %q lacks %q", got, want)
		}
	}
	m.Err, m.Stale, m.StaleSamples = "", 0, nil
	if got := progressLine(m); !strings.Contains(got, "1234 reads/s p50 1.00 ms p99 2.00 ms, 999 writes/s, 1.90 cores, 0.50 waiting for a CPU, 1500 µs CPU/read, 0 stale of 10 checked") {
		t.Errorf("progress line %q", got)
	}
	m.Errors, m.FirstReadError = 3, "on n2: not the leader"
	if got := progressLine(m); !strings.HasSuffix(got, "0 stale of 10 checked, 3 failed reads (the first on n2: not the leader)") {
		t.Errorf("progress line %q", got)
	}
	m.Unsupported = "no ReadLease method"
	if got := progressLine(m); !strings.HasSuffix(got, "rep=2 unsupported: no ReadLease method") {
		t.Errorf("progress line %q", got)
	}
}

func TestProcessRunWait(t *testing.T) {
	d, ok := processRunWait()
	if !ok {
		t.Skip("no per-thread schedstat here")
	}
	if d < 0 {
		t.Errorf("run-queue wait %v", d)
	}
}
