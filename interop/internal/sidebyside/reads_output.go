package sidebyside

import (
	"fmt"
	"io"
	"strings"
)

// readTargets are issue 16's targets for ours, each against a baseline
// variant of ours in the same store comparison and reader count.
var readTargets = map[string]struct {
	baseline string
	factor   float64
}{
	"readindex": {"log", 10},
	"lease":     {"log", 30},
	"follower":  {"readindex", 1.5},
}

// unsupported is why every run of lib in the cell was unsupported, "" when
// some run was not (or there is none).
func (c *cell) unsupported(lib string) string {
	runs := c.runs[lib]
	if len(runs) == 0 {
		return ""
	}
	for _, m := range runs {
		if m.Unsupported == "" {
			return ""
		}
	}
	return runs[0].Unsupported
}

// stale sums the stale reads of every run of lib, failed ones included.
func (c *cell) stale(lib string) uint64 {
	var n uint64
	for _, m := range c.runs[lib] {
		n += m.Stale
	}
	return n
}

func readsTable(w io.Writer, cells []*cell) {
	fmt.Fprintln(w, "Reads (closed-loop readers, each on one register that an open-loop writer puts to through the leader alongside; medians over repetitions; ratios of median reads/s; every read checked against the writes acknowledged before it started):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| stores (reference / ours) | readers | read | reference reads/s | p50 / p99 ms | ours reads/s | p50 / p99 ms | ours ÷ reference | ours ÷ ours log | target for ours | writes/s ref / ours | CPU cores ref / ours | waiting for a CPU ref / ours | stale reads ref / ours |")
	fmt.Fprintln(w, "|---|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
	find := func(like *cell, read string) *cell {
		for _, c := range cells {
			if c.key.compare == like.key.compare && c.key.clients == like.key.clients && c.key.read == read {
				return c
			}
		}
		return nil
	}
	oursOps := func(c *cell) float64 {
		if c == nil {
			return median(nil)
		}
		return median(c.values(libOurs, opsOf))
	}
	for _, c := range cells {
		get := func(lib string, f func(Measurement) float64) float64 { return median(c.values(lib, f)) }
		side := func(lib string) (ops, lat string) {
			if why := c.unsupported(lib); why != "" {
				if lib == libReference {
					return "n/a", "n/a"
				}
				return "unsupported (" + why + ")", "n/a"
			}
			return num(get(lib, opsOf), 0), num(get(lib, p50Of), 2) + " / " + num(get(lib, p99Of), 2)
		}
		rOps, rLat := side(libReference)
		oOps, oLat := side(libOurs)
		o := get(libOurs, opsOf)
		target := "—"
		if t, ok := readTargets[c.key.read]; ok {
			target = fmt.Sprintf("≥ %s× %s", strings.TrimSuffix(num(t.factor, 1), ".0"), t.baseline)
			if r := o / oursOps(find(c, t.baseline)); num(r, 2) != "n/a" {
				verdict := "not met"
				if r >= t.factor {
					verdict = "met"
				}
				target += fmt.Sprintf(": %s×, %s", num(r, 2), verdict)
			}
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s / %s | %s / %s | %d / %d |\n",
			storesOf(c), c.key.clients, c.key.read,
			rOps, rLat, oOps, oLat,
			num(o/get(libReference, opsOf), 2), num(o/oursOps(find(c, "log")), 2), target,
			num(get(libReference, writesOf), 0), num(get(libOurs, writesOf), 0),
			num(get(libReference, coresOf), 2), num(get(libOurs, coresOf), 2),
			num(get(libReference, waitOf), 2), num(get(libOurs, waitOf), 2),
			c.stale(libReference), c.stale(libOurs))
	}
}

func writesOf(m Measurement) float64 { return m.WritesPerSec }
func coresOf(m Measurement) float64  { return m.CPUCores }
func waitOf(m Measurement) float64   { return m.RunWaitCores }
