package raft

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// controlledStore wraps a node's log store so a test can make StoreLogs
// fail, or hold it until released, and count its calls.
type controlledStore struct {
	*InmemStore
	mu   sync.Mutex
	fail bool
	hold chan struct{} // when set, StoreLogs waits for it to close
	// failNext makes the next StoreLogs call fail, once.
	failNext atomic.Bool
	calls    atomic.Int64
	entered  chan struct{} // poked when a held call starts waiting
}

func newControlledStore(s *InmemStore) *controlledStore {
	return &controlledStore{InmemStore: s, entered: make(chan struct{}, 1)}
}

func (s *controlledStore) StoreLogs(logs []*Log) error {
	s.calls.Add(1)
	s.mu.Lock()
	fail, hold := s.fail, s.hold
	s.mu.Unlock()
	if hold != nil {
		notify(s.entered)
		<-hold
	}
	if fail || s.failNext.CompareAndSwap(true, false) {
		return errors.New("disk on fire")
	}
	return s.InmemStore.StoreLogs(logs)
}

func (s *controlledStore) StoreLog(l *Log) error { return s.StoreLogs([]*Log{l}) }

func (s *controlledStore) setFail(v bool) {
	s.mu.Lock()
	s.fail = v
	s.mu.Unlock()
}

// holdWrites makes later StoreLogs calls wait until the returned function
// is called.
func (s *controlledStore) holdWrites() (release func()) { return holdCalls(&s.mu, &s.hold) }

func controlledCluster(t *testing.T, n int, conf func(*Config)) (*testCluster, map[ServerID]*controlledStore) {
	stores := make(map[ServerID]*controlledStore)
	c := newTestCluster(t, n, clusterOpts{conf: conf, logs: func(id ServerID, s *InmemStore) LogStore {
		cs := newControlledStore(s)
		stores[id] = cs
		return cs
	}})
	return c, stores
}

func TestReplication_FollowerThatWasDownCatchesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "before", 50)
		var down *testNode
		for _, n := range c.nodes {
			if n != leader {
				down = n
				break
			}
		}
		c.stop(down)
		applyAll(t, leader, "while-down", 500)
		c.start(down)
		c.waitForSameFSMs(550)
	})
}

func TestReplication_RestartedClusterRebuildsItsFSMs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		applyAll(t, c.waitForLeader(), "x", 300)
		c.waitForSameFSMs(300)
		c.shutdown()
		for _, n := range c.nodes {
			c.start(n)
		}
		leader := c.waitForLeader()
		applyAll(t, leader, "y", 10)
		c.waitForSameFSMs(310)
	})
}

func TestReplication_PartitionHealReplacesUncommittedEntries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		old := c.waitForLeader()
		applyAll(t, old, "committed", 20)
		c.partition(old)

		// Entries handed to the isolated leader cannot commit.
		var futures []ApplyFuture
		for i := 0; i < 30; i++ {
			futures = append(futures, old.raft.Apply([]byte(fmt.Sprintf("lost-%d", i)), 0))
		}
		for i, f := range futures {
			if err := f.Error(); !errors.Is(err, ErrLeadershipLost) {
				t.Fatalf("in-flight apply %d on the deposed leader: %v, want ErrLeadershipLost", i, err)
			}
		}
		var rest []*testNode
		for _, n := range c.nodes {
			if n != old {
				rest = append(rest, n)
			}
		}
		leader := c.waitForLeader(rest...)
		applyAll(t, leader, "new", 25)
		c.heal()
		c.waitForSameFSMs(45)
		for _, n := range c.nodes {
			for _, cmd := range n.fsm.commands() {
				if strings.HasPrefix(string(cmd), "lost-") {
					t.Fatalf("%s applied %q, an entry whose apply reported ErrLeadershipLost", n.id, cmd)
				}
			}
		}
		// The old leader's log no longer holds them.
		last, _ := old.raft.pub.lastLog()
		for i := uint64(1); i <= last; i++ {
			var l Log
			if err := old.store.GetLog(i, &l); err == nil && strings.HasPrefix(string(l.Data), "lost-") {
				t.Fatalf("the old leader's log still holds %q at %d", l.Data, i)
			}
		}
	})
}

func TestApply_FollowersAnswerErrNotLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		for _, n := range c.nodes {
			if n == leader {
				continue
			}
			if err := n.raft.Apply([]byte("x"), time.Second).Error(); !errors.Is(err, ErrNotLeader) {
				t.Errorf("Apply on follower %s: %v", n.id, err)
			}
			if err := n.raft.Barrier(time.Second).Error(); !errors.Is(err, ErrNotLeader) {
				t.Errorf("Barrier on follower %s: %v", n.id, err)
			}
			if err := n.raft.VerifyLeader().Error(); !errors.Is(err, ErrNotLeader) {
				t.Errorf("VerifyLeader on follower %s: %v", n.id, err)
			}
		}
	})
}

