package main

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// stageLog records, when enabled (-stages), the first moment each stage
// of a command happened, keyed by the command's index, so that a run can
// print the same timelines as cmd/commitstages prints for a library.
type stageLog struct {
	mu sync.Mutex
	at map[string]map[uint64]int64
}

var (
	stages *stageLog // nil unless -stages
	epoch  = time.Now()
)

func now() int64 { return int64(time.Since(epoch)) }

// mark records stage for indexes first..last at t.
func mark(stage string, first, last uint64, t int64) {
	if stages == nil {
		return
	}
	stages.mu.Lock()
	m := stages.at[stage]
	if m == nil {
		m = map[uint64]int64{}
		stages.at[stage] = m
	}
	for i := first; i <= last; i++ {
		if _, ok := m[i]; !ok {
			m[i] = t
		}
	}
	stages.mu.Unlock()
}

// printStages prints percentiles of every stage in µs after the command
// was submitted, for the indexes answered in the window.
func printStages(w io.Writer, store string, clients int) {
	stages.mu.Lock()
	defer stages.mu.Unlock()
	sub := stages.at["submitted"]
	type row struct {
		name string
		p    [4]float64
	}
	var rows []row
	for name, m := range stages.at {
		if name == "submitted" {
			continue
		}
		var v []float64
		for i, t := range m {
			if s, ok := sub[i]; ok && stages.at["answered"][i] != 0 {
				v = append(v, float64(t-s)/1e3)
			}
		}
		if len(v) == 0 {
			continue
		}
		slices.Sort(v)
		q := func(f float64) float64 { return v[min(len(v)-1, int(f*float64(len(v))))] }
		rows = append(rows, row{name, [4]float64{q(0.1), q(0.5), q(0.9), q(0.99)}})
	}
	slices.SortStableFunc(rows, func(a, b row) int {
		if a.p[1] != b.p[1] {
			if a.p[1] < b.p[1] {
				return -1
			}
			return 1
		}
		return 0
	})
	fmt.Fprintf(w, "\nstages, %s, %d clients (µs after the client submitted)\n", store, clients)
	fmt.Fprintf(w, "%-24s %9s %9s %9s %9s\n", "stage", "p10", "p50", "p90", "p99")
	for _, r := range rows {
		fmt.Fprintf(w, "%-24s %9.0f %9.0f %9.0f %9.0f\n", r.name, r.p[0], r.p[1], r.p[2], r.p[3])
	}
}
