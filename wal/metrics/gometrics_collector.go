package metrics

import gometrics "github.com/hashicorp/go-metrics"

// GoMetricsCollector passes every observation to go-metrics. Its zero value
// reports to go-metrics' global instance with no prefix or labels.
type GoMetricsCollector struct {
	gm     *gometrics.Metrics
	prefix []string
	labels []gometrics.Label
}

// NewGoMetricsCollector returns a collector that reports to gm (the global
// instance when gm is nil), each name under prefix and with labels.
func NewGoMetricsCollector(prefix []string, labels []gometrics.Label, gm *gometrics.Metrics) *GoMetricsCollector {
	return &GoMetricsCollector{gm: gm, prefix: prefix, labels: labels}
}

// IncrementCounter adds delta to the counter prefix+name.
func (c *GoMetricsCollector) IncrementCounter(name string, delta uint64) {
	c.sink().IncrCounterWithLabels(c.key(name), float32(delta), c.labels)
}

// SetGauge sets the gauge prefix+name.
func (c *GoMetricsCollector) SetGauge(name string, val uint64) {
	c.sink().SetGaugeWithLabels(c.key(name), float32(val), c.labels)
}

func (c *GoMetricsCollector) sink() *gometrics.Metrics {
	if c.gm != nil {
		return c.gm
	}
	return gometrics.Default()
}

// key builds a fresh slice each time: callers may run concurrently, and
// appending to prefix directly could share its backing array.
func (c *GoMetricsCollector) key(name string) []string {
	k := make([]string, 0, len(c.prefix)+1)
	return append(append(k, c.prefix...), name)
}
