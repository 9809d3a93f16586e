package raft

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-metrics"
)

// keySink is a go-metrics sink that records every key slice it is handed,
// with its kind and labels, and the values of samples.
type keySink struct {
	mu      sync.Mutex
	seen    map[string]bool
	samples map[string][]float32
}

func newKeySink() *keySink {
	return &keySink{seen: make(map[string]bool), samples: make(map[string][]float32)}
}

// useKeySink makes a fresh keySink the global sink until the test ends.
func useKeySink(t *testing.T) *keySink {
	t.Helper()
	sink := newKeySink()
	conf := metrics.DefaultConfig("")
	conf.EnableHostname = false
	conf.EnableRuntimeMetrics = false
	conf.EnableServiceLabel = false
	if _, err := metrics.NewGlobal(conf, sink); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { metrics.NewGlobal(conf, &metrics.BlackholeSink{}) })
	return sink
}

// describeKey names a key slice unambiguously: its parts quoted, so that
// ["a.b"] and ["a","b"] differ.
func describeKey(kind string, key []string, labels []metrics.Label) string {
	parts := make([]string, len(key))
	for i, k := range key {
		parts[i] = fmt.Sprintf("%q", k)
	}
	s := kind + " [" + strings.Join(parts, " ") + "]"
	for _, l := range labels {
		s += fmt.Sprintf(" %s=%s", l.Name, l.Value)
	}
	return s
}

func (s *keySink) record(kind string, key []string, labels []metrics.Label) {
	s.mu.Lock()
	s.seen[describeKey(kind, key, labels)] = true
	s.mu.Unlock()
}

func (s *keySink) SetGauge(key []string, val float32) { s.record("gauge", key, nil) }
func (s *keySink) SetGaugeWithLabels(key []string, val float32, labels []metrics.Label) {
	s.record("gauge", key, labels)
}
func (s *keySink) EmitKey(key []string, val float32)     { s.record("kv", key, nil) }
func (s *keySink) IncrCounter(key []string, val float32) { s.record("counter", key, nil) }
func (s *keySink) IncrCounterWithLabels(key []string, val float32, labels []metrics.Label) {
	s.record("counter", key, labels)
}
func (s *keySink) AddSample(key []string, val float32) { s.AddSampleWithLabels(key, val, nil) }
func (s *keySink) AddSampleWithLabels(key []string, val float32, labels []metrics.Label) {
	s.record("sample", key, labels)
	s.mu.Lock()
	name := strings.Join(key, ".")
	s.samples[name] = append(s.samples[name], val)
	s.mu.Unlock()
}

// has reports whether the sink saw the key, described as describeKey does.
func (s *keySink) has(desc string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[desc]
}

// all returns every key seen, sorted.
func (s *keySink) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.seen))
	for k := range s.seen {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// sampled returns the samples recorded under a dotted name.
func (s *keySink) sampled(name string) []float32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.samples[name])
}

// The reference emits per-peer replication metrics with their name split
// into parts ("appendEntries", "rpc"); a sink working on key parts must see
// the same slices from this library.
func TestMetrics_ReplicationKeysAreSplitLikeTheReference(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := useKeySink(t)
		c := newTestCluster(t, 3, clusterOpts{})
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 10)
		c.waitForSameFSMs(10)
		// Heartbeats flow on their own schedule: give them time to.
		time.Sleep(time.Second)
		c.shutdown()

		peer := "node1"
		if leader.id == "node1" {
			peer = "node2"
		}
		label := []metrics.Label{{Name: "peer_id", Value: peer}}
		for _, want := range []string{
			describeKey("sample", []string{"raft", "replication", "appendEntries", "rpc"}, label),
			describeKey("counter", []string{"raft", "replication", "appendEntries", "logs"}, label),
			describeKey("sample", []string{"raft", "replication", "appendEntries", "rpc", peer}, nil),
			describeKey("counter", []string{"raft", "replication", "appendEntries", "logs", peer}, nil),
			describeKey("sample", []string{"raft", "replication", "heartbeat"}, label),
			describeKey("sample", []string{"raft", "replication", "heartbeat", peer}, nil),
		} {
			if !sink.has(want) {
				t.Errorf("not emitted: %s", want)
			}
		}
		// No part of any key holds a dot: every name is split at its dots.
		for _, k := range sink.all() {
			if strings.Contains(k, `.`) {
				t.Errorf("a key part holds a dot: %s", k)
			}
		}
	})
}

