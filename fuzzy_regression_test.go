package raft

import (
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Regression tests for bugs found by the fuzzy/ harness. Each names the
// seed that found it; the fuzzy README says how to replay one.

// fzHeldStore is a log store whose StoreLogs calls can be held until
// released, to keep a follower from acknowledging anything.
type fzHeldStore struct {
	*InmemStore
	mu   sync.Mutex
	hold chan struct{} // guarded by mu; StoreLogs waits for it when set
}

func (s *fzHeldStore) StoreLogs(logs []*Log) error {
	s.mu.Lock()
	hold := s.hold
	s.mu.Unlock()
	if hold != nil {
		<-hold
	}
	return s.InmemStore.StoreLogs(logs)
}

func (s *fzHeldStore) StoreLog(l *Log) error { return s.StoreLogs([]*Log{l}) }

// holdWrites makes later writes wait until release is called.
func (s *fzHeldStore) holdWrites() (release func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.hold = ch
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.hold = nil
		s.mu.Unlock()
		close(ch)
	}
}

// Found by fuzzy seed 18 (MaxAppendEntries=1): once a pipelined answer
// failed, the replicator stopped reading the pipeline's answers while its
// log goroutine kept sending a backlog into it. When the pipeline's window
// filled, AppendEntries blocked for good: that follower never received
// another entry in the leader's term, and the leader's Shutdown hung.
func TestFuzzyRegression_FailedPipelineDoesNotWedgeReplication(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stores := make(map[ServerID]*fzHeldStore)
		c := newTestCluster(t, 3, clusterOpts{
			conf: func(conf *Config) { conf.MaxAppendEntries = 1 },
			logs: func(id ServerID, s *InmemStore) LogStore {
				held := &fzHeldStore{InmemStore: s}
				stores[id] = held
				return held
			},
		})
		defer c.shutdown()
		leader := c.waitForLeader()
		var follower *testNode
		for _, n := range c.nodes {
			if n != leader {
				follower = n
				break
			}
		}

		apply := func(n int) {
			t.Helper()
			futures := make([]ApplyFuture, n)
			for i := range futures {
				futures[i] = leader.raft.Apply([]byte(fmt.Sprintf("cmd-%d", i)), 0)
			}
			for _, f := range futures {
				if err := f.Error(); err != nil {
					t.Fatalf("apply: %v", err)
				}
			}
		}
		// Let replication to the follower settle into pipelining.
		apply(5)
		c.waitFor(5*time.Second, "the follower to catch up", func() bool {
			return follower.raft.AppliedIndex() == leader.raft.AppliedIndex()
		})

		// The follower's disk stalls for a few seconds: its pipelined
		// answers time out, and the first failure makes the leader stop
		// reading answers. The backlog is far larger than the in-memory
		// pipeline's window.
		release := stores[follower.id].holdWrites()
		apply(200)
		time.Sleep(5 * time.Second) // the stall, in fake time
		release()

		c.waitFor(30*time.Second, "the follower to catch up after its disk came back", func() bool {
			return follower.raft.LastIndex() == leader.raft.LastIndex() &&
				follower.raft.AppliedIndex() == leader.raft.AppliedIndex()
		})
	})
}
