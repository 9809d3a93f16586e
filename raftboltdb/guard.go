package raftboltdb

import (
	"fmt"
	"runtime/debug"

	"go.etcd.io/bbolt"
)

// Every call into bbolt that may touch the memory map runs through guard.
// The open-time checker (check.go) rules out the damage that would crash
// the process outright, but a file can still be damaged in ways it does not
// look for, or changed by another program after it was checked. bbolt
// answers such damage with a panic (a failed assertion, an index out of
// range) or, reading past the end of a truncated file, a memory fault.
// guard turns faults into panics for the current goroutine
// (debug.SetPanicOnFault) and panics into errors wrapping ErrCorrupt.
//
// bbolt's state after a panic is not trustworthy: a write may have stopped
// halfway through its bookkeeping, or bbolt may still hold one of its locks.
// So the first such error marks the store failed, and every later call
// returns it without touching bbolt; Close waits for bbolt only for a bounded
// time. Reopening the file runs the checker again.

// guard runs fn, converting a panic or memory fault into an error.
func (b *BoltStore) guard(op string, fn func() error) (err error) {
	if failed := b.failed.Load(); failed != nil {
		return *failed
	}
	prev := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(prev)
	defer func() {
		if p := recover(); p != nil {
			failed := fmt.Errorf("bbolt failed in %s on %s (%v), so the store refuses further use: %w", op, b.path, p, ErrCorrupt)
			b.failed.CompareAndSwap(nil, &failed)
			err = failed
		}
	}()
	return fn()
}

// view runs fn in a read transaction under guard.
func (b *BoltStore) view(op string, fn func(tx *bbolt.Tx) error) error {
	return b.guard(op, func() error { return b.db.View(fn) })
}

// update runs fn in a write transaction under guard and commits it, with
// an fsync unless NoSync is set.
func (b *BoltStore) update(op string, fn func(tx *bbolt.Tx) error) error {
	return b.guard(op, func() error { return b.db.Update(fn) })
}