// recordLoad returns a loadMeter whose reports are collected in *got.
func recordLoad(got *[]float32) *loadMeter {
	m := newLoadMeter([]string{"test"})
	m.report = func(_ []string, busy float32) { *got = append(*got, busy) }
	return m
}

func TestLoadMeter_ReportsTheBusyFractionOncePerInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var got []float32
		m := recordLoad(&got)
		// Starts working without a wait first: the whole time is busy.
		m.working()
		time.Sleep(300 * time.Millisecond)
		m.waiting()
		time.Sleep(500 * time.Millisecond)
		m.working()
		time.Sleep(200 * time.Millisecond)
		if len(got) != 0 {
			t.Fatalf("reported %v before a whole interval passed", got)
		}
		m.waiting() // 1 s: 500 ms busy out of 1000
		if !slices.Equal(got, []float32{0.5}) {
			t.Fatalf("after the first second: %v, want [0.5]", got)
		}
		// A long wait reports an idle span when it ends.
		time.Sleep(1500 * time.Millisecond)
		m.working() // 1.5 s of waiting: 0
		time.Sleep(250 * time.Millisecond)
		m.waiting()
		m.waiting() // repeated: the wait began at the first call
		time.Sleep(750 * time.Millisecond)
		m.working() // 250 ms busy of 1 s
		if !slices.Equal(got, []float32{0.5, 0, 0.25}) {
			t.Fatalf("got %v, want [0.5 0 0.25]", got)
		}
		// A goroutine that never waits is fully busy.
		time.Sleep(1100 * time.Millisecond)
		m.working()
		m.working()
		if !slices.Equal(got, []float32{0.5, 0, 0.25, 1}) {
			t.Fatalf("got %v, want [0.5 0 0.25 1]", got)
		}
		// A wait under way when a report is due is split at the report.
		m.waiting()
		time.Sleep(1200 * time.Millisecond)
		m.waiting() // 1.2 s idle: 0; the wait goes on in the next span
		time.Sleep(400 * time.Millisecond)
		m.working()
		time.Sleep(600 * time.Millisecond)
		m.waiting() // 400 ms idle of 1 s
		if !slices.Equal(got, []float32{0.5, 0, 0.25, 1, 0, 0.6}) {
			t.Fatalf("got %v, want [0.5 0 0.25 1 0 0.6]", got)
		}
	})
}

// The run loop and the FSM goroutine report how busy they are, as the
// reference does, and the FSM's wait for work is measured.
func TestMetrics_ThreadSaturationAndFSMEnqueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := useKeySink(t)
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		// Every Apply takes 50 ms of the FSM goroutine's time.
		for _, n := range c.nodes {
			n.fsm.changed = func() { time.Sleep(50 * time.Millisecond); c.poke() }
		}
		time.Sleep(1500 * time.Millisecond)
		// 40 commands at once keep every FSM busy for 2 s.
		futures := make([]ApplyFuture, 40)
		for i := range futures {
			futures[i] = leader.raft.Apply([]byte(fmt.Sprintf("c%d", i)), 0)
		}
		for _, f := range futures {
			if err := f.Error(); err != nil {
				t.Fatal(err)
			}
		}
		c.waitForSameFSMs(40)
		c.shutdown()

		for _, key := range []string{"raft.thread.main.saturation", "raft.thread.fsm.saturation"} {
			got := sink.sampled(key)
			if len(got) == 0 {
				t.Errorf("%s: never reported", key)
			}
			for _, v := range got {
				if v < 0 || v > 1 {
					t.Errorf("%s: %v is not a fraction", key, v)
				}
			}
		}
		if fsm := sink.sampled("raft.thread.fsm.saturation"); slices.Max(append(fsm, 0)) < 0.9 {
			t.Errorf("FSM saturation %v: never near 1 while Apply took all its time", fsm)
		}
		if !sink.has(describeKey("sample", []string{"raft", "fsm", "enqueue"}, nil)) {
			t.Error("raft.fsm.enqueue not emitted")
		}
	})
}

// monotonicStore is an InmemStore that says it cannot hold gaps.
type monotonicStore struct{ *InmemStore }

