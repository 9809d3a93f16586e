package sidebyside

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Phases of a throughput run, which every client checks after each Apply.
const (
	phaseWarmup = iota
	phaseMeasure
	phaseStop
)

// throughput runs closed-loop clients against the leader: each submits
// a command and waits for it to be applied before the next. Clients load
// the cluster through the warm-up, then the window opens: throughput,
// latencies and the process's allocations count from there to its close.
func throughput(c Cluster, clients int, o Options, m *Measurement) error {
	leader, err := awaitLeader(c, o)
	if err != nil {
		return err
	}
	var (
		phase  atomic.Int32
		wg     sync.WaitGroup
		mu     sync.Mutex
		merged histogram
		ops    atomic.Uint64
		errs   atomic.Uint64
	)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := new(histogram)
			// A command is never changed after Apply (the library keeps it),
			// so each client reuses one and the driver allocates nothing per
			// operation.
			cmd := command(o.CmdSize, i+1, 1)
			for {
				p := phase.Load()
				if p == phaseStop {
					break
				}
				t0 := time.Now()
				err := leader.Apply(cmd, 0)
				d := time.Since(t0)
				if phase.Load() != phaseMeasure || p != phaseMeasure {
					continue // started or ended outside the window
				}
				if err != nil {
					errs.Add(1)
					continue
				}
				ops.Add(1)
				h.record(d)
			}
			mu.Lock()
			merged.merge(h)
			mu.Unlock()
		}()
	}
	time.Sleep(o.Warmup) // the warm-up is a length of load, not a condition
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0, cpuOK := processCPU()
	wait0, waitOK := processRunWait()
	start := time.Now()
	prof, perr := startWindowProfiles(o, m)
	phase.Store(phaseMeasure)
	time.Sleep(o.Duration) // the window is a length of time
	phase.Store(phaseStop)
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	cpu1, _ := processCPU()
	wait1, _ := processRunWait()
	perr = errors.Join(perr, prof.stop())
	wg.Wait()
	if perr != nil {
		return fmt.Errorf("profiles: %w", perr)
	}

	n := ops.Load()
	m.Ops, m.Errors, m.Seconds = n, errs.Load(), elapsed.Seconds()
	if n == 0 {
		return fmt.Errorf("no command committed in the %v window (%d errors)", o.Duration, m.Errors)
	}
	m.OpsPerSec = float64(n) / elapsed.Seconds()
	m.P50Ms = ms(merged.percentile(50))
	m.P99Ms = ms(merged.percentile(99))
	m.P90Ms = ms(merged.percentile(90))
	m.P999Ms = ms(merged.percentile(99.9))
	if cpuOK {
		m.CPUCores = (cpu1 - cpu0).Seconds() / elapsed.Seconds()
		m.CPUMicrosPerOp = float64((cpu1-cpu0)/time.Microsecond) / float64(n)
	}
	if waitOK {
		m.RunWaitCores = max(wait1-wait0, 0).Seconds() / elapsed.Seconds()
	}
	m.AllocsPerOp = float64(after.Mallocs-before.Mallocs) / float64(n)
	m.BytesPerOp = float64(after.TotalAlloc-before.TotalAlloc) / float64(n)
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
