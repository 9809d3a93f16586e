package raft

import (
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Backpressure (backpressure.go): with an open-loop client, a slow disk or
// a slow FSM must not let what a node holds in memory grow without bound;
// the leader holds requests back and they answer ErrEnqueueTimeout.
//
// The tests count the bytes held in the structures themselves, measured
// on each node's run loop after every event it handles: the entries in
// the leader's write queue, the durable entries memLog holds that the FSM
// has not taken yet plus those in tasks handed to the FSM goroutine, and
// the committed entries a leader's futures hold until they are applied.

const (
	bpEntrySize = 1000
	bpCharge    = bpEntrySize + logEntryOverhead
	bpBound     = 32 * 1024
)

// slowDisk is a log store whose every StoreLogs call takes delay (fake
// time).
type slowDisk struct {
	*InmemStore
	delay time.Duration
}

func (s *slowDisk) StoreLogs(logs []*Log) error {
	time.Sleep(s.delay)
	return s.InmemStore.StoreLogs(logs)
}

func (s *slowDisk) StoreLog(l *Log) error { return s.StoreLogs([]*Log{l}) }

// backlogMeter records, per node, the most bytes each structure held.
type backlogMeter struct {
	mu sync.Mutex
	// unwritten: entries in a leader's write queue (queued or being
	// written).
	unwritten map[ServerID]int64
	// unapplied: durable entries memLog holds that the FSM has not taken,
	// plus the entries in tasks handed to the FSM goroutine.
	unapplied map[ServerID]int64
	// leaderUnapplied: a leader's committed entries not yet applied, all
	// of which its futures hold.
	leaderUnapplied map[ServerID]int64
}

func newBacklogMeter() *backlogMeter {
	return &backlogMeter{
		unwritten:       make(map[ServerID]int64),
		unapplied:       make(map[ServerID]int64),
		leaderUnapplied: make(map[ServerID]int64),
	}
}

// hooks returns the hooks that measure node id after every run-loop step.
func (m *backlogMeter) hooks(id ServerID) *runHooks {
	return &runHooks{afterStep: func(r *Raft) {
		var unwritten, unapplied, leaderUnapplied int64
		if r.st.lead != nil {
			for _, op := range append(r.st.writes.queued, r.st.writes.inflight) {
				if op == nil {
					continue
				}
				for _, e := range op.entries {
					unwritten += entryMemoryBytes(e)
				}
			}
			// Every entry of these tests but the leader's no-op is
			// bpEntrySize long: counting each as one is an upper bound.
			if c, a := r.st.commitIndex, r.pub.appliedIndex.Load(); c > a {
				leaderUnapplied = int64(c-a) * bpCharge
			}
		}
		for _, e := range r.st.log.entries {
			if e.Index > r.st.dispatched && e.Index <= r.st.writes.durable {
				unapplied += entryMemoryBytes(e)
			}
		}
		unapplied += r.fsmHeld.Load()
		m.mu.Lock()
		defer m.mu.Unlock()
		m.unwritten[id] = max(m.unwritten[id], unwritten)
		m.unapplied[id] = max(m.unapplied[id], unapplied)
		m.leaderUnapplied[id] = max(m.leaderUnapplied[id], leaderUnapplied)
	}}
}

// openLoopResult counts how an open-loop client's requests ended.
type openLoopResult struct {
	mu                        sync.Mutex
	committed, enqueueTimeout int
	other                     []error
}

// runOpenLoop sends one Apply every interval for duration, each with
// timeout, without waiting for earlier ones, and waits for every answer.
func runOpenLoop(leader *Raft, interval, timeout, duration time.Duration) *openLoopResult {
	res := &openLoopResult{}
	var wg sync.WaitGroup
	tick := time.NewTicker(interval)
	defer tick.Stop()
	end := time.Now().Add(duration)
	for i := 0; time.Now().Before(end); i++ {
		<-tick.C
		data := make([]byte, bpEntrySize)
		copy(data, fmt.Sprintf("cmd-%d", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := leader.Apply(data, timeout).Error()
			res.mu.Lock()
			defer res.mu.Unlock()
			switch {
			case err == nil:
				res.committed++
			case err == ErrEnqueueTimeout: // the sentinel itself, as callers compare it
				res.enqueueTimeout++
			default:
				res.other = append(res.other, err)
			}
		}()
	}
	wg.Wait()
	return res
}

func (res *openLoopResult) check(t *testing.T) {
	t.Helper()
	t.Logf("open loop: %d committed, %d ErrEnqueueTimeout, %d other errors", res.committed, res.enqueueTimeout, len(res.other))
	if len(res.other) > 0 {
		t.Fatalf("requests failed otherwise than with ErrEnqueueTimeout: %v", res.other[:min(5, len(res.other))])
	}
	if res.enqueueTimeout == 0 {
		t.Fatalf("no request answered ErrEnqueueTimeout although the client sends faster than the cluster can take")
	}
	if res.committed == 0 {
		t.Fatalf("no request committed")
	}
}

func TestBackpressure_SlowDiskBoundsTheLeadersUnwrittenEntries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		meter := newBacklogMeter()
		c := newTestCluster(t, 3, clusterOpts{
			conf: func(conf *Config) {
				conf.MaxUnwrittenBytes = bpBound
				conf.hooks = meter.hooks(conf.LocalID)
			},
			// Each write takes 100ms: about a hundred requests arrive
			// meanwhile, several times the bound.
			logs: func(_ ServerID, s *InmemStore) LogStore {
				return &slowDisk{InmemStore: s, delay: 100 * time.Millisecond}
			},
		})
		defer c.shutdown()
		leader := c.waitForLeader()
		res := runOpenLoop(leader.raft, time.Millisecond, 20*time.Millisecond, 2*time.Second)
		res.check(t)
		c.waitForSameFSMs(res.committed)

		meter.mu.Lock()
		defer meter.mu.Unlock()
		got := meter.unwritten[leader.id]
		t.Logf("most unwritten bytes on the leader: %d (bound %d)", got, bpBound)
		// The leader decides before it knows a request's size: the last
		// entry it takes may pass the bound.
		if got > bpBound+bpCharge {
			t.Fatalf("the leader held %d bytes of unwritten entries, over the bound %d (+ one entry, %d)", got, bpBound, bpCharge)
		}
		if got < bpBound/2 {
			t.Fatalf("the leader never held more than %d unwritten bytes: the test did not press against the bound %d", got, bpBound)
		}
	})
}