func (monotonicStore) IsMonotonic() bool { return true }

// After a user restore, a store that cannot hold gaps drops its old log,
// measured as raft.removeOldLogs; other stores do not emit it.
func TestMetrics_RemoveOldLogsOnMonotonicStores(t *testing.T) {
	for _, monotonic := range []bool{false, true} {
		t.Run(fmt.Sprintf("monotonic=%v", monotonic), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sink := useKeySink(t)
				opts := clusterOpts{}
				if monotonic {
					opts.logs = func(_ ServerID, s *InmemStore) LogStore { return monotonicStore{s} }
				}
				c := newTestCluster(t, 3, opts)
				defer c.shutdown()
				leader := c.waitForLeader()
				applyAll(t, leader, "before", 5)
				var buf bytes.Buffer
				json.NewEncoder(&buf).Encode([][]byte{[]byte("restored")})
				meta := &SnapshotMeta{Version: 1, Index: 3, Term: 1, Size: int64(buf.Len())}
				if err := leader.raft.Restore(meta, &buf, 0); err != nil {
					t.Fatalf("Restore: %v", err)
				}
				applyAll(t, leader, "after", 1)
				c.waitFor(5*time.Second, "every FSM to hold the restored state and one more command", func() bool {
					for _, n := range c.running() {
						cmds := n.fsm.commands()
						if len(cmds) != 2 || string(cmds[0]) != "restored" {
							return false
						}
					}
					return true
				})
				c.shutdown()
				key := describeKey("sample", []string{"raft", "removeOldLogs"}, nil)
				if sink.has(key) != monotonic {
					t.Errorf("raft.removeOldLogs emitted: %v, want %v", sink.has(key), monotonic)
				}
			})
		})
	}
}

// staleFirstStore is a log store whose FirstIndex, when told, answers one
// stale index: the first index as it was before a compaction removed that
// entry, as a read racing the compaction can see it.
type staleFirstStore struct {
	*InmemStore
	stale atomic.Uint64
}

func (s *staleFirstStore) FirstIndex() (uint64, error) {
	if i := s.stale.Swap(0); i != 0 {
		return i, nil
	}
	return s.InmemStore.FirstIndex()
}

// raft.leader.oldestLogAge reports the age of the first entry in the log.
// The entry BootstrapCluster writes has no AppendedAt (nor has the
// reference's), so while it is first the age is unknown and reads 0, as the
// reference's does. Once it is compacted the age is that of the new first
// entry, also when a compaction removes the entry FirstIndex just named.
func TestMetrics_OldestLogAge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var store *staleFirstStore
		c := newTestCluster(t, 1, clusterOpts{
			conf: func(conf *Config) {
				conf.TrailingLogs = 0
				conf.SnapshotThreshold = 1 << 30
				conf.SnapshotInterval = time.Hour
			},
			logs: func(_ ServerID, s *InmemStore) LogStore {
				store = &staleFirstStore{InmemStore: s}
				return store
			},
		})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "old", 3)
		time.Sleep(time.Minute)
		if first, _ := store.InmemStore.FirstIndex(); first != 1 {
			t.Fatalf("first index %d, want the bootstrap entry's", first)
		}
		if got := leader.raft.oldestLogAge(); got != 0 {
			t.Fatalf("age %v with the bootstrap entry first, want 0", got)
		}

		if err := leader.raft.Snapshot().Error(); err != nil {
			t.Fatal(err)
		}
		appended := time.Now()
		f := leader.raft.Apply([]byte("new"), 0)
		if err := f.Error(); err != nil {
			t.Fatal(err)
		}
		c.waitFor(5*time.Second, "the log compacted up to the new entry", func() bool {
			first, _ := store.InmemStore.FirstIndex()
			return first == f.Index()
		})
		time.Sleep(30 * time.Second)
		want := time.Since(appended)
		if got := leader.raft.oldestLogAge(); got <= want-time.Second || got > want {
			t.Fatalf("age %v, want the new entry's, about %v", got, want)
		}
		store.stale.Store(1)
		if got := leader.raft.oldestLogAge(); got <= want-time.Second || got > want {
			t.Fatalf("age %v when FirstIndex named an entry already compacted, want about %v", got, want)
		}
	})
}
