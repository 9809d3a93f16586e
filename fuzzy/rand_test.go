package fuzzy

import (
	"math/rand/v2"
	"sync"
	"time"
)

// lockedRand is a random source shared by goroutines. The fault schedule is
// drawn from its own source up front, so it depends on the seed alone; the
// draws made from a lockedRand while the cluster runs (which message is
// dropped, how long a write takes) depend on the seed and on the order in
// which goroutines ask, which a seed does not fix.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

func newLockedRand(seed uint64) *lockedRand {
	return &lockedRand{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// chance returns true with probability p.
func (l *lockedRand) chance(p float64) bool {
	if p <= 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Float64() < p
}

// duration returns a duration uniform in [lo, hi].
func (l *lockedRand) duration(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return lo + time.Duration(l.r.Int64N(int64(hi-lo)+1))
}

// intN returns an int in [0, n).
func (l *lockedRand) intN(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.IntN(n)
}