func TestBarrier_WaitsForEveryEarlierEntry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		for i := 0; i < 200; i++ {
			leader.raft.Apply([]byte(fmt.Sprintf("x-%d", i)), 0)
		}
		b := leader.raft.Barrier(0)
		if err := b.Error(); err != nil {
			t.Fatal(err)
		}
		if got := leader.fsm.len(); got != 200 {
			t.Fatalf("after the barrier the leader's FSM holds %d commands, want 200", got)
		}
		if idx := b.(IndexFuture).Index(); idx != leader.raft.AppliedIndex() {
			t.Fatalf("barrier index %d, applied index %d", idx, leader.raft.AppliedIndex())
		}
	})
}

func TestVerifyLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		if err := leader.raft.VerifyLeader().Error(); err != nil {
			t.Fatalf("VerifyLeader on a healthy leader: %v", err)
		}
		// A deposed leader that has not noticed yet must not confirm itself.
		c.partition(leader)
		err := leader.raft.VerifyLeader().Error()
		if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrLeadershipLost) {
			t.Fatalf("VerifyLeader on a cut-off leader: %v, want ErrNotLeader or ErrLeadershipLost", err)
		}
		c.heal()
		newLeader := c.waitForLeader()
		// The old leader learns of the newer term and refuses.
		if newLeader != leader {
			if err := leader.raft.VerifyLeader().Error(); !errors.Is(err, ErrNotLeader) {
				t.Fatalf("VerifyLeader on the old leader: %v", err)
			}
		}
	})
}

func TestVerifyLeader_SeesANewerTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{conf: func(c *Config) {
			// Leases long enough that the old leader has not stepped down
			// by itself when the verification runs.
			c.HeartbeatTimeout = 500 * time.Millisecond
			c.ElectionTimeout = 500 * time.Millisecond
			c.LeaderLeaseTimeout = 500 * time.Millisecond
		}})
		defer c.shutdown()
		old := c.waitForLeader()
		// Every node holds the leader's no-op, so either follower can win.
		applyAll(t, old, "x", 1)
		c.waitForSameFSMs(1)
		c.partition(old)
		var rest []*testNode
		for _, n := range c.nodes {
			if n != old {
				rest = append(rest, n)
			}
		}
		// Tell one of the others to campaign now, as a leadership transfer
		// would, so a newer leader exists while the old one still leads.
		// The request names the old leader: TimeoutNow is obeyed only from
		// the leader a server follows.
		_, tester := NewInmemTransport("tester")
		tester.Connect(rest[0].addr, rest[0].trans)
		var resp TimeoutNowResponse
		header := RPCHeader{ProtocolVersion: 3, ID: []byte(old.id), Addr: []byte(old.addr)}
		if err := tester.TimeoutNow(rest[0].id, rest[0].addr, &TimeoutNowRequest{RPCHeader: header}, &resp); err != nil {
			t.Fatal(err)
		}
		newLeader := c.waitForLeader(rest...)
		if old.raft.State() != Leader {
			t.Fatal("the old leader stepped down within its lease; the scenario needs it still leading")
		}
		c.heal()
		if err := old.raft.VerifyLeader().Error(); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("VerifyLeader on a deposed leader: %v, want ErrNotLeader", err)
		}
		if old.raft.State() == Leader {
			t.Fatal("the deposed leader did not step down after seeing a newer term")
		}
		if newLeader.raft.CurrentTerm() <= 0 {
			t.Fatal("no term")
		}
	})
}

func TestLeader_StepsDownWhenStoreLogsFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, stores := controlledCluster(t, 3, nil)
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "ok", 10)
		stores[leader.id].setFail(true)
		doomed := leader.raft.Apply([]byte("doomed"), 0)
		c.waitFor(time.Second, "the leader to step down", func() bool { return leader.raft.State() != Leader })
		if leader.fsm.len() != 10 {
			t.Fatalf("the failing leader applied %d commands, want 10", leader.fsm.len())
		}
		// The healthy nodes carry on; the old leader rejoins once its disk
		// works again.
		newLeader := c.waitForLeader()
		applyAll(t, newLeader, "after", 10)
		stores[leader.id].setFail(false)
		// The doomed entry may have committed through the followers (then
		// its future answers once the old leader has stored and applied
		// it) or not (then it reports the lost leadership).
		err := doomed.Error()
		if err != nil && !errors.Is(err, ErrLeadershipLost) {
			t.Fatalf("doomed apply: %v", err)
		}
		if err := newLeader.raft.Barrier(0).Error(); err != nil {
			t.Fatal(err)
		}
		c.waitForSameFSMs(newLeader.fsm.len())
		if n := countData(newLeader.fsm, "doomed"); err == nil && n != 1 {
			t.Fatalf("doomed apply succeeded but the FSMs hold it %d times", n)
		}
	})
}