func TestBackpressure_SlowFSMBoundsTheUnappliedEntriesInMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		meter := newBacklogMeter()
		c := newTestCluster(t, 3, clusterOpts{
			conf: func(conf *Config) {
				conf.MaxUnappliedMemoryBytes = bpBound
				conf.hooks = meter.hooks(conf.LocalID)
			},
		})
		defer c.shutdown()
		leader := c.waitForLeader()
		// The leader's FSM takes 5ms an entry; one follower's takes 10ms,
		// so it falls further and further behind the commit index.
		leader.fsm.delay.Store(int64(5 * time.Millisecond))
		laggard := aFollower(c, leader)
		laggard.fsm.delay.Store(int64(10 * time.Millisecond))
		res := runOpenLoop(leader.raft, time.Millisecond, 20*time.Millisecond, 2*time.Second)
		res.check(t)
		c.waitForSameFSMs(res.committed)
		// Once everything is applied, no task is counted as held: the
		// accounting does not leak.
		c.waitFor(time.Second, "the FSM tasks' charge to return to zero", func() bool {
			for _, n := range c.nodes {
				if n.raft.fsmHeld.Load() != 0 {
					return false
				}
			}
			return true
		})

		meter.mu.Lock()
		defer meter.mu.Unlock()
		for _, n := range c.nodes {
			got := meter.unapplied[n.id]
			t.Logf("%s: most unapplied bytes held in memory %d (bound %d)", n.id, got, bpBound)
			if got > bpBound {
				t.Errorf("%s held %d bytes of committed, unapplied entries in memory, over the bound %d", n.id, got, bpBound)
			}
		}
		if got := meter.unapplied[laggard.id]; got < bpBound/2 {
			t.Errorf("the laggard never held more than %d bytes for its FSM: the test did not press against the bound %d", got, bpBound)
		}
		got := meter.leaderUnapplied[leader.id]
		t.Logf("most committed, unapplied bytes on the leader: %d", got)
		if got > bpBound+bpCharge {
			t.Errorf("the leader's futures held %d bytes of committed, unapplied entries, over the bound %d (+ one entry)", got, bpBound)
		}
	})
}

