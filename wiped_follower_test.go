package raft

import (
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
)

// A follower restarted under the same ID with an empty data directory
// answers every AppendEntries with LastLog=0. The leader must notice that
// it went backwards, stop counting what it had acknowledged, and repair it
// from the log or, once the log is compacted, with a snapshot
// (replication.go, replicator.wentBackwards).

// wipeAndRestart stops node, gives it empty stores, as a server restarted
// with an empty data directory has, and starts it again under the same ID
// and address.
func (c *testCluster) wipeAndRestart(node *testNode) {
	c.t.Helper()
	c.stop(node)
	node.store = NewInmemStore()
	node.logs = node.store
	if c.opts.logs != nil {
		node.logs = c.opts.logs(node.id, node.store)
	}
	node.snaps = NewInmemSnapshotStore()
	if c.opts.snaps != nil {
		node.snaps = c.opts.snaps(node.id)
	}
	c.start(node)
}

// loggingTo makes every node also write its log lines into buf.
func loggingTo(t *testing.T, buf *netLogBuffer, then func(*Config)) func(*Config) {
	return func(conf *Config) {
		level := hclog.Warn
		if l := os.Getenv("RAFT_TEST_LOG"); l != "" {
			level = hclog.LevelFromString(l)
		}
		conf.Logger = hclog.New(&hclog.LoggerOptions{
			Name:   string(conf.LocalID),
			Level:  level,
			Output: io.MultiWriter(testLogWriter{t}, buf),
		})
		if then != nil {
			then(conf)
		}
	}
}

// aFollower returns a node other than leader.
func aFollower(c *testCluster, leader *testNode) *testNode {
	for _, n := range c.nodes {
		if n != leader {
			return n
		}
	}
	c.t.Fatal("no follower")
	return nil
}

const wentBackwardsLog = "follower went backwards"

func TestWipedFollower_RepairedFromTheLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs netLogBuffer
		c := newTestCluster(t, 3, clusterOpts{conf: loggingTo(t, &logs, nil)})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 100)
		c.waitForSameFSMs(100)

		wiped := aFollower(c, leader)
		c.wipeAndRestart(wiped)
		// The cluster keeps committing while the wiped server is repaired.
		applyAll(t, leader, "y", 50)
		c.waitForSameFSMs(150)

		if first := firstIndex(t, leader); first != 1 {
			t.Fatalf("the leader compacted its log (first index %d); this case is about repair from the log", first)
		}
		if snaps, _ := wiped.snaps.List(); len(snaps) != 0 {
			t.Fatalf("the wiped follower received a snapshot; it should have been repaired from the log")
		}
		if n := logs.count(wentBackwardsLog); n == 0 {
			t.Fatalf("the leader did not log that %s went backwards", wiped.id)
		}
	})
}

func TestWipedFollower_RepairedBySnapshotOnceTheLogIsCompacted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs netLogBuffer
		// Enough trailing entries that later compactions never reach what
		// the wiped follower had acknowledged: only a repair that goes
		// back to the start of the log, found compacted, sends a snapshot.
		c := newTestCluster(t, 3, clusterOpts{conf: loggingTo(t, &logs, snapshotConf(50, 100))})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 300)
		c.waitForSameFSMs(300)
		c.waitFor(5*time.Second, "the leader to compact its log", func() bool { return firstIndex(t, leader) > 1 })

		wiped := aFollower(c, leader)
		c.wipeAndRestart(wiped)
		applyAll(t, leader, "y", 20)
		c.waitForSameFSMs(320)

		if snaps, _ := wiped.snaps.List(); len(snaps) == 0 {
			t.Fatalf("the wiped follower caught up without a snapshot, though the leader's log starts at %d", firstIndex(t, leader))
		}
		if n := logs.count(wentBackwardsLog); n == 0 {
			t.Fatalf("the leader did not log that %s went backwards", wiped.id)
		}
	})
}

