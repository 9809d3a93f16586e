package raft

import (
	"sync"
	"sync/atomic"
	"time"
)

// storeShutdownGrace is how long Shutdown waits for calls into the user's
// LogStore or StableStore that are still running. A healthy store finishes
// well within it, so Shutdown returns with no call in flight; a call still
// running after it is abandoned (see Raft.Shutdown).
const storeShutdownGrace = 5 * time.Second

// routineGroup tracks the goroutines a node starts, so that shutdown can
// wait for them. A goroutine inside a call to the user's LogStore or
// StableStore is "parked": shutdown waits for parked goroutines only for
// storeShutdownGrace, so that a store call that never returns cannot hang
// Shutdown. When such a call does return after shutdown, the tracked store
// hands the caller ErrRaftShutdown and the goroutine exits.
type routineGroup struct {
	running  atomic.Int64 // goroutines started and not yet exited
	parked   atomic.Int64 // of those, the ones inside a store call
	stopping atomic.Bool  // set by waitSettled before it first checks

	// mu and cond let waitSettled sleep until the group settles. Counters
	// change without the lock; once stopping is set, every change is
	// followed by a broadcast under the lock, so no wake-up is lost.
	mu   sync.Mutex
	cond *sync.Cond
	// graceOver is set, under mu, once storeShutdownGrace has passed since
	// waitSettled was first called; graceTimer is its timer.
	graceOver  bool
	graceTimer *time.Timer
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

// waitSettled blocks until every tracked goroutine has exited, except
// goroutines still inside a store call once storeShutdownGrace has passed.
// Several goroutines may wait at once.
func (g *routineGroup) waitSettled() {
	g.stopping.Store(true)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.graceTimer == nil {
		g.graceTimer = time.AfterFunc(storeShutdownGrace, func() {
			g.mu.Lock()
			g.graceOver = true
			g.cond.Broadcast()
			g.mu.Unlock()
		})
	}
	for {
		running, parked := g.running.Load(), g.parked.Load()
		if running == 0 || (g.graceOver && running == parked) {
			break
		}
		g.cond.Wait()
	}
	g.graceTimer.Stop()
}
