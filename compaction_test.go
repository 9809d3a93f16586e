package raft

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// heldDeleteStore is an in-memory log store whose DeleteRange calls can be
// held, as a slow disk would hold a large one.
type heldDeleteStore struct {
	*InmemStore
	mu      sync.Mutex
	hold    chan struct{}
	entered chan struct{} // poked when a held DeleteRange starts waiting
}

func (s *heldDeleteStore) DeleteRange(lo, hi uint64) error {
	waitIfHeld(&s.mu, &s.hold, s.entered)
	return s.InmemStore.DeleteRange(lo, hi)
}

// holdDeletes makes later DeleteRange calls wait until the returned
// function is called (once or more).
func (s *heldDeleteStore) holdDeletes() (release func()) { return holdCalls(&s.mu, &s.hold) }

// newManualSnapshotCluster starts n nodes that snapshot only when asked
// (Raft.Snapshot), keeping trailing entries behind each, over the log
// stores logs wraps around their in-memory ones.
func newManualSnapshotCluster(t *testing.T, n int, trailing uint64, logs func(ServerID, *InmemStore) LogStore) *testCluster {
	return newTestCluster(t, n, clusterOpts{
		conf: func(c *Config) {
			c.TrailingLogs = trailing
			c.SnapshotThreshold = 1 << 30
			c.SnapshotInterval = time.Hour
		},
		logs: logs,
	})
}

// Issue 13: the compaction after a snapshot ran on the log writer ahead of
// the entries queued behind it, so a slow DeleteRange held back every
// acknowledgement (and, past LogWriteStallTimeout, deposed the leader). The
// compaction now runs beside the writes: while the leader's DeleteRange is
// held, entries commit and apply on every node at once, in fake time.
func TestCompaction_SlowDeleteRangeDelaysNoAcknowledgement(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stores := make(map[ServerID]*heldDeleteStore)
		c := newManualSnapshotCluster(t, 3, 0, func(id ServerID, s *InmemStore) LogStore {
			d := &heldDeleteStore{InmemStore: s, entered: make(chan struct{}, 1)}
			stores[id] = d
			return d
		})
		defer c.shutdown()
		leader := c.waitForLeader()
		term := leader.raft.CurrentTerm()
		applyAll(t, leader, "a", 10)
		c.waitForSameFSMs(10)

		// Every node's compaction is held. Snapshot answers only once its
		// compaction has run (snapshot_compaction_wait.go): the futures
		// are checked after the release.
		var releases []func()
		snaps := make(map[ServerID]Future)
		for _, n := range c.nodes {
			releases = append(releases, stores[n.id].holdDeletes())
		}
		for _, n := range c.nodes {
			snaps[n.id] = n.raft.Snapshot()
			<-stores[n.id].entered
		}
		start := time.Now()
		for i := 0; i < 50; i++ {
			f := leader.raft.Apply([]byte(fmt.Sprintf("b-%d", i)), time.Second)
			if err := f.Error(); err != nil {
				t.Fatalf("apply %d while the compaction is held: %v", i, err)
			}
		}
		if took := time.Since(start); took > 10*time.Millisecond {
			t.Fatalf("50 applies took %v of fake time behind a held compaction, want under 10ms", took)
		}
		// The compaction stays held for many stall timeouts: nothing waits
		// for it, and the leader keeps its place.
		time.Sleep(2 * leader.raft.config().LogWriteStallTimeout)
		applyAll(t, leader, "c", 5)
		if leader.raft.State() != Leader || leader.raft.CurrentTerm() != term {
			t.Fatalf("leader is %v in term %d, was leader in term %d", leader.raft.State(), leader.raft.CurrentTerm(), term)
		}
		c.waitForSameFSMs(65)
		for _, release := range releases {
			release()
		}
		for id, f := range snaps {
			if err := f.Error(); err != nil {
				t.Fatalf("snapshot on %s: %v", id, err)
			}
		}
	})
}

