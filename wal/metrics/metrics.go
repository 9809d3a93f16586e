// Package metrics is how the wal package reports what it does: a small
// Collector interface with a no-op, an in-memory and a go-metrics
// implementation. Names are lower_case_with_underscores, as raft-wal's.
package metrics

// Collector receives the WAL's counters and gauges.
type Collector interface {
	// IncrementCounter adds delta to the counter called name.
	IncrementCounter(name string, delta uint64)

	// SetGauge sets the gauge called name to val.
	SetGauge(name string, val uint64)
}

// Definitions lists the counters and gauges a component emits.
type Definitions struct {
	Counters []Descriptor
	Gauges   []Descriptor
}

// Descriptor names one metric and says what it measures.
type Descriptor struct {
	Name string
	Desc string
}

var _ Collector = &NoOpCollector{}

// NoOpCollector discards everything. It is the WAL's default.
type NoOpCollector struct{}

// IncrementCounter does nothing.
func (c *NoOpCollector) IncrementCounter(name string, delta uint64) {}

// SetGauge does nothing.
func (c *NoOpCollector) SetGauge(name string, val uint64) {}
