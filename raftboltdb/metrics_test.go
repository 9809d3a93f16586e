package raftboltdb

import (
	"context"
	"strings"
	"sync"
	"testing"

	metrics "github.com/hashicorp/go-metrics"
	"github.com/quorumkit/raft"
)

// recordingSink remembers which metric names were reported, by kind.
type recordingSink struct {
	mu    sync.Mutex
	names map[string]string // name -> "gauge", "counter" or "sample"
	added chan struct{}     // receives a value after each report, if room
}

func (s *recordingSink) record(kind string, key []string) {
	s.mu.Lock()
	s.names[strings.Join(key, ".")] = kind
	s.mu.Unlock()
	select {
	case s.added <- struct{}{}:
	default:
	}
}

func (s *recordingSink) kind(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.names[name]
}

func (s *recordingSink) SetGauge(key []string, _ float32) { s.record("gauge", key) }
func (s *recordingSink) SetGaugeWithLabels(key []string, _ float32, _ []metrics.Label) {
	s.record("gauge", key)
}
func (s *recordingSink) EmitKey(key []string, _ float32)     { s.record("key", key) }
func (s *recordingSink) IncrCounter(key []string, _ float32) { s.record("counter", key) }
func (s *recordingSink) IncrCounterWithLabels(key []string, _ float32, _ []metrics.Label) {
	s.record("counter", key)
}
func (s *recordingSink) AddSample(key []string, _ float32) { s.record("sample", key) }
func (s *recordingSink) AddSampleWithLabels(key []string, _ float32, _ []metrics.Label) {
	s.record("sample", key)
}

// installSink makes a recording sink go-metrics' global one for the test.
func installSink(t *testing.T) *recordingSink {
	sink := &recordingSink{names: map[string]string{}, added: make(chan struct{}, 1)}
	conf := metrics.DefaultConfig("")
	conf.EnableHostname = false
	conf.EnableRuntimeMetrics = false
	conf.EnableServiceLabel = false
	prev := metrics.Default()
	if _, err := metrics.NewGlobal(conf, sink); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { metrics.NewGlobal(&prev.Config, &metrics.BlackholeSink{}) })
	return sink
}

// The store reports the metrics raft-boltdb reports, under the same names
// and kinds.
func TestMetrics(t *testing.T) {
	sink := installSink(t)
	s := openTestStore(t)
	mustStore(t, s, makeLogs(1, 4, 100))
	var l raft.Log
	if err := s.GetLog(2, &l); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.RunMetrics(ctx, 0)
		close(done)
	}()
	// RunMetrics reports once as it starts; wait for the last name of it.
	for sink.kind("raft.boltdb.txstats.writeTime") == "" {
		<-sink.added
	}
	cancel()
	<-done

	want := map[string]string{
		"raft.boltdb.getLog":        "sample",
		"raft.boltdb.storeLogs":     "sample",
		"raft.boltdb.logSize":       "sample",
		"raft.boltdb.logsPerBatch":  "sample",
		"raft.boltdb.logBatchSize":  "sample",
		"raft.boltdb.writeCapacity": "sample",

		"raft.boltdb.numFreePages":    "gauge",
		"raft.boltdb.numPendingPages": "gauge",
		"raft.boltdb.freePageBytes":   "gauge",
		"raft.boltdb.freelistBytes":   "gauge",
		"raft.boltdb.openReadTxn":     "gauge",
		"raft.boltdb.totalReadTxn":    "counter",

		"raft.boltdb.txstats.pageCount":     "gauge",
		"raft.boltdb.txstats.pageAlloc":     "gauge",
		"raft.boltdb.txstats.cursorCount":   "counter",
		"raft.boltdb.txstats.nodeCount":     "counter",
		"raft.boltdb.txstats.nodeDeref":     "counter",
		"raft.boltdb.txstats.rebalance":     "counter",
		"raft.boltdb.txstats.rebalanceTime": "sample",
		"raft.boltdb.txstats.split":         "counter",
		"raft.boltdb.txstats.spill":         "counter",
		"raft.boltdb.txstats.spillTime":     "sample",
		"raft.boltdb.txstats.write":         "counter",
		"raft.boltdb.txstats.writeTime":     "sample",
	}
	for name, kind := range want {
		if got := sink.kind(name); got != kind {
			t.Errorf("%s reported as %q; want %q", name, got, kind)
		}
	}
}