// Raft.Snapshot used to answer as soon as the snapshot was stored, with
// the log compaction it allows still queued or running; the reference
// answers after compacting, and an application that snapshots to shrink
// its log reads FirstIndex next. Snapshot now answers once the compaction
// has run: while DeleteRange is held the future stays pending, and when it
// answers the log store's head is gone.
func TestCompaction_SnapshotAnswersAfterItsCompaction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var store *heldDeleteStore
		c := newManualSnapshotCluster(t, 1, 2, func(id ServerID, s *InmemStore) LogStore {
			store = &heldDeleteStore{InmemStore: s, entered: make(chan struct{}, 1)}
			return store
		})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "a", 20)
		c.waitForSameFSMs(20)

		release := store.holdDeletes()
		f := leader.raft.Snapshot()
		<-store.entered
		synctest.Wait()
		select {
		case <-f.(*userSnapshotFuture).doneCh:
			t.Fatal("Snapshot answered while its compaction was still running")
		default:
		}
		release()
		if err := f.Error(); err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		first, err := store.FirstIndex()
		if err != nil {
			t.Fatal(err)
		}
		last, _ := store.LastIndex()
		if want := last - 2 + 1; first != want {
			t.Fatalf("FirstIndex is %d when Snapshot answered, want %d (last %d, TrailingLogs 2)", first, want, last)
		}
	})
}

// A compaction that fails is logged and forgotten; the Snapshot call that
// waits for it still answers (nil: the snapshot is stored).
func TestCompaction_SnapshotAnswersWhenItsCompactionFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var store *failingDeleteStore
		c := newManualSnapshotCluster(t, 1, 0, func(id ServerID, s *InmemStore) LogStore {
			store = &failingDeleteStore{InmemStore: s}
			return store
		})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "a", 10)
		c.waitForSameFSMs(10)
		store.fail.Store(true)
		if err := leader.raft.Snapshot().Error(); err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		if first, _ := store.FirstIndex(); first != 1 {
			t.Fatalf("FirstIndex %d after a failed compaction, want 1", first)
		}
	})
}

// failingDeleteStore is an in-memory log store whose DeleteRange fails
// once fail is set.
type failingDeleteStore struct {
	*InmemStore
	fail atomic.Bool
}

func (s *failingDeleteStore) DeleteRange(lo, hi uint64) error {
	if s.fail.Load() {
		return errors.New("disk says no")
	}
	return s.InmemStore.DeleteRange(lo, hi)
}

// listingSnapshots is a snapshot store whose List answers from a script:
// the i-th call gets lists[min(i, len-1)].
type listingSnapshots struct {
	SnapshotStore
	mu    sync.Mutex
	calls int
	lists [][]*SnapshotMeta
}

func (s *listingSnapshots) List() ([]*SnapshotMeta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lists[min(s.calls, len(s.lists)-1)]
	s.calls++
	return l, nil
}

// A compaction handed to the writer (or compactor) just before a
// replicator pinned an older snapshot used to delete the entries after
// that snapshot: the run loop had looked for pins before the pin, and the
// replicator saw the log still whole. The run loop now publishes the
// compaction's target before it looks, and the replicator, after pinning,
// takes a newer snapshot when the target passes the pinned one.
func TestCompaction_PinSeesACompactionHandedOver(t *testing.T) {
	store := NewInmemStore()
	if err := store.StoreLogs(entriesFrom(1, 1, 1, 1, 1, 1, 1, 1, 1, 1)); err != nil {
		t.Fatal(err)
	}
	old := &SnapshotMeta{ID: "old", Index: 5, Term: 1}
	newer := &SnapshotMeta{ID: "newer", Index: 10, Term: 1}
	snaps := &listingSnapshots{lists: [][]*SnapshotMeta{{old}, {newer, old}}}
	_, trans := NewInmemTransport("a0")
	r := newNode(testConfig(t, "n0"), &testFSM{}, store, store, snaps, trans)
	// The run loop handed over a compaction up to 10 that has not run yet,
	// after it recorded the snapshot at 10 as its own.
	r.pub.setLastSnapshot(10, 1)
	r.compactTarget.Store(10)
	s := &replicator{r: r}
	meta, err := s.pinSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	if meta.ID != "newer" || s.installing.Load() != 10 {
		t.Fatalf("pinned %q (installing %d); the compaction to 10 deletes what follows %q", meta.ID, s.installing.Load(), old.ID)
	}
}