// An append handed to the writer on deck behind one that fails is never
// stored: the store would hold it after a gap.
func TestLeader_FailedWriteSkipsTheAppendOnDeck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, stores := controlledCluster(t, 3, nil)
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "ok", 10)
		store := stores[leader.id]
		release := store.holdWrites()
		first := leader.raft.Apply([]byte("first"), 0)
		<-store.entered
		second := leader.raft.Apply([]byte("second"), 0)
		synctest.Wait() // the second append is on deck
		store.failNext.Store(true)
		release()
		for _, f := range []ApplyFuture{first, second} {
			if err := f.Error(); err != nil && !errors.Is(err, ErrLeadershipLost) {
				t.Fatalf("apply: %v", err)
			}
		}
		newLeader := c.waitForLeader()
		if err := newLeader.raft.Barrier(0).Error(); err != nil {
			t.Fatal(err)
		}
		c.waitForSameFSMs(newLeader.fsm.len())
		for id, s := range stores {
			lo, _ := s.FirstIndex()
			hi, _ := s.LastIndex()
			for i := lo; i <= hi && lo > 0; i++ {
				var l Log
				if err := s.GetLog(i, &l); err != nil {
					t.Fatalf("%s: log has a gap at %d (%d-%d): %v", id, i, lo, hi, err)
				}
			}
		}
	})
}

// countData returns how many applied commands equal data.
func countData(f *testFSM, data string) int {
	n := 0
	for _, cmd := range f.commands() {
		if string(cmd) == data {
			n++
		}
	}
	return n
}

func TestLeader_StepsDownWhenStoreLogsStalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, stores := controlledCluster(t, 3, func(c *Config) { c.LogWriteStallTimeout = 300 * time.Millisecond })
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "ok", 10)
		release := stores[leader.id].holdWrites()
		defer release()
		stalled := leader.raft.Apply([]byte("stalled"), 0)
		<-stores[leader.id].entered
		start := time.Now()
		c.waitFor(5*time.Second, "the stalled leader to step down", func() bool { return leader.raft.State() != Leader })
		if waited := time.Since(start); waited < 300*time.Millisecond {
			t.Fatalf("stepped down after %v, before the stall bound", waited)
		}
		var rest []*testNode
		for _, n := range c.nodes {
			if n != leader {
				rest = append(rest, n)
			}
		}
		newLeader := c.waitForLeader(rest...)
		applyAll(t, newLeader, "after", 10)
		if got := leader.fsm.len(); got > 10 {
			t.Fatalf("the stalled leader applied %d commands, more than it stored", got)
		}
		// Once its disk answers, the old leader catches up. Its stalled
		// entry may have committed through the followers (then it is
		// applied, once) or not (then its future says leadership was lost).
		release()
		err := stalled.Error()
		if err != nil && !errors.Is(err, ErrLeadershipLost) {
			t.Fatalf("stalled apply: %v", err)
		}
		c.waitForSameFSMs(20 + countData(rest[0].fsm, "stalled"))
		if err == nil && countData(rest[0].fsm, "stalled") != 1 {
			t.Fatal("the stalled entry was reported applied but is not in the FSMs")
		}
	})
}

func TestShutdown_AnswersEveryFutureInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{conf: func(c *Config) { c.BatchApplyCh = true }})
		leader := c.waitForLeader()
		var futures []Future
		for i := 0; i < 500; i++ {
			futures = append(futures, leader.raft.Apply([]byte(fmt.Sprintf("x-%d", i)), 0))
			if i == 250 {
				go leader.raft.Shutdown()
			}
		}
		futures = append(futures, leader.raft.Barrier(0), leader.raft.VerifyLeader())
		for i, f := range futures {
			switch err := f.Error(); {
			case err == nil, errors.Is(err, ErrRaftShutdown), errors.Is(err, ErrLeadershipLost):
			default:
				t.Errorf("future %d: unexpected %v", i, err)
			}
		}
		leader.raft.Shutdown().Error()
		leader.raft = nil
		c.shutdown()
	})
}

// batchFSM is a BatchingFSM that records the size of every batch.
type batchFSM struct {
	testFSM
	// hold, when set, is waited for by the first ApplyBatch.
	hold    chan struct{}
	held    sync.Once
	mu      sync.Mutex
	batches []int
}

func (b *batchFSM) ApplyBatch(logs []*Log) []interface{} {
	if b.hold != nil {
		b.held.Do(func() { <-b.hold })
	}
	b.mu.Lock()
	b.batches = append(b.batches, len(logs))
	b.mu.Unlock()
	out := make([]interface{}, len(logs))
	for i, l := range logs {
		if l.Type == LogCommand {
			out[i] = b.testFSM.Apply(l)
		}
	}
	return out
}

