package sidebyside

import "sync"

// Gate stops a crashed node's stores: each library's store wrappers call
// Pass before every call into the store. Once Stop is called, Pass blocks
// as a dead process's disk would never answer, until Release lets the
// calls through again so that Close can shut the node down and close its
// stores. Nothing a crashed node writes after Stop matters to the
// measurement, which ends before Release.
type Gate struct {
	mu      sync.Mutex
	stopped bool
	open    chan struct{} // closed by Release once stopped
}

// NewGate returns an open gate. A nil *Gate is always open, and Stop
// and Release do nothing on it.
func NewGate() *Gate { return &Gate{} }

// Pass waits while the gate is stopped.
func (g *Gate) Pass() {
	if g == nil {
		return
	}
	g.mu.Lock()
	stopped, open := g.stopped, g.open
	g.mu.Unlock()
	if stopped {
		<-open
	}
}

// Stop makes every later Pass block until Release.
func (g *Gate) Stop() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.stopped {
		g.stopped = true
		g.open = make(chan struct{})
	}
}

// Release lets blocked and later calls through.
func (g *Gate) Release() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		g.stopped = false
		close(g.open)
	}
}
