package raft

import (
	"math"
	"strings"
	"time"

	"github.com/hashicorp/go-metrics"
)

// oldestLogAgeInterval is how often a leader reports the age of its oldest
// log entry.
const oldestLogAgeInterval = 10 * time.Second

// emitPeriodicMetrics reports gauges that are sampled rather than
// event-driven. It runs until shutdown.
func (r *Raft) emitPeriodicMetrics() {
	t := time.NewTicker(oldestLogAgeInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if r.State() == Leader {
				metrics.SetGauge([]string{"raft", "leader", "oldestLogAge"}, float32(r.oldestLogAge()/time.Millisecond))
			}
		case <-r.shutdownCh:
			return
		}
	}
}

// oldestLogAge returns the age of the first entry in the log store, or 0
// when it is unknown: an empty log, a store error, or an entry without
// AppendedAt, such as the one BootstrapCluster writes (so the age reads 0
// until a compaction removes that entry, as the reference's does). A
// compaction may remove the first entry between the reads of FirstIndex
// and of the entry; the entry that is first then is read instead, as long
// as the first index keeps moving.
func (r *Raft) oldestLogAge() time.Duration {
	var failed uint64 // the first index whose entry could not be read
	for range maxOldestLogReads {
		first, err := r.logs.FirstIndex()
		if err != nil || first == 0 || first == failed {
			return 0
		}
		var l Log
		if err := r.logs.GetLog(first, &l); err != nil {
			failed = first
			continue
		}
		if l.AppendedAt.IsZero() {
			return 0
		}
		return time.Since(l.AppendedAt)
	}
	return 0
}

// maxOldestLogReads bounds how many times oldestLogAge follows a moving
// first index.
const maxOldestLogReads = 5

// metricKey splits a dotted metric name into the key parts go-metrics hands
// to its sinks: "raft.replication.appendEntries.rpc" is four parts, as the
// reference library emits it, so sinks that work on key parts (rather than
// on the joined name) see the same keys from either library.
func metricKey(name string) []string { return strings.Split(name, ".") }

// keyFSMEnqueue measures how long a run of committed entries waited for the
// FSM goroutine to take it: on every node, where the reference measures it
// on the leader only (the time its run loop blocks handing entries over).
var keyFSMEnqueue = []string{"raft", "fsm", "enqueue"}

// keyCompactLogs measures the removal of the log's head that a snapshot
// covers.
var keyCompactLogs = []string{"raft", "compactLogs"}

// oldLogsKey is the key that measures dropping the whole log a restored or
// installed snapshot replaced. The reference names that step
// raft.removeOldLogs on a MonotonicLogStore (which cannot hold a gap, so
// loses its old entries) and raft.compactLogs on any other store.
func (r *Raft) oldLogsKey() []string {
	if ml, ok := r.logs.LogStore.(MonotonicLogStore); ok && ml.IsMonotonic() {
		return []string{"raft", "removeOldLogs"}
	}
	return keyCompactLogs
}

// Keys of the busy fractions of the run loop and of the FSM goroutine.
var (
	keyRunLoopLoad = []string{"raft", "thread", "main", "saturation"}
	keyFSMLoad     = []string{"raft", "thread", "fsm", "saturation"}
)

// loadReportInterval is the shortest time a loadMeter reports over.
const loadReportInterval = time.Second

// loadMeter measures how busy a goroutine that waits for events is: the
// fraction of time it spends handling events rather than waiting for the
// next one. The goroutine calls waiting just before it blocks and working
// as soon as it wakes. At one of these calls, once loadReportInterval has
// passed since the last report, the meter adds a sample of the fraction
// over that span, rounded to hundredths: 0 is always waiting, 1 never
// waiting. A goroutine that sleeps for a long time reports when it wakes,
// over the whole span. Owned by the goroutine it measures.
type loadMeter struct {
	key []string
	// base is when the meter started; every instant below is an offset
	// from it. time.Since(base) reads only the monotonic clock, half the
	// cost of time.Now, which the run loop would pay twice per event.
	base time.Time
	// spanStart begins the span the next report covers; waited is the time
	// spent waiting within it, not counting a wait still under way.
	spanStart time.Duration
	waited    time.Duration
	// waitStart is when the current wait began; waitingNow says a wait is
	// under way.
	waitStart  time.Duration
	waitingNow bool
	// report receives each fraction; tests replace it.
	report func(key []string, busy float32)
}

func newLoadMeter(key []string) *loadMeter {
	return &loadMeter{key: key, base: time.Now(), report: metrics.AddSample}
}

// waiting records that the goroutine is about to block for an event. A
// second call without working in between changes nothing.
func (m *loadMeter) waiting() {
	now := time.Since(m.base)
	if !m.waitingNow {
		m.waitStart, m.waitingNow = now, true
	}
	m.maybeReport(now)
}

// working records that the goroutine woke up with an event to handle.
func (m *loadMeter) working() {
	now := time.Since(m.base)
	if m.waitingNow {
		m.waited += now - m.waitStart
		m.waitingNow = false
	}
	m.maybeReport(now)
}

// maybeReport reports the span ending now if it is long enough, and starts
// the next one. A wait under way is split at now between the two spans.
func (m *loadMeter) maybeReport(now time.Duration) {
	span := now - m.spanStart
	if span < loadReportInterval {
		return
	}
	waited := m.waited
	if m.waitingNow {
		waited += now - m.waitStart
		m.waitStart = now
	}
	busy := 1 - float64(waited)/float64(span)
	busy = math.Round(min(max(busy, 0), 1)*100) / 100
	m.report(m.key, float32(busy))
	m.spanStart, m.waited = now, 0
}
