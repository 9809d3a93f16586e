package raft

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// The hand-off of Apply and Barrier requests to the leader (enqueue.go):
// with BatchApplyCh off, requests wait in a buffered applyCh, and still
// their timeout bounds how long the leader takes to take them, and a
// request not taken in time is answered ErrEnqueueTimeout and never
// appended.
//
// To hold requests in applyCh, these tests hold the leader's log writes
// (controlledStore, write_path_test.go) and let backpressure
// (backpressure.go) stop the leader from taking more once its unwritten
// entries reach a small bound.

const (
	// enqEntrySize is the size of every command in these tests; the bound
	// on unwritten bytes lets the leader take four of them.
	enqEntrySize = 1000
	enqBound     = 4 * (enqEntrySize + logEntryOverhead)
	// enqFillers is how many requests fill the stalled leader: more than
	// it takes, so that the rest wait in applyCh.
	enqFillers = 10
)

// stalledLeader is a three-node cluster whose leader has stopped taking
// requests: its log writer is stalled and it has taken all it may.
type stalledLeader struct {
	c       *testCluster
	leader  *testNode
	open    func() // lets the leader's held writes through
	fillers []ApplyFuture
}

// newStalledLeader starts the cluster, stalls the leader's writer and sends
// enqFillers requests (each with no timeout), waiting until they are all in
// the leader's hands or in applyCh.
func newStalledLeader(t *testing.T) *stalledLeader {
	t.Helper()
	s := &stalledLeader{}
	var stores map[ServerID]*controlledStore
	s.c, stores = controlledCluster(t, 3, func(conf *Config) { conf.MaxUnwrittenBytes = enqBound })
	s.leader = s.c.waitForLeader()
	if err := s.leader.raft.Barrier(0).Error(); err != nil {
		t.Fatalf("barrier: %v", err)
	}
	s.open = stores[s.leader.id].holdWrites()
	s.fillers = make([]ApplyFuture, enqFillers)
	for i := range s.fillers {
		s.fillers[i] = s.leader.raft.Apply(enqCommand("filler", i), 0)
	}
	// Every goroutine is now blocked: the leader's writer in its held write and
	// its run loop waiting for the writer to make room.
	synctest.Wait()
	return s
}

// release opens the leader's writer and waits for the fillers.
func (s *stalledLeader) release(t *testing.T) {
	t.Helper()
	s.open()
	for i, f := range s.fillers {
		if err := f.Error(); err != nil {
			t.Fatalf("filler %d: %v", i, err)
		}
	}
}

func enqCommand(kind string, i int) []byte {
	data := make([]byte, enqEntrySize)
	copy(data, fmt.Sprintf("%s-%d", kind, i))
	return data
}

// assertNotAppended fails the test if some running node's log or FSM
// holds cmd.
func assertNotAppended(t *testing.T, c *testCluster, cmd []byte) {
	t.Helper()
	for _, n := range c.running() {
		first, _ := n.store.FirstIndex()
		last, _ := n.store.LastIndex()
		for i := first; i <= last && i > 0; i++ {
			var l Log
			if err := n.store.GetLog(i, &l); err != nil {
				continue
			}
			if bytes.Equal(l.Data, cmd) {
				t.Fatalf("%s's log holds %q at index %d", n.id, cmd[:8], i)
			}
		}
		for _, got := range n.fsm.commands() {
			if bytes.Equal(got, cmd) {
				t.Fatalf("%s's FSM applied %q", n.id, cmd[:8])
			}
		}
	}
}

// assertAppended fails the test unless every running node's FSM applied
// cmd.
func assertAppended(t *testing.T, c *testCluster, cmd []byte) {
	t.Helper()
	for _, n := range c.running() {
		found := false
		for _, got := range n.fsm.commands() {
			found = found || bytes.Equal(got, cmd)
		}
		if !found {
			t.Fatalf("%s's FSM did not apply %q", n.id, cmd[:8])
		}
	}
}

