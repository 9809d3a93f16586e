package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// measureLimit runs par copies of one operation at once, each in a loop
// for window, and reports their latencies together; ops/s is per copy.
func measureLimit(op string, par, size int, window time.Duration, dir string) (result, error) {
	loops := make([]func() error, par)
	var closers []func() error
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	cmd := make([]byte, size)
	for i := range loops {
		d := filepath.Join(dir, fmt.Sprint(i))
		if err := os.MkdirAll(d, 0o700); err != nil {
			return result{}, err
		}
		switch op {
		case "fdatasync", "bolt":
			kind := "wal"
			if op == "bolt" {
				kind = "bolt"
			}
			s, err := openStore(kind, d)
			if err != nil {
				return result{}, err
			}
			closers = append(closers, s.close)
			index := uint64(0)
			cmds := [][]byte{cmd}
			loops[i] = func() error {
				index++
				return s.append(index, cmds)
			}
		case "loopback":
			a, b, err := connect()
			if err != nil {
				return result{}, err
			}
			closers = append(closers, a.Close, b.Close)
			go echo(b)
			var buf [8]byte
			loops[i] = func() error {
				if _, err := a.Write(buf[:]); err != nil {
					return err
				}
				_, err := io.ReadFull(a, buf[:])
				return err
			}
		default:
			return result{}, fmt.Errorf("unknown operation %q", op)
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		lat  []time.Duration
		errs []error
	)
	cpu0 := processCPU()
	start := time.Now()
	end := start.Add(window)
	for _, loop := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			var err error
			// At least one operation, however late this goroutine starts.
			for t0, first := time.Now(), true; first || t0.Before(end); t0, first = time.Now(), false {
				if err = loop(); err != nil {
					break
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			if err != nil {
				errs = append(errs, err)
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1 := processCPU()
	if len(errs) > 0 {
		return result{}, errs[0]
	}
	r := summarize(lat, elapsed)
	r.OpsPerSec /= float64(par)
	r.Mode, r.Compare, r.Library, r.Parallel = "limit", op, "floor", par
	r.Start = start.UTC().Format(time.RFC3339)
	if r.Ops > 0 {
		r.CPUMicrosPerOp = float64((cpu1-cpu0)/time.Microsecond) / float64(r.Ops)
	}
	return r, nil
}

// echo answers every 8 bytes read on c with the same 8 bytes.
func echo(c net.Conn) {
	var buf [8]byte
	for {
		if _, err := io.ReadFull(c, buf[:]); err != nil {
			return
		}
		if _, err := c.Write(buf[:]); err != nil {
			return
		}
	}
}

func printLimits(w io.Writer, rs []result) {
	fmt.Fprintln(w, "| operation | at once | rep | ops/s each | p50 ms | p99 ms | CPU µs/op | load |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---|")
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %d | %d | %.0f | %.3f | %.3f | %.1f | %s |\n",
			r.Compare, r.Parallel, r.Rep, r.OpsPerSec, r.P50Ms, r.P99Ms, r.CPUMicrosPerOp, r.LoadAverage)
	}
}
