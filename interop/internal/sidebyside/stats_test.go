package sidebyside

import (
	"testing"
	"time"
)

func TestHistogramPercentiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 5000 * time.Microsecond}, {99, 9900 * time.Microsecond}, {100, 10000 * time.Microsecond}} {
		got := h.percentile(c.p)
		// A bucket is 1/64 of a power of two wide: at most 1.6% above.
		if got < c.want || float64(got) > float64(c.want)*1.016 {
			t.Errorf("p%v = %v, want %v to 1.6%% above", c.p, got, c.want)
		}
	}
	var empty histogram
	if got := empty.percentile(99); got != 0 {
		t.Errorf("empty p99 = %v, want 0", got)
	}
}

func TestQuantile(t *testing.T) {
	xs := []float64{4, 1, 3, 2}
	if got := median(xs); got != 2.5 {
		t.Errorf("median = %v, want 2.5", got)
	}
	if got := quantile(xs, 0.25); got != 1.75 {
		t.Errorf("q1 = %v, want 1.75", got)
	}
	if xs[0] != 4 {
		t.Error("quantile sorted its argument in place")
	}
}
