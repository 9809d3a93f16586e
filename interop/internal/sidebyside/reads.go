package sidebyside

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// readVariant is one way of reading that the reads mode measures.
type readVariant struct {
	name string  // as the command line and the output name it
	way  ReadWay // what each read calls on its node
	// everyNode spreads the readers over every node, round robin, instead
	// of sending them all to the leader.
	everyNode bool
}

// The read variants, in the order they run:
//
//   - log: Apply of a get command on the leader; the value is what the
//     leader's FSM answered for that entry. One log entry (and one disk
//     write) per read.
//   - verify: VerifyLeader on the leader, then a direct read of the
//     leader's machine. This is the usual pattern (Consul's consistent
//     reads): a leader's FSM lags its commit index only for entries of an
//     earlier term, and those are behind a Barrier issued once per
//     leadership; here awaitLeader's first commit through the leader plays
//     that Barrier. No log entry per read, one heartbeat round.
//   - verify-barrier: VerifyLeader, then Barrier, then a direct read, per
//     read: the naive combination, which pays a log entry per read as the
//     log read does.
//   - readindex: ReadIndex on the leader, then a direct read of its
//     machine.
//   - follower: ReadIndex on every node, readers spread round robin over
//     the three, each then reading its own node's machine.
//   - lease: ReadLease on the leader, then a direct read of its machine.
var readVariants = []readVariant{
	{name: "log", way: ReadLog},
	{name: "verify", way: ReadVerify},
	{name: "verify-barrier", way: ReadVerifyBarrier},
	{name: "readindex", way: ReadIndex},
	{name: "follower", way: ReadIndex, everyNode: true},
	{name: "lease", way: ReadLease},
}

// ReadVariants names every read variant of the reads mode.
var ReadVariants = func() []string {
	var out []string
	for _, v := range readVariants {
		out = append(out, v.name)
	}
	return out
}()

func variantNamed(name string) (readVariant, bool) {
	for _, v := range readVariants {
		if v.name == name {
			return v, true
		}
	}
	return readVariant{}, false
}

// maxWritesInFlight bounds the open-loop writer: a write that comes due
// while this many are unanswered is not issued, and counted as late.
const maxWritesInFlight = 1024

// maxStaleSamples is how many stale reads a run describes in full.
const maxStaleSamples = 10

// errUnsupported is what reads returns when a library cannot read the way
// a variant asks; runOne reports it as unsupported, not as a failure.
type errUnsupported struct{ reason string }

func (e errUnsupported) Error() string { return e.reason }

// unsupportedReason is the reason an error wrapping ErrUnsupported gives,
// without the sentinel's own words.
func unsupportedReason(err error) string {
	return strings.TrimPrefix(err.Error(), ErrUnsupported.Error()+": ")
}

// writer is the open-loop writer that runs alongside the readers: it
// issues puts at a fixed rate whether or not earlier ones have answered,
// each to register seq%ReadKeys with value seq, and records for every
// register the largest value acknowledged.
type writer struct {
	acked [ReadKeys]atomic.Uint64

	acks     atomic.Uint64 // acknowledged within the window
	errs     atomic.Uint64 // failed within the window
	late     atomic.Uint64 // came due within the window but not issued
	inflight chan struct{}
	wg       sync.WaitGroup
	done     chan struct{}
}

// startWriter starts writing through leader at rate puts per second until
// phase says stop; wait returns once every issued put has answered.
func startWriter(leader Node, rate, size int, phase *atomic.Int32) *writer {
	w := &writer{inflight: make(chan struct{}, maxWritesInFlight), done: make(chan struct{})}
	if rate <= 0 {
		close(w.done)
		return w
	}
	go func() {
		defer close(w.done)
		start := time.Now()
		var seq uint64 // puts due so far
		for {
			p := phase.Load()
			if p == phaseStop {
				return
			}
			due := uint64(time.Since(start) * time.Duration(rate) / time.Second)
			for ; seq < due; seq++ {
				select {
				case w.inflight <- struct{}{}:
					w.wg.Add(1)
					go w.put(leader, size, seq+1, phase)
				default:
					if p == phaseMeasure {
						w.late.Add(1)
					}
				}
			}
			time.Sleep(time.Millisecond) // the pace of an open loop, not a wait for a condition
		}
	}()
	return w
}

func (w *writer) put(leader Node, size int, seq uint64, phase *atomic.Int32) {
	defer func() {
		<-w.inflight
		w.wg.Done()
	}()
	key := uint32(seq % ReadKeys)
	err := leader.Apply(PutCommand(size, key, seq), 0)
	measured := phase.Load() == phaseMeasure
	if err != nil {
		if measured {
			w.errs.Add(1)
		}
		return
	}
	r := &w.acked[key]
	for {
		old := r.Load()
		if old >= seq || r.CompareAndSwap(old, seq) {
			break
		}
	}
	if measured {
		w.acks.Add(1)
	}
}

// wait returns once the writer stopped and every put it issued answered.
func (w *writer) wait() {
	<-w.done
	w.wg.Wait()
}

// staleCheck counts the reads checked and those that returned a value
// older than a write acknowledged before they started.
type staleCheck struct {
	checked atomic.Uint64
	stale   atomic.Uint64
	mu      sync.Mutex
	samples []string
}

