package raft

import (
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// randomDuration returns a duration chosen uniformly in [base, 2×base), the
// spread Raft uses so that servers' timers do not fire together (Raft paper
// §5.2). It returns 0 for a base of 0.
func randomDuration(base time.Duration) time.Duration {
	if base <= 0 {
		return 0
	}
	return base + rand.N(base)
}

// enqueueTimer returns the channel that bounds how long a request waits to
// be taken: it fires after timeout, or never for a timeout of 0. Call stop
// once the wait is over.
func enqueueTimer(timeout time.Duration) (ch <-chan time.Time, stop func()) {
	if timeout <= 0 {
		return nil, func() {}
	}
	t := time.NewTimer(timeout)
	return t.C, func() { t.Stop() }
}

// generateUUID returns a random RFC 4122 style identifier.
func generateUUID() string {
	var b [16]byte
	if _, err := crand.Read(b[:]); err != nil {
		panic(fmt.Errorf("failed to read random bytes: %v", err))
	}
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%12x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// backoff returns how long to wait after the given number of consecutive
// failures: base doubled for each failure past the first, capped at limit.
func backoff(base time.Duration, failures int, limit time.Duration) time.Duration {
	d := base
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// raiseTo stores x in v if x is greater than what v holds, so that a
// value several goroutines publish never goes back.
func raiseTo(v *atomic.Uint64, x uint64) {
	for {
		old := v.Load()
		if x <= old || v.CompareAndSwap(old, x) {
			return
		}
	}
}

// notify sends on a channel of capacity one without blocking; a pending
// notification already says everything a second one would.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// replaceBool puts v in a channel of capacity one, replacing any value the
// reader has not taken yet, so the reader always finds the newest value.
// The caller must be the channel's only sender.
func replaceBool(ch chan bool, v bool) {
	for {
		select {
		case ch <- v:
			return
		default:
		}
		select {
		case <-ch:
		default:
		}
	}
}
