package raft

import "sync"

// Holding the calls of a test double (a store, an FSM) until the test lets
// them go: the double keeps a channel field, guarded by its mutex, that
// holdCalls sets and waitIfHeld waits on.

// holdCalls sets *field, guarded by mu, to a new channel, so that later
// calls that wait on the field (waitIfHeld) wait, and returns the function
// that clears the field and closes the channel: once, however often it is
// called.
func holdCalls(mu *sync.Mutex, field *chan struct{}) (release func()) {
	gate := make(chan struct{})
	mu.Lock()
	*field = gate
	mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			mu.Lock()
			*field = nil
			mu.Unlock()
			close(gate)
		})
	}
}

// waitIfHeld reads *field under mu and, when it is set, pokes entered (if
// not nil) and waits for the channel to close. It reports whether it
// waited.
func waitIfHeld(mu *sync.Mutex, field *chan struct{}, entered chan struct{}) bool {
	mu.Lock()
	hold := *field
	mu.Unlock()
	if hold == nil {
		return false
	}
	if entered != nil {
		notify(entered)
	}
	<-hold
	return true
}
