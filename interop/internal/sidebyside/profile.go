package sidebyside

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
)

// windowProfiles records profiles of one measured window when
// Options.ProfileDir is set: a CPU profile of the window alone, and the
// allocation profile (with Options.Contention, the block and mutex
// profiles too) at the window's start and end
// (the runtime keeps those from the process's start, so compare the two
// with `go tool pprof -diff_base start end`). The files are named after
// the run: library, store comparison, read variant (reads mode), clients
// and repetition.
type windowProfiles struct {
	base  string // path without the suffix; "" when not profiling
	cpu   *os.File
	trace *os.File // an execution trace of the window, when Options.Trace
	// contention says block and mutex profiles are recorded.
	contention bool
}

// startWindowProfiles starts the profiles of a window. An error leaves
// the profiles it could start running; stop ends them.
func startWindowProfiles(o Options, m *Measurement) (*windowProfiles, error) {
	w := &windowProfiles{}
	if o.ProfileDir == "" {
		return w, nil
	}
	name := fmt.Sprintf("%s-%s-%s-c%d-r%d", m.Mode, m.Compare, m.Library, m.Clients, m.Rep)
	if m.Read != "" {
		name = fmt.Sprintf("%s-%s-%s-%s-c%d-r%d", m.Mode, m.Compare, m.Library, m.Read, m.Clients, m.Rep)
	}
	w.base = filepath.Join(o.ProfileDir, name)
	w.contention = o.Contention
	if w.contention {
		// Every blocking event and every contended lock: the window is
		// short. Recording them costs CPU in every select and lock, so
		// the CPU profile of such a window shows more of both.
		runtime.SetBlockProfileRate(1)
		runtime.SetMutexProfileFraction(1)
	}
	if err := w.write("start"); err != nil {
		return w, err
	}
	f, err := os.Create(w.base + ".cpu.pprof")
	if err != nil {
		return w, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return w, fmt.Errorf("CPU profile of the window (is -cpuprofile on too?): %w", err)
	}
	w.cpu = f
	if o.Trace {
		t, err := os.Create(w.base + ".trace")
		if err != nil {
			return w, err
		}
		if err := trace.Start(t); err != nil {
			t.Close()
			return w, err
		}
		w.trace = t
	}
	return w, nil
}

// stop ends the CPU profile and writes the end-of-window profiles.
func (w *windowProfiles) stop() error {
	if w.base == "" {
		return nil
	}
	var err error
	if w.trace != nil {
		trace.Stop()
		err = w.trace.Close()
	}
	if w.cpu != nil {
		pprof.StopCPUProfile()
		err = errors.Join(err, w.cpu.Close())
	}
	if werr := w.write("end"); err == nil {
		err = werr
	}
	if w.contention {
		runtime.SetBlockProfileRate(0)
		runtime.SetMutexProfileFraction(0)
	}
	return err
}

func (w *windowProfiles) write(when string) error {
	names := []string{"allocs"}
	if w.contention {
		names = append(names, "block", "mutex")
	}
	for _, name := range names {
		f, err := os.Create(fmt.Sprintf("%s.%s-%s.pprof", w.base, name, when))
		if err != nil {
			return err
		}
		err = pprof.Lookup(name).WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}
