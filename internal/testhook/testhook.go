// Package testhook lets this module's test harnesses outside the raft
// package (fuzzy/) switch on checks that only tests use. It is internal:
// applications cannot reach it, and nothing in it runs unless a test calls
// it.
package testhook

// CheckInvariants makes the node built from conf, which must be a
// *raft.Config, check the write path's invariants after every step of its
// run loop and call broken with the first one that breaks, state included.
// The raft package sets it when it is initialised.
var CheckInvariants func(conf any, broken func(error))

// ScaleClock makes the node built from conf, which must be a *raft.Config,
// run on a clock that goes rate times as fast as the real one (rate 1.05
// gains 5%), for its elections, heartbeats, leases and vote hold. The
// raft package sets it when it is initialised.
var ScaleClock func(conf any, rate float64)

// LeaseReads returns how many reads the node r, a *raft.Raft, answered
// from its lease. The raft package sets it when it is initialised.
var LeaseReads func(r any) uint64
