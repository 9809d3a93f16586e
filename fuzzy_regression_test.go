package raft

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
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
	waitIfHeld(&s.mu, &s.hold, nil)
	return s.InmemStore.StoreLogs(logs)
}

func (s *fzHeldStore) StoreLog(l *Log) error { return s.StoreLogs([]*Log{l}) }

// holdWrites makes later writes wait until release is called.
func (s *fzHeldStore) holdWrites() (release func()) { return holdCalls(&s.mu, &s.hold) }

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

// fzFailingDeleteStore is a log store whose next DeleteRange can be made to
// fail without deleting anything, as a disk error would.
type fzFailingDeleteStore struct {
	*InmemStore
	failNextDelete atomic.Bool
}

func (s *fzFailingDeleteStore) DeleteRange(lo, hi uint64) error {
	if s.failNextDelete.Swap(false) {
		return errors.New("injected DeleteRange failure")
	}
	return s.InmemStore.DeleteRange(lo, hi)
}

// Found by fuzzy seed 4609704012640922946 (disk errors): a follower whose
// log held an uncommitted suffix from an old leader was sent the new
// leader's entries there. It moved its commit index over them, queued the
// deletion of its suffix and the new entries, and the deletion failed. The
// resync after the failure read the log back from the store, which still
// held the old suffix, while the commit index stayed above it: the FSM
// applied the old leader's uncommitted entries, and the follower refused
// the leader's entries from then on as overwriting committed ones.
func TestFuzzyRegression_FailedTruncationNeverAppliesTheOldSuffix(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stores := make(map[ServerID]*fzFailingDeleteStore)
		c := newTestCluster(t, 3, clusterOpts{
			logs: func(id ServerID, s *InmemStore) LogStore {
				st := &fzFailingDeleteStore{InmemStore: s}
				stores[id] = st
				return st
			},
		})
		defer c.shutdown()
		old := c.waitForLeader()
		if err := old.raft.Apply([]byte("committed"), 0).Error(); err != nil {
			t.Fatalf("apply: %v", err)
		}

		// The old leader, cut off, appends entries that never commit.
		c.partition(old)
		for i := range 3 {
			old.raft.Apply([]byte(fmt.Sprintf("lost-%d", i)), 0)
		}
		var rest []*testNode
		for _, n := range c.nodes {
			if n != old {
				rest = append(rest, n)
			}
		}
		leader := c.waitForLeader(rest...)
		for i := range 5 {
			if err := leader.raft.Apply([]byte(fmt.Sprintf("new-%d", i)), 0).Error(); err != nil {
				t.Fatalf("apply on the new leader: %v", err)
			}
		}

		// It rejoins; deleting its old suffix fails once.
		stores[old.id].failNextDelete.Store(true)
		c.heal()
		appliedLost := func() bool {
			for _, cmd := range old.fsm.commands() {
				if bytes.HasPrefix(cmd, []byte("lost-")) {
					return true
				}
			}
			return false
		}
		c.waitFor(30*time.Second, "the old leader to catch up", func() bool {
			return appliedLost() || old.raft.State() == Shutdown || old.fsm.len() >= leader.fsm.len()
		})
		if appliedLost() {
			t.Fatalf("the old leader applied its uncommitted entries: %q", old.fsm.commands())
		}
		if stores[old.id].failNextDelete.Load() {
			t.Fatal("the old leader never truncated its log, so the failed deletion was not exercised")
		}
		if old.raft.State() == Shutdown {
			return
		}
		want := leader.fsm.commands()
		got := old.fsm.commands()
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("command %d: the old leader applied %q, the leader %q", i+1, got[i], want[i])
			}
		}
	})
}

// fzHeldStable is a stable store whose SetUint64 calls can be held, and
// which counts the calls made once told that Shutdown has returned.
type fzHeldStable struct {
	*InmemStore
	mu      sync.Mutex
	hold    chan struct{} // guarded by mu
	entered chan struct{} // poked when a held call starts waiting
	closed  atomic.Bool   // set once Shutdown has returned
	late    atomic.Int64  // calls made after closed was set
}

func (s *fzHeldStable) SetUint64(key []byte, val uint64) error {
	if s.closed.Load() {
		s.late.Add(1)
	}
	s.mu.Lock()
	hold := s.hold
	s.mu.Unlock()
	if hold != nil {
		notify(s.entered)
		<-hold
	}
	return s.InmemStore.SetUint64(key, val)
}

