package sidebyside

import (
	"math"
	"math/bits"
	"slices"
	"time"
)

// median is the middle of xs (the mean of the two middle values for an
// even count), NaN for none.
func median(xs []float64) float64 { return quantile(xs, 0.5) }

// quantile is the q-quantile of xs by linear interpolation between the
// closest ranks, NaN for none.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(s)-1)
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}

// histogram records durations in buckets of about 1.6% relative width
// (64 per power of two of nanoseconds), so that a client records every
// latency without allocating.
type histogram struct {
	counts [64 * 64]uint64
	n      uint64
}

func bucketOf(d time.Duration) int {
	v := uint64(max(d, 1))
	exp := bits.Len64(v) - 1 // v in [2^exp, 2^(exp+1))
	if exp < 6 {
		return int(v) // exact below 64 ns
	}
	sub := (v >> (exp - 6)) & 63
	return exp*64 + int(sub)
}

// bucketUpper is the largest duration in bucket b.
func bucketUpper(b int) time.Duration {
	if b < 64*6 {
		return time.Duration(b)
	}
	exp, sub := b/64, uint64(b%64)
	lo := (uint64(1) << exp) | sub<<(exp-6)
	return time.Duration(lo + (uint64(1) << (exp - 6)) - 1)
}

func (h *histogram) record(d time.Duration) {
	h.counts[bucketOf(d)]++
	h.n++
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// percentile is the upper bound of the bucket that holds the p-th
// percentile, 0 for an empty histogram.
func (h *histogram) percentile(p float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(p / 100 * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			return bucketUpper(b)
		}
	}
	return bucketUpper(len(h.counts) - 1)
}
