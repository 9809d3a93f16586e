package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
)

// sbsLine is the part of a sidebyside JSON line (and of this command's)
// that the ratios read.
type sbsLine struct {
	Mode      string  `json:"mode"`
	Compare   string  `json:"compare"`
	Library   string  `json:"library"`
	Clients   int     `json:"clients"`
	OpsPerSec float64 `json:"ops_per_sec"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	CPU       float64 `json:"cpu_us_per_op"`
	Load      string  `json:"load_average"`
}

// printRatios reads JSON lines of floor runs and of sidebyside throughput
// runs taken alternately (the n-th run of each library in a cell beside
// the n-th floor run) and prints, per store and client count, the medians
// of the per-run ratios: floor/reference (the best ratio reachable),
// ours/floor (how close ours is) and ours/reference, with the medians of
// p50, p99 and CPU per op.
func printRatios(w io.Writer, paths []string) error {
	type key struct {
		store   string
		clients int
	}
	runs := map[key]map[string][]sbsLine{}
	var order []key
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var l sbsLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				f.Close()
				return fmt.Errorf("%s: %w", p, err)
			}
			if l.Mode != "floor" && l.Mode != "throughput" {
				continue
			}
			k := key{l.Compare, l.Clients}
			if runs[k] == nil {
				runs[k] = map[string][]sbsLine{}
				order = append(order, k)
			}
			runs[k][l.Library] = append(runs[k][l.Library], l)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, "| store | clients | runs | floor/ref ops/s | ours/floor | ours/ref | p50 ms floor / ours / ref | p99 ms floor / ours / ref | p99 floor/ref | p99 ours/ref | CPU µs/op floor / ours / ref |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---|---|---:|---:|---|")
	for _, k := range order {
		fl, ours, ref := runs[k]["floor"], runs[k]["ours"], runs[k]["reference"]
		n := min(len(fl), len(ours), len(ref))
		if n == 0 {
			continue
		}
		fl, ours, ref = fl[:n], ours[:n], ref[:n]
		ratio := func(a, b []sbsLine, get func(sbsLine) float64) float64 {
			var xs []float64
			for i := range a {
				xs = append(xs, get(a[i])/get(b[i]))
			}
			return median(xs)
		}
		of := func(rs []sbsLine, get func(sbsLine) float64) float64 {
			var xs []float64
			for _, r := range rs {
				xs = append(xs, get(r))
			}
			return median(xs)
		}
		ops := func(l sbsLine) float64 { return l.OpsPerSec }
		p50 := func(l sbsLine) float64 { return l.P50Ms }
		p99 := func(l sbsLine) float64 { return l.P99Ms }
		cpu := func(l sbsLine) float64 { return l.CPU }
		fmt.Fprintf(w, "| %s | %d | %d | %.2f | %.2f | %.2f | %.2f / %.2f / %.2f | %.1f / %.1f / %.1f | %.2f | %.2f | %.0f / %.0f / %.0f |\n",
			k.store, k.clients, n, ratio(fl, ref, ops), ratio(ours, fl, ops), ratio(ours, ref, ops),
			of(fl, p50), of(ours, p50), of(ref, p50), of(fl, p99), of(ours, p99), of(ref, p99),
			ratio(fl, ref, p99), ratio(ours, ref, p99), of(fl, cpu), of(ours, cpu), of(ref, cpu))
	}
	return nil
}

// median is the middle of xs (the mean of the two middle values for an
// even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
