package raft

import (
	"time"

	"github.com/quorumkit/raft/internal/testhook"
)

// clock is one server's view of time. Everything that decides on elapsed
// time for leases and elections reads it: the follower's wait for its
// leader before forgetting it (and so before it may vote for anyone
// else), the candidate's election timer, the leader's check that a
// quorum is still in touch, the send times its lease is measured from,
// and the startup vote hold (lease.go, vote_hold.go).
//
// A server runs on the real clock. Tests give one server a clock that
// runs faster or slower than the others (scaledClock), which is the only
// way to show clock drift inside a testing/synctest bubble, where every
// goroutine shares one fake clock.
type clock interface {
	// now returns the current time on this clock. It carries a monotonic
	// reading, so differences between two results are immune to changes
	// of the wall clock.
	now() time.Time
	// since returns the time passed on this clock since t, a result of
	// now. It reads only the monotonic clock where it can, which costs
	// less than now.
	since(t time.Time) time.Duration
	// newTimer returns a timer that fires once d has passed on this clock.
	newTimer(d time.Duration) *time.Timer
	// resetTimer re-arms t, made by newTimer, to fire once d has passed on
	// this clock.
	resetTimer(t *time.Timer, d time.Duration)
}

// realClock is the clock every server runs on outside tests.
type realClock struct{}

func (realClock) now() time.Time                            { return time.Now() }
func (realClock) since(t time.Time) time.Duration           { return time.Since(t) }
func (realClock) newTimer(d time.Duration) *time.Timer      { return time.NewTimer(d) }
func (realClock) resetTimer(t *time.Timer, d time.Duration) { t.Reset(d) }

// scaledClock runs rate times as fast as the real clock from the moment
// it was made: at rate 1.1 it gains 100ms every real second. Tests use it
// to give each server a drifting clock.
type scaledClock struct {
	base time.Time
	rate float64
}

// newScaledClock returns a clock running rate times as fast as the real
// one. rate must be positive.
func newScaledClock(rate float64) *scaledClock {
	return &scaledClock{base: time.Now(), rate: rate}
}

func (c *scaledClock) now() time.Time {
	return c.base.Add(time.Duration(float64(time.Since(c.base)) * c.rate))
}

// real converts a duration on this clock into real time.
func (c *scaledClock) real(d time.Duration) time.Duration {
	return time.Duration(float64(d) / c.rate)
}

func (c *scaledClock) since(t time.Time) time.Duration { return c.now().Sub(t) }

func (c *scaledClock) newTimer(d time.Duration) *time.Timer { return time.NewTimer(c.real(d)) }

func (c *scaledClock) resetTimer(t *time.Timer, d time.Duration) { t.Reset(c.real(d)) }

func init() {
	testhook.ScaleClock = func(conf any, rate float64) {
		conf.(*Config).clock = newScaledClock(rate)
	}
	testhook.LeaseReads = func(r any) uint64 { return r.(*Raft).leaseReads.Load() }
}
