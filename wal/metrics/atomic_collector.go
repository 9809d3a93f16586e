package metrics

import "sync/atomic"

var _ Collector = &AtomicCollector{}

// AtomicCollector keeps a fixed set of counters and gauges in memory,
// updated atomically; Summary reads them. Recording a name that was not
// defined panics: it is a programming error, found by the first test.
type AtomicCollector struct {
	counters []atomic.Uint64
	gauges   []atomic.Uint64

	counterIndex, gaugeIndex map[string]int
}

// NewAtomicCollector returns a collector for the metrics in defs. It
// panics if a name appears twice.
func NewAtomicCollector(defs Definitions) *AtomicCollector {
	c := &AtomicCollector{
		counters:     make([]atomic.Uint64, len(defs.Counters)),
		gauges:       make([]atomic.Uint64, len(defs.Gauges)),
		counterIndex: make(map[string]int, len(defs.Counters)),
		gaugeIndex:   make(map[string]int, len(defs.Gauges)),
	}
	seen := make(map[string]bool)
	claim := func(name string) {
		if seen[name] {
			panic("metrics: " + name + " is defined twice")
		}
		seen[name] = true
	}
	for i, d := range defs.Counters {
		claim(d.Name)
		c.counterIndex[d.Name] = i
	}
	for i, d := range defs.Gauges {
		claim(d.Name)
		c.gaugeIndex[d.Name] = i
	}
	return c
}

// IncrementCounter adds delta to the counter called name.
func (c *AtomicCollector) IncrementCounter(name string, delta uint64) {
	i, ok := c.counterIndex[name]
	if !ok {
		panic("metrics: no counter called " + name)
	}
	c.counters[i].Add(delta)
}

// SetGauge sets the gauge called name.
func (c *AtomicCollector) SetGauge(name string, val uint64) {
	i, ok := c.gaugeIndex[name]
	if !ok {
		panic("metrics: no gauge called " + name)
	}
	c.gauges[i].Store(val)
}

// Summary returns every value recorded so far. Each value is read
// atomically, the set is not: it may show one operation half counted.
func (c *AtomicCollector) Summary() Summary {
	s := Summary{
		Counters: make(map[string]uint64, len(c.counterIndex)),
		Gauges:   make(map[string]uint64, len(c.gaugeIndex)),
	}
	for name, i := range c.counterIndex {
		s.Counters[name] = c.counters[i].Load()
	}
	for name, i := range c.gaugeIndex {
		s.Gauges[name] = c.gauges[i].Load()
	}
	return s
}

// Summary is a copy of a collector's values, by metric name.
type Summary struct {
	Counters map[string]uint64
	Gauges   map[string]uint64
}