// Found by fuzzy seed 2444777796757749578 (a slow disk): Shutdown does not
// wait for a goroutine inside a store call, and its doc says that goroutine
// exits when the call returns. The run loop did not: serveOne chose at
// random among its ready cases, shutdown included, so after the call
// returned it went on serving queued requests, each of which could call
// the store again, after Shutdown had returned and the application may
// have closed the store.
func TestFuzzyRegression_RunLoopLeavesTheStoreAloneAfterShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The run loop picks at random; each round gives a run loop that
		// ignores shutdown a fresh chance to pick a queued request.
		for round := range 20 {
			conf := testConfig(t, "n0")
			store := NewInmemStore()
			stable := &fzHeldStable{InmemStore: store, entered: make(chan struct{}, 1)}
			_, trans := NewInmemTransport("a0")
			_, peer := NewInmemTransport("a1")
			peer.Connect("a0", trans)
			cfg := Configuration{Servers: []Server{
				{Suffrage: Voter, ID: "n0", Address: "a0"},
				{Suffrage: Voter, ID: "p1", Address: "a1"},
			}}
			if err := BootstrapCluster(conf, store, stable, NewInmemSnapshotStore(), trans, cfg); err != nil {
				t.Fatal(err)
			}
			r, err := NewRaft(conf, &testFSM{}, store, stable, NewInmemSnapshotStore(), trans)
			if err != nil {
				t.Fatal(err)
			}
			// Past the hold after its start, in which it refuses every vote
			// request without taking its term (election.go).
			neverCampaign(t, r)
			time.Sleep(conf.HeartbeatTimeout)

			ch := make(chan struct{})
			stable.mu.Lock()
			stable.hold = ch
			stable.mu.Unlock()
			vote := func(term uint64) {
				var resp RequestVoteResponse
				peer.RequestVote("n0", "a0", &RequestVoteRequest{
					RPCHeader: RPCHeader{ProtocolVersion: ProtocolVersionMax, ID: []byte("p1"), Addr: []byte("a1")},
					Term:      term, LastLogIndex: 100, LastLogTerm: 100,
				}, &resp)
			}
			var voters sync.WaitGroup
			voters.Go(func() { vote(5) })
			<-stable.entered // the run loop is parked persisting term 5
			for term := uint64(6); term < 16; term++ {
				voters.Go(func() { vote(term) })
			}
			synctest.Wait() // the requests are queued for the run loop

			r.Shutdown().Error()
			stable.closed.Store(true)
			stable.mu.Lock()
			stable.hold = nil
			stable.mu.Unlock()
			close(ch)
			voters.Wait()
			synctest.Wait()
			if n := stable.late.Load(); n > 0 {
				t.Fatalf("round %d: the run loop called the stable store %d times after Shutdown returned", round, n)
			}
		}
	})
}

// fzFailingStoreLogs is a log store whose next StoreLogs can be made to
// fail without storing anything, as a disk error would.
type fzFailingStoreLogs struct {
	*InmemStore
	failNextStore atomic.Bool
}

func (s *fzFailingStoreLogs) StoreLogs(logs []*Log) error {
	if s.failNextStore.Swap(false) {
		return errors.New("injected StoreLogs failure")
	}
	return s.InmemStore.StoreLogs(logs)
}

func (s *fzFailingStoreLogs) StoreLog(l *Log) error { return s.StoreLogs([]*Log{l}) }