// A request the stalled leader does not take within its timeout answers
// ErrEnqueueTimeout at its deadline, whether its caller waits then or
// only later, and is never appended once the leader catches up.
func TestEnqueue_TimeoutWhileLeaderDoesNotTake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStalledLeader(t)
		defer s.c.shutdown()
		const timeout = 50 * time.Millisecond
		waited := enqCommand("waited", 0)
		later := enqCommand("later", 0)
		barrier := s.leader.raft.Barrier(timeout)
		fw := s.leader.raft.Apply(waited, timeout)
		fl := s.leader.raft.Apply(later, timeout)
		if err := fw.Error(); err != ErrEnqueueTimeout {
			t.Fatalf("the waited request answered %v, want ErrEnqueueTimeout", err)
		}
		if err := barrier.Error(); err != ErrEnqueueTimeout {
			t.Fatalf("the barrier answered %v, want ErrEnqueueTimeout", err)
		}
		// The leader catches up a little after the deadline (fake time)
		// and finds the request nobody waited for expired.
		time.Sleep(time.Millisecond)
		s.release(t)
		if err := fl.Error(); err != ErrEnqueueTimeout {
			t.Fatalf("the request waited for late answered %v, want ErrEnqueueTimeout", err)
		}
		if err := s.leader.raft.Barrier(0).Error(); err != nil {
			t.Fatalf("barrier after the release: %v", err)
		}
		s.c.waitForSameFSMs(enqFillers)
		assertNotAppended(t, s.c, waited)
		assertNotAppended(t, s.c, later)
		if fw.Index() != 0 || fl.Index() != 0 {
			t.Fatalf("expired requests have indexes %d and %d, want 0", fw.Index(), fl.Index())
		}
	})
}

// A request the leader takes just before its timeout is appended and
// answers as usual.
func TestEnqueue_TakenJustBeforeTheTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStalledLeader(t)
		defer s.c.shutdown()
		const timeout = 50 * time.Millisecond
		cmd := enqCommand("taken", 0)
		f := s.leader.raft.Apply(cmd, timeout)
		errc := make(chan error, 1)
		go func() { errc <- f.Error() }()
		// Fake time: the leader catches up 1ms before the deadline and
		// takes the request at once.
		time.Sleep(timeout - time.Millisecond)
		s.release(t)
		if err := <-errc; err != nil {
			t.Fatalf("the request answered %v, want nil", err)
		}
		if f.Index() == 0 {
			t.Fatalf("the request has no index")
		}
		s.c.waitForSameFSMs(enqFillers + 1)
		assertAppended(t, s.c, cmd)
	})
}

// Requests still waiting in applyCh when the node shuts down answer
// ErrRaftShutdown, with a timeout or without one.
func TestEnqueue_ShutdownWithQueuedRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStalledLeader(t)
		defer s.c.shutdown()
		noTimeout := s.leader.raft.Apply(enqCommand("forever", 0), 0)
		withTimeout := s.leader.raft.Apply(enqCommand("hour", 0), time.Hour)
		barrier := s.leader.raft.Barrier(0)
		stopped := s.leader.raft.Shutdown()
		s.open()
		if err := stopped.Error(); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
		for name, f := range map[string]Future{"no timeout": noTimeout, "an hour's timeout": withTimeout, "barrier": barrier} {
			if err := f.Error(); err != ErrRaftShutdown {
				t.Fatalf("the queued request with %s answered %v, want ErrRaftShutdown", name, err)
			}
		}
		if f := s.leader.raft.Apply(enqCommand("after", 0), time.Second); f.Error() != ErrRaftShutdown {
			t.Fatalf("an Apply after Shutdown answered %v, want ErrRaftShutdown", f.Error())
		}
	})
}

