package raftboltdb

import (
	"context"
	"time"

	metrics "github.com/hashicorp/go-metrics"
	"go.etcd.io/bbolt"
)

// Metric names, shared with raft-boltdb (metrics_test.go checks names and
// kinds). They go to
// go-metrics' global sink, as raft's own metrics do.
var (
	metricGetLog        = []string{"raft", "boltdb", "getLog"}
	metricStoreLogs     = []string{"raft", "boltdb", "storeLogs"}
	metricLogSize       = []string{"raft", "boltdb", "logSize"}
	metricLogsPerBatch  = []string{"raft", "boltdb", "logsPerBatch"}
	metricLogBatchSize  = []string{"raft", "boltdb", "logBatchSize"}
	metricWriteCapacity = []string{"raft", "boltdb", "writeCapacity"}
)

// defaultMetricsInterval is RunMetrics' interval when given 0.
const defaultMetricsInterval = 5 * time.Second

// emitBatchMetrics records the sizes of a stored batch and the rate it was
// written at, in entries per second.
func emitBatchMetrics(enc *batch, took time.Duration) {
	total := 0
	for i := 0; i < enc.len(); i++ {
		_, val := enc.entry(i)
		metrics.AddSample(metricLogSize, float32(len(val)))
		total += len(val)
	}
	metrics.AddSample(metricLogsPerBatch, float32(enc.len()))
	metrics.AddSample(metricLogBatchSize, float32(total))
	if took > 0 {
		metrics.AddSample(metricWriteCapacity, float32(enc.len())/float32(took.Seconds()))
	}
}

// RunMetrics publishes bbolt's statistics (Stats) every interval (5s if
// 0) until ctx is done, then returns. Run it in its own goroutine. Levels
// (free pages, open read transactions, page counts) are gauges; work done
// since the previous report (transactions, cursors, nodes, splits, spills,
// rebalances, writes) is added to counters, and its durations are samples in
// milliseconds. Names are those of raft-boltdb: raft.boltdb.* and
// raft.boltdb.txstats.*.
func (b *BoltStore) RunMetrics(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = defaultMetricsInterval
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	prev := b.emitStats(nil)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			prev = b.emitStats(prev)
		}
	}
}

// emitStats publishes the current statistics, with counters relative to
// prev (all of them when prev is nil), and returns the current ones.
func (b *BoltStore) emitStats(prev *bbolt.Stats) *bbolt.Stats {
	now := b.db.Stats()
	delta := now.Sub(prev)
	set := func(name string, v float32) { metrics.SetGauge([]string{"raft", "boltdb", name}, v) }
	set("numFreePages", float32(now.FreePageN))
	set("numPendingPages", float32(now.PendingPageN))
	set("freePageBytes", float32(now.FreeAlloc))
	set("freelistBytes", float32(now.FreelistInuse))
	set("openReadTxn", float32(now.OpenTxN))
	metrics.IncrCounter([]string{"raft", "boltdb", "totalReadTxn"}, float32(delta.TxN))

	tx, dtx := &now.TxStats, &delta.TxStats
	txGauge := func(name string, v int64) {
		metrics.SetGauge([]string{"raft", "boltdb", "txstats", name}, float32(v))
	}
	txCount := func(name string, v int64) {
		metrics.IncrCounter([]string{"raft", "boltdb", "txstats", name}, float32(v))
	}
	txTime := func(name string, d time.Duration) {
		metrics.AddSample([]string{"raft", "boltdb", "txstats", name}, float32(d.Nanoseconds())/1e6)
	}
	txGauge("pageCount", tx.GetPageCount())
	txGauge("pageAlloc", tx.GetPageAlloc())
	txCount("cursorCount", dtx.GetCursorCount())
	txCount("nodeCount", dtx.GetNodeCount())
	txCount("nodeDeref", dtx.GetNodeDeref())
	txCount("rebalance", dtx.GetRebalance())
	txTime("rebalanceTime", dtx.GetRebalanceTime())
	txCount("split", dtx.GetSplit())
	txCount("spill", dtx.GetSpill())
	txTime("spillTime", dtx.GetSpillTime())
	txCount("write", dtx.GetWrite())
	txTime("writeTime", dtx.GetWriteTime())
	return &now
}
