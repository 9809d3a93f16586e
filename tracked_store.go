package raft

import (
	"errors"
	"sync/atomic"
)

// trackedLogStore and trackedStableStore wrap the user's stores so that a
// goroutine inside a store call is parked in the node's routineGroup:
// Shutdown waits for such a call only for a bounded grace period. When a call returns
// after shutdown began, its result is discarded and ErrRaftShutdown is
// returned, so the caller stops instead of acting on a world that has moved
// on. Store calls made before the node's goroutines start (in NewRaft) go
// through the same path harmlessly.
type trackedLogStore struct {
	LogStore
	g       *routineGroup
	stopped *atomic.Bool
}

func (s *trackedLogStore) enter() { s.g.park() }

// leave unparks and reports ErrRaftShutdown once the node is stopping.
func (s *trackedLogStore) leave(err error) error {
	s.g.unpark()
	if s.stopped.Load() {
		return ErrRaftShutdown
	}
	return err
}

func (s *trackedLogStore) FirstIndex() (uint64, error) {
	s.enter()
	i, err := s.LogStore.FirstIndex()
	return i, s.leave(err)
}

func (s *trackedLogStore) LastIndex() (uint64, error) {
	s.enter()
	i, err := s.LogStore.LastIndex()
	return i, s.leave(err)
}

func (s *trackedLogStore) GetLog(index uint64, log *Log) error {
	s.enter()
	return s.leave(s.LogStore.GetLog(index, log))
}

func (s *trackedLogStore) StoreLog(log *Log) error {
	s.enter()
	return s.leave(s.LogStore.StoreLog(log))
}

func (s *trackedLogStore) StoreLogs(logs []*Log) error {
	s.enter()
	return s.leave(s.LogStore.StoreLogs(logs))
}

func (s *trackedLogStore) DeleteRange(min, max uint64) error {
	s.enter()
	return s.leave(s.LogStore.DeleteRange(min, max))
}

// stageCommitIndex forwards to a CommitTrackingLogStore, if the user's
// store is one.
func (s *trackedLogStore) stageCommitIndex(idx uint64) error {
	ct, ok := s.LogStore.(CommitTrackingLogStore)
	if !ok {
		return nil
	}
	s.enter()
	return s.leave(ct.StageCommitIndex(idx))
}

type trackedStableStore struct {
	StableStore
	g       *routineGroup
	stopped *atomic.Bool
}

func (s *trackedStableStore) leave(err error) error {
	s.g.unpark()
	if s.stopped.Load() {
		return ErrRaftShutdown
	}
	return err
}

func (s *trackedStableStore) Set(key []byte, val []byte) error {
	s.g.park()
	return s.leave(s.StableStore.Set(key, val))
}

func (s *trackedStableStore) Get(key []byte) ([]byte, error) {
	s.g.park()
	v, err := s.StableStore.Get(key)
	return v, s.leave(err)
}

func (s *trackedStableStore) SetUint64(key []byte, val uint64) error {
	s.g.park()
	return s.leave(s.StableStore.SetUint64(key, val))
}

func (s *trackedStableStore) GetUint64(key []byte) (uint64, error) {
	s.g.park()
	v, err := s.StableStore.GetUint64(key)
	return v, s.leave(err)
}

// logFailure logs msg with err, a failure, at ERROR; but at DEBUG when err
// is ErrRaftShutdown, which the tracked stores above answer for a call that
// returned after Shutdown began: a node stopping in the middle of a write
// is an expected race, not a failure.
func (r *Raft) logFailure(msg string, err error) {
	if errors.Is(err, ErrRaftShutdown) {
		r.logger.Debug(msg, "error", err)
		return
	}
	r.logger.Error(msg, "error", err)
}