func TestBatchingFSM_ReceivesBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := NewInmemStore()
		conf := testConfig(t, "solo")
		_, trans := NewInmemTransport("solo")
		snaps := NewInmemSnapshotStore()
		cfg := Configuration{Servers: []Server{{Voter, "solo", "solo"}}}
		if err := BootstrapCluster(conf, store, store, snaps, trans, cfg); err != nil {
			t.Fatal(err)
		}
		// The FSM's first batch is held until every Apply below is
		// committed, so that they wait for the FSM together: whether
		// they would otherwise is up to the scheduler (this test failed
		// 6 runs in 80 without -race when it was not held).
		fsm := &batchFSM{hold: make(chan struct{})}
		r, err := NewRaft(conf, fsm, store, store, snaps, trans)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Shutdown()
		for r.State() != Leader {
			<-r.LeaderCh()
		}
		var futures []ApplyFuture
		for i := 0; i < 1000; i++ {
			futures = append(futures, r.Apply([]byte(fmt.Sprintf("x-%d", i)), 0))
		}
		synctest.Wait()
		if last, _ := r.pub.lastLog(); r.pub.commitIndex.Load() < last {
			t.Fatalf("setup: commit index %d below the last index %d with every goroutine idle", r.pub.commitIndex.Load(), last)
		}
		close(fsm.hold)
		for i, f := range futures {
			if err := f.Error(); err != nil {
				t.Fatal(err)
			}
			if got := f.Response(); got != i+1 {
				t.Fatalf("response %d = %v, want %d", i, got, i+1)
			}
		}
		fsm.mu.Lock()
		defer fsm.mu.Unlock()
		largest := 0
		for _, b := range fsm.batches {
			largest = max(largest, b)
		}
		if largest < 2 {
			t.Fatalf("the BatchingFSM only ever received single entries: %v", fsm.batches)
		}
		if fsm.testFSM.len() != 1000 {
			t.Fatalf("FSM applied %d commands", fsm.testFSM.len())
		}
	})
}

func TestGroupCommit_QueuedAppliesNeedFewStoreLogsCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, stores := controlledCluster(t, 3, nil)
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "warm", 1)
		store := stores[leader.id]
		release := store.holdWrites()
		defer release()

		const n = 1000
		base, _ := leader.raft.pub.lastLog()
		var wg sync.WaitGroup
		errs := make([]error, n)
		// The first apply's write is held; wait until it is.
		wg.Add(1)
		go func() { defer wg.Done(); errs[0] = leader.raft.Apply([]byte("a-0"), 0).Error() }()
		<-store.entered
		for i := 1; i < n; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = leader.raft.Apply([]byte(fmt.Sprintf("a-%d", i)), 0).Error() }()
		}
		c.waitFor(5*time.Second, "all applies to be queued on the leader", func() bool {
			last, _ := leader.raft.pub.lastLog()
			return last >= base+n
		})
		before := store.calls.Load()
		release()
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("apply %d: %v", i, err)
			}
		}
		calls := store.calls.Load() - before
		limit := int64(n/leader.conf.MaxAppendEntries + 2)
		t.Logf("%d applies queued behind one held write needed %d more StoreLogs calls (limit %d)", n, calls, limit)
		if calls > limit {
			t.Fatalf("%d StoreLogs calls after release, want at most %d", calls, limit)
		}
	})
}

func TestRestoreCommittedLogs_AppliesBeforeALeaderIsKnown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		trackers := make(map[ServerID]*InmemCommitTrackingStore)
		c := newTestCluster(t, 3, clusterOpts{
			conf: func(c *Config) { c.RestoreCommittedLogs = true },
			logs: func(id ServerID, s *InmemStore) LogStore {
				ct := NewInmemCommitTrackingStore()
				trackers[id] = ct
				return ct
			},
		})
		defer c.shutdown()
		applyAll(t, c.waitForLeader(), "x", 100)
		c.waitForSameFSMs(100)
		// Let the commit index reach every follower's store.
		applyAll(t, c.waitForLeader(), "y", 1)
		c.shutdown()
		// Alone, a node cannot elect anyone, but it applies what its store
		// recorded as committed.
		node := c.nodes[1]
		c.start(node)
		staged, _ := trackers[node.id].GetCommitIndex()
		if staged < 50 {
			t.Fatalf("the store recorded commit index %d", staged)
		}
		c.waitFor(time.Second, "the restarted node to apply committed entries", func() bool {
			return node.raft.AppliedIndex() >= staged
		})
		if node.raft.State() == Leader {
			t.Fatal("a lone node became leader")
		}
	})
}