func (s *staleCheck) check(reader int, node string, key uint32, floor, got uint64) {
	s.checked.Add(1)
	if got >= floor {
		return
	}
	s.stale.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) < maxStaleSamples {
		s.samples = append(s.samples, fmt.Sprintf("reader %d on %s, register %d: read %d, but %d was acknowledged before the read started", reader, node, key, got, floor))
	}
}

// probe makes one read on every target before the load starts, so that a
// way the library lacks shows at once as unsupported. Before probing a
// follower it waits until the follower has applied as much as the leader
// (it has then heard from the leader of this term), so that ErrNotLeader
// means the library refuses follower reads, not that the follower has yet
// to learn who leads.
func probe(v readVariant, leader Node, targets []Node, o Options) error {
	for _, n := range targets {
		if n != leader {
			want := leader.Machine().Applied()
			deadline := time.Now().Add(o.Timeout)
			for n.Machine().Applied() < want {
				if time.Now().After(deadline) {
					return fmt.Errorf("%s did not catch up with the leader within %v", n.ID(), o.Timeout)
				}
				time.Sleep(5 * time.Millisecond) // polling a counter: there is no event to wait for
			}
		}
		_, err := n.Read(v.way, 0, o.Timeout)
		switch {
		case err == nil:
		case errors.Is(err, ErrUnsupported):
			return errUnsupported{unsupportedReason(err)}
		case n != leader && errors.Is(err, ErrNotLeader):
			return errUnsupported{"follower ReadIndex answered ErrNotLeader"}
		default:
			return fmt.Errorf("first %s read on %s: %w", v.name, n.ID(), err)
		}
	}
	return nil
}

// reads runs closed-loop readers, each reading one register the way v
// says, while an open-loop writer puts o.WriteRate commands per second
// through the leader. Every read is checked against the largest value
// acknowledged for its register before it started (a cheap
// linearizability check: a read may never go back before a completed
// write). Readers and writer load the cluster through the warm-up; reads,
// latencies, acknowledged writes, process CPU and the time the process's
// threads waited for a CPU count over the window.
func reads(c Cluster, v readVariant, readers int, o Options, m *Measurement) error {
	leader, err := awaitLeader(c, o)
	if err != nil {
		return err
	}
	m.Leader = leader.ID()
	targets := []Node{leader}
	if v.everyNode {
		targets = c.Nodes()
	}
	if err := probe(v, leader, targets, o); err != nil {
		return err
	}
	var (
		phase  atomic.Int32
		wg     sync.WaitGroup
		mu     sync.Mutex
		merged histogram
		ops    atomic.Uint64
		errs   atomic.Uint64
		check  staleCheck
		first  sync.Once
	)
	w := startWriter(leader, o.WriteRate, o.CmdSize, &phase)
	for i := range readers {
		node := targets[i%len(targets)]
		key := uint32(i % ReadKeys)
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := new(histogram)
			for {
				p := phase.Load()
				if p == phaseStop {
					break
				}
				floor := w.acked[key].Load()
				t0 := time.Now()
				got, err := node.Read(v.way, key, 0)
				d := time.Since(t0)
				if err == nil {
					check.check(i, node.ID(), key, floor, got)
				}
				if phase.Load() != phaseMeasure || p != phaseMeasure {
					continue // started or ended outside the window
				}
				if err != nil {
					errs.Add(1)
					first.Do(func() { m.FirstReadError = fmt.Sprintf("on %s: %v", node.ID(), err) })
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
	cpu0, cpuOK := processCPU()
	wait0, waitOK := processRunWait()
	start := time.Now()
	prof, perr := startWindowProfiles(o, m)
	phase.Store(phaseMeasure)
	time.Sleep(o.Duration) // the window is a length of time
	phase.Store(phaseStop)
	elapsed := time.Since(start)
	cpu1, _ := processCPU()
	wait1, _ := processRunWait()
	perr = errors.Join(perr, prof.stop())
	wg.Wait()
	w.wait()
	if perr != nil {
		return fmt.Errorf("profiles: %w", perr)
	}

	n := ops.Load()
	m.Ops, m.Errors, m.Seconds = n, errs.Load(), elapsed.Seconds()
	m.WritesPerSec = float64(w.acks.Load()) / elapsed.Seconds()
	m.WriteErrors, m.WritesLate = w.errs.Load(), w.late.Load()
	m.Checked, m.Stale = check.checked.Load(), check.stale.Load()
	m.StaleSamples = check.samples
	if cpuOK {
		m.CPUCores = (cpu1 - cpu0).Seconds() / elapsed.Seconds()
		if n > 0 {
			m.CPUMicrosPerRead = float64((cpu1-cpu0)/time.Microsecond) / float64(n)
		}
	}
	if waitOK {
		m.RunWaitCores = max(wait1-wait0, 0).Seconds() / elapsed.Seconds()
	}
	if n == 0 {
		return fmt.Errorf("no read completed in the %v window (%d errors)", o.Duration, m.Errors)
	}
	m.OpsPerSec = float64(n) / elapsed.Seconds()
	m.P50Ms = ms(merged.percentile(50))
	m.P99Ms = ms(merged.percentile(99))
	if m.Stale > 0 {
		return fmt.Errorf("%d stale reads of %d checked", m.Stale, m.Checked)
	}
	return nil
}