// Found by fuzzy seed 3255986183942475798 (TrailingLogs=0, disk errors): a
// follower whose snapshot covered its whole log had compacted the log
// store empty. A log write then failed, and the resync that follows a
// failed write read the end of the log back from the store alone: the
// follower's view of its log went back to index 0 although its snapshot
// held everything up to its index. It refused every AppendEntries after the
// snapshot from then on, and the leader, which knew the follower held its
// entries, retried forever without waiting (the run livelocked).
//
// The leader here is played by hand, so that nothing retries.
func TestFuzzyRegression_ResyncAfterFailedWriteKeepsTheSnapshot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := NewInmemStore()
		logs := &fzFailingStoreLogs{InmemStore: store}
		r, send := startHandLedFollower(t, logs, store, &testFSM{})
		defer r.Shutdown()

		if resp := send(1, 2, 10, 10); !resp.Success {
			t.Fatalf("the follower refused the first entries: %+v", resp)
		}
		send(10, 0, 0, 10) // tells it 10 is committed
		synctest.Wait()
		if got := r.AppliedIndex(); got != 10 {
			t.Fatalf("applied index %d, want 10", got)
		}
		// Its snapshot covers the whole log, which is compacted away.
		if err := r.Snapshot().Error(); err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		synctest.Wait()
		if last, _ := store.LastIndex(); last != 0 {
			t.Fatalf("the log store still holds entries up to %d; TrailingLogs=0 should have emptied it", last)
		}

		// A write fails; the follower reads its log back.
		logs.failNextStore.Store(true)
		if resp := send(10, 11, 11, 10); resp.Success {
			t.Fatal("the follower acknowledged an entry whose write failed")
		}
		synctest.Wait()
		if logs.failNextStore.Load() {
			t.Fatal("the failed write was not exercised")
		}

		// The snapshot still holds everything up to index 10.
		if resp := send(10, 11, 12, 12); !resp.Success {
			t.Fatalf("after the failed write, the follower refused entries that follow its snapshot (last log %d)", resp.LastLog)
		}
		synctest.Wait()
		if got := r.AppliedIndex(); got != 12 {
			t.Fatalf("applied index %d, want 12", got)
		}
	})
}

// Found by fuzzy seed 4609138091560279735 (TrailingLogs=0): a follower had
// received entries its leader did not know it held, taken a snapshot and
// compacted them away. The leader then sent entries after one it knew the
// follower held, below the follower's snapshot; the follower could not
// read that entry to check its term and refused, with a hint the leader
// may not move past. The leader, which never moves its next index below
// the follower's match index, sent the same request again, without
// pausing, for good: the run livelocked. An entry below a follower's
// snapshot is committed, so it matches the leader's.
//
// The leader here is played by hand.
func TestFuzzyRegression_FollowerAcceptsEntriesAfterOneItCompacted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := NewInmemStore()
		fsm := &testFSM{}
		r, send := startHandLedFollower(t, store, store, fsm)
		defer r.Shutdown()

		// The follower acknowledges up to 5 (the leader's match index),
		// then receives up to 10, whose answer the leader never sees, and
		// learns they are committed.
		if resp := send(1, 2, 5, 5); !resp.Success {
			t.Fatalf("the follower refused the first entries: %+v", resp)
		}
		send(5, 6, 10, 10)
		synctest.Wait()
		if got := r.AppliedIndex(); got != 10 {
			t.Fatalf("applied index %d, want 10", got)
		}
		// Its snapshot covers its whole log, which is compacted away.
		if err := r.Snapshot().Error(); err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		synctest.Wait()
		if first, _ := store.FirstIndex(); first != 0 {
			t.Fatalf("the log store still holds entries from %d; TrailingLogs=0 should have emptied it", first)
		}

		// The leader retries after the last entry it knows the follower
		// holds.
		if resp := send(5, 6, 12, 12); !resp.Success {
			t.Fatalf("the follower refused entries after index 5, which its snapshot covers (hint %d)", resp.LastLog)
		}
		synctest.Wait()
		if got := r.AppliedIndex(); got != 12 {
			t.Fatalf("applied index %d, want 12", got)
		}
		if got := fsm.len(); got != 11 {
			t.Fatalf("the FSM holds %d commands, want 11", got)
		}
	})
}

// startHandLedFollower starts n0 of a bootstrapped three-server cluster
// (startHandLed, with the default LogWriteStallTimeout) as a follower that
// compacts its whole log on each snapshot (TrailingLogs 0) and snapshots
// only when asked. The test plays n1, the leader of term 2, by hand
// through the returned send: it sends entries from..to of term 2 after
// prev, committing up to commit (no entries when from is 0), so that
// nothing retries behind the test's back.
func startHandLedFollower(t *testing.T, logs LogStore, stable *InmemStore, fsm FSM) (*Raft, func(prev, from, to, commit uint64) *AppendEntriesResponse) {
	t.Helper()
	h := startHandLed(t, logs, stable, NewInmemSnapshotStore(), fsm, true, func(c *Config) {
		c.LogWriteStallTimeout = DefaultConfig().LogWriteStallTimeout
	})
	send := func(prev, from, to, commit uint64) *AppendEntriesResponse {
		t.Helper()
		prevTerm := uint64(2)
		if prev == 1 {
			prevTerm = 1 // the bootstrap entry
		}
		return h.appendEntries(2, prev, prevTerm, from, to, 2, commit)
	}
	return h.r, send
}