// Requests waiting in applyCh when the leader steps down are refused
// with ErrNotLeader and never appended.
func TestEnqueue_StepDownWithQueuedRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStalledLeader(t)
		defer s.c.shutdown()
		noTimeout := enqCommand("forever", 0)
		withTimeout := enqCommand("hour", 0)
		fn := s.leader.raft.Apply(noTimeout, 0)
		fh := s.leader.raft.Apply(withTimeout, time.Hour)
		// Cut off from both followers, the leader steps down; the
		// others elect a new leader.
		s.c.partition(s.leader)
		s.c.waitFor(10*time.Second, "the old leader to step down", func() bool {
			return s.leader.raft.State() != Leader
		})
		for name, f := range map[string]ApplyFuture{"no timeout": fn, "an hour's timeout": fh} {
			if err := f.Error(); !errors.Is(err, ErrNotLeader) {
				t.Fatalf("the queued request with %s answered %v, want ErrNotLeader", name, err)
			}
		}
		s.open()
		s.c.heal()
		leader := s.c.waitForLeader()
		if err := leader.raft.Barrier(0).Error(); err != nil {
			t.Fatalf("barrier on the new leader: %v", err)
		}
		// The fillers the old leader took may or may not have
		// committed; the refused requests never are.
		for _, f := range s.fillers {
			_ = f.Error()
		}
		if err := leader.raft.Barrier(0).Error(); err != nil {
			t.Fatalf("second barrier on the new leader: %v", err)
		}
		s.c.waitFor(10*time.Second, "the FSMs to agree", func() bool {
			want := leader.fsm.len()
			for _, n := range s.c.running() {
				if n.fsm.len() != want {
					return false
				}
			}
			return true
		})
		assertNotAppended(t, s.c, noTimeout)
		assertNotAppended(t, s.c, withTimeout)
	})
}

// A follower refuses requests with ErrNotLeader, with a timeout or
// without one.
func TestEnqueue_NonLeaderRefuses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		for _, n := range c.running() {
			if n == leader {
				continue
			}
			for _, timeout := range []time.Duration{0, time.Second} {
				if err := n.raft.Apply([]byte("x"), timeout).Error(); !errors.Is(err, ErrNotLeader) {
					t.Fatalf("Apply with timeout %v on follower %s answered %v, want ErrNotLeader", timeout, n.id, err)
				}
				if err := n.raft.Barrier(timeout).Error(); !errors.Is(err, ErrNotLeader) {
					t.Fatalf("Barrier with timeout %v on follower %s answered %v, want ErrNotLeader", timeout, n.id, err)
				}
			}
		}
	})
}

// The requests of one goroutine that does not wait between them are
// appended in the order it made them, also when applyCh fills up and it
// blocks in the send.
func TestEnqueue_OneGoroutineKeepsItsOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		n := 3 * applyChMin
		futures := make([]ApplyFuture, n)
		for i := range futures {
			timeout := time.Duration(0)
			if i%2 == 1 {
				timeout = time.Hour
			}
			futures[i] = leader.raft.Apply([]byte(fmt.Sprintf("cmd-%d", i)), timeout)
		}
		for i, f := range futures {
			if err := f.Error(); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			if i > 0 && f.Index() <= futures[i-1].Index() {
				t.Fatalf("request %d has index %d, not after request %d's %d", i, f.Index(), i-1, futures[i-1].Index())
			}
		}
		c.waitForSameFSMs(n)
		for i, got := range leader.fsm.commands() {
			if want := fmt.Sprintf("cmd-%d", i); string(got) != want {
				t.Fatalf("the FSM's command %d is %q, want %q", i, got, want)
			}
		}
	})
}

// A caller that sends requests without waiting for them, to a leader that
// does not take them, blocks once applyCh is full: what waits for the
// leader stays bounded.
func TestEnqueue_QueueIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStalledLeader(t)
		defer s.c.shutdown()
		const tries = 2 * applyChMin
		var mu sync.Mutex
		sent := 0
		var futures []ApplyFuture
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; i < tries; i++ {
				f := s.leader.raft.Apply([]byte(fmt.Sprintf("burst-%d", i)), 0)
				mu.Lock()
				sent++
				futures = append(futures, f)
				mu.Unlock()
			}
		}()
		synctest.Wait()
		mu.Lock()
		got := sent
		mu.Unlock()
		if got >= tries || got > applyChMin {
			t.Fatalf("%d of %d requests were handed over to a leader that takes none (room for %d)", got, tries, applyChMin)
		}
		// Once the leader takes requests again, the sender goes on.
		s.release(t)
		<-done
		for i, f := range futures {
			if err := f.Error(); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
		}
	})
}
