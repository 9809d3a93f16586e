package raft

import (
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// closeFailingSnapshots is a snapshot store whose sinks, while fail is
// set, store the snapshot and then answer Close with an error, as a disk
// whose last write landed but reported a failure does.
type closeFailingSnapshots struct {
	SnapshotStore
	fail atomic.Bool
}

func (s *closeFailingSnapshots) Create(version SnapshotVersion, index, term uint64, cfg Configuration, cfgIndex uint64, trans Transport) (SnapshotSink, error) {
	sink, err := s.SnapshotStore.Create(version, index, term, cfg, cfgIndex, trans)
	if err != nil {
		return nil, err
	}
	return &closeFailingSink{SnapshotSink: sink, s: s}, nil
}

type closeFailingSink struct {
	SnapshotSink
	s *closeFailingSnapshots
}

func (k *closeFailingSink) Close() error {
	if err := k.SnapshotSink.Close(); err != nil {
		return err
	}
	if k.s.fail.Load() {
		return errors.New("injected: the snapshot landed, but Close failed")
	}
	return nil
}

// Soak seed 23788211763494007 (fuzzy harness, user restores on): a user
// Restore whose snapshot landed in the leader's store although its sink's
// Close failed left that snapshot, at (X, T), in the store; the leader,
// still leading term T, appended its next entry at X, so the log held
// (X, T) too. After a restart the node loaded the user's snapshot, found
// its log matching the leader's at X and applied the cluster's commands on
// top of the user's state. Now a leader whose failed restore may have left
// its snapshot in the store steps down, so no entry of term T ever lands
// at X.
func TestStraySnapshot_FailedRestoreNeverSharesItsIndexAndTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		snaps := make(map[ServerID]*closeFailingSnapshots)
		c := newTestCluster(t, 3, clusterOpts{
			snaps: func(id ServerID) SnapshotStore {
				s := &closeFailingSnapshots{SnapshotStore: NewInmemSnapshotStore()}
				snaps[id] = s
				return s
			},
		})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "a", 5)
		c.waitForSameFSMs(5)

		snaps[leader.id].fail.Store(true)
		if err := <-startRestore(leader, commandList("user", 3)); err == nil {
			t.Fatal("Restore answered nil although its snapshot's Close failed")
		}
		snaps[leader.id].fail.Store(false)
		metas, err := snaps[leader.id].List()
		if err != nil || len(metas) == 0 {
			t.Fatalf("the leader's store lists %v, %v: want the stray snapshot", metas, err)
		}
		stray := metas[0]

		next := c.waitForLeader()
		applyAll(t, next, "b", 3)
		c.waitFor(10*time.Second, "every node to apply the new commands", func() bool {
			for _, n := range c.nodes {
				if n.raft.AppliedIndex() < stray.Index {
					return false
				}
			}
			return true
		})
		for _, n := range c.nodes {
			var l Log
			if err := n.raft.logs.GetLog(stray.Index, &l); err == nil && l.Term == stray.Term {
				t.Fatalf("%s holds an entry at (%d, %d), the index and term of the failed restore's snapshot: %+v",
					n.id, stray.Index, stray.Term, l)
			}
		}
	})
}

// A snapshot the node never adopted (a user restore whose leader lost its
// term as the copy landed, an install whose term ended as it closed) may
// be the newest in the store. Loaded at start, and with the node's log
// matching the next leader's past it, it had the node apply the cluster's
// commands on the user's state. The log holds an entry of another term
// at the snapshot's index: the snapshot is not the node's state there, and
// it is not loaded.
func TestStraySnapshot_NotLoadedWhenTheLogDisagreesAtItsIndex(t *testing.T) {
	store := NewInmemStore()
	if err := store.StoreLogs(entriesFrom(1, 1, 1, 1, 1, 1, 1, 1, 1, 4, 4, 4, 4)); err != nil {
		t.Fatal(err)
	}
	snaps := NewInmemSnapshotStore()
	_, trans := NewInmemTransport("a0")
	data := encodeCommands(commandList("user", 3))
	cfg := Configuration{Servers: []Server{{Suffrage: Voter, ID: "n0", Address: "a0"}}}
	sink, err := snaps.Create(SnapshotVersionMax, 10, 3, cfg, 1, trans)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	fsm := &testFSM{}
	conf := testConfig(t, "n0")
	r, err := NewRaft(conf, fsm, store, store, snaps, trans)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Shutdown().Error()
	if cmds := fsm.commands(); len(cmds) != 0 {
		t.Fatalf("the FSM restored the stray snapshot at (10, 3) over a log holding (10, 4): %q", cmds)
	}
	if got := r.LastIndex(); got != 12 {
		t.Fatalf("LastIndex %d, want the log's 12", got)
	}
}

// A stray snapshot whose term is above that of the node's own newer
// snapshot lists first in a store that orders by term (FileSnapshotStore
// does, as the reference's). When the log was compacted to exactly the
// stray's index, nothing in the log disagreed with it: it was loaded and
// the log's entries were applied on top of it. Snapshots are tried from
// the highest index down.
func TestStraySnapshot_OwnNewerSnapshotWinsOverAStrayOfAHigherTerm(t *testing.T) {
	store := NewInmemStore()
	if err := store.StoreLogs(entriesFrom(9, 2, 2, 2, 2)); err != nil {
		t.Fatal(err)
	}
	snaps, err := NewFileSnapshotStore(t.TempDir(), 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	_, trans := NewInmemTransport("a0")
	cfg := Configuration{Servers: []Server{{Suffrage: Voter, ID: "n0", Address: "a0"}}}
	for _, s := range []struct {
		index, term uint64
		cmds        [][]byte
	}{{10, 2, commandList("own", 10)}, {8, 3, commandList("user", 3)}} {
		sink, err := snaps.Create(SnapshotVersionMax, s.index, s.term, cfg, 1, trans)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sink.Write(encodeCommands(s.cmds)); err != nil {
			t.Fatal(err)
		}
		if err := sink.Close(); err != nil {
			t.Fatal(err)
		}
	}
	fsm := &testFSM{}
	r, err := NewRaft(testConfig(t, "n0"), fsm, store, store, snaps, trans)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Shutdown().Error()
	if cmds := fsm.commands(); len(cmds) != 10 || string(cmds[0]) != "own-0" {
		t.Fatalf("the FSM holds %q, want the node's own snapshot at 10", cmds)
	}
}