func TestByteLedger_ChargesRunsOfEntries(t *testing.T) {
	entries := func(from, to uint64, size int) []*Log {
		var out []*Log
		for i := from; i <= to; i++ {
			out = append(out, &Log{Index: i, Data: make([]byte, size)})
		}
		return out
	}
	var l byteLedger
	l.add(entries(10, 14, 100)) // 228 each
	l.add(entries(15, 16, 0))   // 128 each
	for _, tc := range []struct {
		from, to uint64
		want     int64
	}{
		{9, 14, 5 * 228},
		{0, 16, 5*228 + 2*128},
		{12, 15, 2*228 + 128},
		{14, 14, 0},
		{16, 20, 0},
		{15, 99, 128},
	} {
		if got := l.between(tc.from, tc.to); got != tc.want {
			t.Errorf("between(%d, %d) = %d, want %d", tc.from, tc.to, got, tc.want)
		}
	}
	l.forget(12)
	if got := l.between(12, 16); got != 2*228+2*128 {
		t.Errorf("after forgetting 12, between(12, 16) = %d, want %d", got, 2*228+2*128)
	}
	l.forget(99)
	if got := l.between(16, 20); got != 0 {
		t.Errorf("after forgetting everything, between(16, 20) = %d, want 0", got)
	}
	l.add(entries(17, 17, 0))
	if got := l.between(16, 17); got != 128 {
		t.Errorf("after forgetting everything and adding 17, between(16, 17) = %d, want 128", got)
	}
	// A log reset under the leader starts the ledger over.
	l.add(entries(40, 41, 0))
	if got := l.between(39, 41); got != 2*128 {
		t.Errorf("after a jump to 40, between(39, 41) = %d, want %d", got, 2*128)
	}
}

func TestMemLog_TrimToBudgetDropsOnlyDurableEntries(t *testing.T) {
	var m memLog
	var entries []*Log
	for i := uint64(1); i <= 10; i++ {
		entries = append(entries, &Log{Index: i, Term: 1, Data: make([]byte, 72)}) // 200 each
	}
	m.append(entries)
	if got := m.chargeThrough(10); got != 2000 {
		t.Fatalf("chargeThrough(10) = %d, want 2000", got)
	}
	// Entries 1..6 are durable; keep at most 500 bytes of them.
	m.trimToBudget(6, 500)
	if first := m.firstHeld(); first != 5 {
		t.Fatalf("after trimming to 500 bytes of 1..6, the first held entry is %d, want 5", first)
	}
	if got := m.chargeThrough(6); got != 400 {
		t.Fatalf("chargeThrough(6) = %d, want 400", got)
	}
	// A budget of nothing never drops an entry that may not be durable.
	m.trimToBudget(6, -100)
	if first := m.firstHeld(); first != 7 {
		t.Fatalf("after trimming to nothing, the first held entry is %d, want 7", first)
	}
	if got := m.chargeThrough(10); got != 800 {
		t.Fatalf("chargeThrough(10) = %d, want 800", got)
	}
	m.truncate(9, 1)
	if got := m.chargeThrough(10); got != 400 {
		t.Fatalf("after truncating at 9, chargeThrough(10) = %d, want 400", got)
	}
	m.trimToBudget(8, 0)
	if m.held() != 0 || m.chargeThrough(10) != 0 {
		t.Fatalf("after trimming everything, %d entries held, charged %d", m.held(), m.chargeThrough(10))
	}
	m.append([]*Log{{Index: 9, Term: 1}})
	if got := m.chargeThrough(9); got != logEntryOverhead {
		t.Fatalf("after appending to an emptied log, chargeThrough(9) = %d, want %d", got, logEntryOverhead)
	}
}
