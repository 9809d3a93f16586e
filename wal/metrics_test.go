package wal

import (
	"testing"
	"time"

	gometrics "github.com/hashicorp/go-metrics"
	"github.com/quorumkit/raft/wal/metrics"
)

// TestMetrics drives every operation with an AtomicCollector built from
// MetricDefinitions (it panics on a name not defined there) and checks
// the counts.
func TestMetrics(t *testing.T) {
	c := metrics.NewAtomicCollector(MetricDefinitions)
	w, err := Open(t.TempDir(), WithSegmentSize(4096), WithMetricsCollector(c), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := uint64(1); i <= 100; i += 10 {
		if err := w.StoreLogs(batch(i, i+9, 1)); err != nil {
			t.Fatal(err)
		}
	}
	l := testLog(1, 1)
	for i := uint64(1); i <= 5; i++ {
		w.GetLog(i, l)
	}
	w.DeleteRange(1, 30)
	w.DeleteRange(91, 100)
	w.SetUint64([]byte("CurrentTerm"), 3)
	w.GetUint64([]byte("CurrentTerm"))
	s := c.Summary()
	want := map[string]uint64{
		"log_appends": 10, "log_entries_written": 100, "log_entries_read": 5,
		"tail_truncations": 10, "stable_sets": 1, "stable_gets": 1,
	}
	for name, n := range want {
		if s.Counters[name] != n {
			t.Errorf("%s = %d, want %d", name, s.Counters[name], n)
		}
	}
	if s.Counters["segment_rotations"] == 0 || s.Counters["head_truncations"] == 0 ||
		s.Counters["log_entry_bytes_written"] == 0 || s.Counters["log_entry_bytes_read"] == 0 {
		t.Errorf("counters missing: %v", s.Counters)
	}
}

// TestGoMetricsCollector: names reach go-metrics under the prefix, with
// the labels.
func TestGoMetricsCollector(t *testing.T) {
	sink := gometrics.NewInmemSink(time.Hour, time.Hour)
	conf := gometrics.DefaultConfig("")
	conf.EnableHostname, conf.EnableRuntimeMetrics, conf.FilterDefault = false, false, true
	gm, err := gometrics.New(conf, sink)
	if err != nil {
		t.Fatal(err)
	}
	c := metrics.NewGoMetricsCollector([]string{"app", "wal"}, []gometrics.Label{{Name: "node", Value: "a"}}, gm)
	c.IncrementCounter("log_appends", 2)
	c.IncrementCounter("log_appends", 3)
	c.SetGauge("last_segment_age_seconds", 42)
	data := sink.Data()
	if len(data) == 0 {
		t.Fatal("nothing recorded")
	}
	if got := data[0].Counters["app.wal.log_appends;node=a"].Sum; got != 5 {
		t.Errorf("counter sum %v; counters %v", got, data[0].Counters)
	}
	if got := data[0].Gauges["app.wal.last_segment_age_seconds;node=a"].Value; got != 42 {
		t.Errorf("gauge %v; gauges %v", got, data[0].Gauges)
	}
}