// Found by the fuzzy soak (seed 7392399948086879820, as a write-path
// invariant break: "I6: compactedTo 551 past the newest snapshot 550"): an
// InstallSnapshot is checked when it arrives, but the follower goes on
// taking AppendEntries while the snapshot streams in, and may meanwhile
// snapshot and compact its own log past the snapshot being received (a
// late install, sent before the leader learned the follower caught up).
// Before the fix the follower then adopted the older snapshot: it moved
// its newest snapshot back below its own, and, the snapshot's last entry
// being compacted, reset its log to it and deleted the entries after,
// committed ones included.
func TestFuzzyRegression_LateInstallBelowOwnSnapshotIsNotAdopted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startHandPlayed(t, func(c *Config) {
			c.TrailingLogs = 0
			c.SnapshotThreshold = 1 << 20
			c.SnapshotInterval = time.Hour
			c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = time.Hour, time.Hour, time.Hour
		}, Voter)
		defer h.stop()
		if resp := h.send(1, 2, 9, 9); !resp.Success {
			t.Fatalf("d refused entries 2-9: %+v", resp)
		}
		synctest.Wait()

		// a sends a snapshot at index 5, whose stream d waits for.
		var cfg Configuration
		for _, id := range []ServerID{"a", "b", "c", "d", "e"} {
			cfg.Servers = append(cfg.Servers, Server{Suffrage: Voter, ID: id, Address: ServerAddress("addr-" + id)})
		}
		var cmds [][]byte
		for i := 2; i <= 5; i++ {
			cmds = append(cmds, []byte(fmt.Sprintf("cmd-%d", i)))
		}
		data, err := json.Marshal(cmds)
		if err != nil {
			t.Fatal(err)
		}
		req := &InstallSnapshotRequest{
			RPCHeader:          RPCHeader{ProtocolVersion: ProtocolVersionMax, ID: []byte("a"), Addr: []byte("addr-a")},
			SnapshotVersion:    SnapshotVersionMax,
			Term:               2,
			Leader:             []byte("addr-a"),
			LastLogIndex:       5,
			LastLogTerm:        2,
			Configuration:      EncodeConfiguration(cfg),
			ConfigurationIndex: 1,
			Size:               int64(len(data)),
		}
		stream := &heldEOFReader{data: data, release: make(chan struct{})}
		installed := make(chan *InstallSnapshotResponse, 1)
		go func() {
			var resp InstallSnapshotResponse
			if err := h.trans["a"].InstallSnapshot("d", "addr-d", req, &resp, stream); err != nil {
				t.Errorf("InstallSnapshot: %v", err)
			}
			installed <- &resp
		}()
		synctest.Wait()

		// d has stored the snapshot, and waits for the end of the stream
		// before it adopts it. Meanwhile it snapshots and compacts its own
		// log up to 9.
		if err := h.d.Snapshot().Error(); err != nil {
			t.Fatalf("d's snapshot: %v", err)
		}
		synctest.Wait()
		close(stream.release)
		resp := <-installed
		synctest.Wait()
		if !resp.Success {
			t.Errorf("the install was answered %+v; d holds everything it covers, so it should succeed", resp)
		}
		if got := h.d.LastIndex(); got != 9 {
			t.Errorf("after the late install d's last index is %d, want 9", got)
		}
		if got := h.d.Stats()["last_snapshot_index"]; got != "9" {
			t.Errorf("after the late install d's newest snapshot is at %s, want 9", got)
		}
	})
}

// heldEOFReader is an InstallSnapshot stream: data, one io.EOF (which ends
// the receiver's copy into its store), and then nothing until release is
// closed (the receiver reads the stream to its end before the run loop
// adopts the snapshot).
type heldEOFReader struct {
	data    []byte
	eofSent bool
	release chan struct{}
}

func (r *heldEOFReader) Read(p []byte) (int, error) {
	if len(r.data) > 0 {
		n := copy(p, r.data)
		r.data = r.data[n:]
		return n, nil
	}
	if !r.eofSent {
		r.eofSent = true
		return 0, io.EOF
	}
	<-r.release
	return 0, io.EOF
}