// An entry the wiped follower had acknowledged, and no one but the leader
// still holds, must not commit on the strength of that old
// acknowledgement: if the leader then failed, a committed entry would be
// lost.
func TestWipedFollower_AcknowledgementsDoNotCountUntilRestored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stores := make(map[ServerID]*fzHeldStore)
		c := newTestCluster(t, 3, clusterOpts{
			logs: func(id ServerID, s *InmemStore) LogStore {
				held := &fzHeldStore{InmemStore: s}
				stores[id] = held
				return held
			},
		})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 10)
		c.waitForSameFSMs(10)
		wiped := aFollower(c, leader)
		var other *testNode
		for _, n := range c.nodes {
			if n != leader && n != wiped {
				other = n
			}
		}

		// Only the wiped-to-be follower can acknowledge, and the leader's
		// own write is held, so the entry waits for the leader's disk.
		c.partition(other)
		releaseLeader := once(stores[leader.id].holdWrites())
		defer releaseLeader()
		index := leader.raft.LastIndex() + 1
		f := leader.raft.Apply([]byte("acked-then-lost"), 0)
		c.waitFor(5*time.Second, "the follower to store the entry", func() bool {
			last, _ := stores[wiped.id].LastIndex()
			return last >= index
		})
		// Let the follower's answer reach the leader.
		synctest.Wait()

		// The follower loses its data. Its disk is slow after the restart,
		// so it cannot acknowledge anything again for a while.
		c.wipeAndRestart(wiped)
		releaseWiped := once(stores[wiped.id].holdWrites())
		defer releaseWiped()
		c.waitFor(5*time.Second, "the leader to resend the log to the wiped follower", func() bool {
			return wiped.raft.LastIndex() > 0
		})

		// The leader's write finishes. Only the leader holds the entry.
		releaseLeader()
		time.Sleep(time.Second) // many heartbeats and commit timeouts, in fake time
		synctest.Wait()
		if got := leader.raft.CommitIndex(); got >= index {
			t.Fatalf("entry %d committed (commit index %d) while only the leader holds it: the wiped follower's old acknowledgement was counted", index, got)
		}

		// Once the follower has stored it again, it commits.
		releaseWiped()
		if err := f.Error(); err != nil {
			t.Fatalf("apply after the follower was repaired: %v", err)
		}
		if last, _ := stores[wiped.id].LastIndex(); last < index {
			t.Fatalf("entry %d committed while the wiped follower's store ends at %d", index, last)
		}
	})
}

// A refusal whose LastLog is below the follower's match index drops the
// match index, so its acknowledgements stop counting, and sends the next
// request from just after the follower's last entry.
func TestReplicator_RefusalBelowMatchIndexDropsIt(t *testing.T) {
	for _, tc := range []struct {
		match, next, lastLog uint64
		wantMatch, wantNext  uint64
	}{
		{match: 100, next: 101, lastLog: 0, wantMatch: 0, wantNext: 1},
		{match: 100, next: 101, lastLog: 40, wantMatch: 0, wantNext: 41},
		// A follower that holds what it acknowledged keeps its match index.
		{match: 100, next: 120, lastLog: 105, wantMatch: 100, wantNext: 106},
		{match: 100, next: 120, lastLog: 100, wantMatch: 100, wantNext: 101},
	} {
		t.Run(fmt.Sprintf("match=%d,last=%d", tc.match, tc.lastLog), func(t *testing.T) {
			r := &Raft{logger: hclog.NewNullLogger(), clock: realClock{}}
			r.conf.Store(DefaultConfig())
			s := &replicator{r: r, lead: &replicationShared{term: 3}, progressCh: make(chan struct{}, 1), nextIndex: tc.next}
			s.match.Store(tc.match)
			resp := &AppendEntriesResponse{Term: 3, LastLog: tc.lastLog, NoRetryBackoff: true}
			s.handleResponse(&AppendEntriesRequest{Term: 3, PrevLogEntry: tc.next - 1}, resp)
			if got := s.match.Load(); got != tc.wantMatch {
				t.Errorf("match index %d, want %d", got, tc.wantMatch)
			}
			if s.nextIndex != tc.wantNext {
				t.Errorf("next index %d, want %d", s.nextIndex, tc.wantNext)
			}
		})
	}
}

// once returns f made safe to call more than once.
func once(f func()) func() {
	var o sync.Once
	return func() { o.Do(f) }
}
