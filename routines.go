package raft

import (
	"sync"
	"sync/atomic"
)

// routineGroup tracks the goroutines a node starts, so that shutdown can
// wait for them, with one exception: a goroutine blocked inside a call to
// the user's LogStore or StableStore is "parked", and shutdown does not
// wait for it. A store call that never returns must not hang Shutdown; when
// such a call does return after shutdown, the tracked store hands the
// caller ErrRaftShutdown and the goroutine exits.
type routineGroup struct {
	running  atomic.Int64 // goroutines started and not yet exited
	parked   atomic.Int64 // of those, the ones inside a store call
	stopping atomic.Bool  // set by waitSettled before it first checks

	// mu and cond let waitSettled sleep until running-parked reaches zero.
	// Counters change without the lock; once stopping is set, every change
	// is followed by a broadcast under the lock, so no wake-up is lost.
	mu   sync.Mutex
	cond *sync.Cond
}

func newRoutineGroup() *routineGroup {
	g := &routineGroup{}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// goFunc starts f in a tracked goroutine.
func (g *routineGroup) goFunc(f func()) {
	g.running.Add(1)
	go func() {
		defer g.changed(&g.running, -1)
		f()
	}()
}

// park and unpark bracket a store call.
func (g *routineGroup) park()   { g.changed(&g.parked, 1) }
func (g *routineGroup) unpark() { g.changed(&g.parked, -1) }

func (g *routineGroup) changed(counter *atomic.Int64, delta int64) {
	counter.Add(delta)
	if g.stopping.Load() {
		g.mu.Lock()
		g.cond.Broadcast()
		g.mu.Unlock()
	}
}

// waitSettled blocks until every tracked goroutine has exited or is parked
// in a store call.
func (g *routineGroup) waitSettled() {
	g.stopping.Store(true)
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.running.Load()-g.parked.Load() > 0 {
		g.cond.Wait()
	}
}
