package raft

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
)

// snapshotConf makes nodes snapshot often and keep few trailing entries.
func snapshotConf(threshold, trailing uint64) func(*Config) {
	return func(c *Config) {
		c.SnapshotThreshold = threshold
		c.TrailingLogs = trailing
		c.SnapshotInterval = 10 * time.Millisecond
	}
}

// countingSnapshots counts the snapshots persisted through a store.
type countingSnapshots struct {
	SnapshotStore
	closed *atomic.Int64
}

func (c countingSnapshots) Create(version SnapshotVersion, index, term uint64, cfg Configuration, cfgIndex uint64, trans Transport) (SnapshotSink, error) {
	sink, err := c.SnapshotStore.Create(version, index, term, cfg, cfgIndex, trans)
	if err != nil {
		return nil, err
	}
	return countingSink{SnapshotSink: sink, closed: c.closed}, nil
}

type countingSink struct {
	SnapshotSink
	closed *atomic.Int64
}

func (s countingSink) Close() error {
	err := s.SnapshotSink.Close()
	if err == nil {
		s.closed.Add(1)
	}
	return err
}

// firstIndex returns the first index in node's log store.
func firstIndex(t *testing.T, node *testNode) uint64 {
	t.Helper()
	i, err := node.logs.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func TestSnapshot_NewNodeCatchesUpFromASnapshot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{conf: snapshotConf(50, 10)})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 400)
		c.waitFor(5*time.Second, "the leader to compact its log", func() bool { return firstIndex(t, leader) > 100 })

		joiner := c.newNode("joiner")
		c.start(joiner)
		if err := leader.raft.AddVoter(joiner.id, joiner.addr, 0, 0).Error(); err != nil {
			t.Fatalf("AddVoter: %v", err)
		}
		c.waitForSameFSMs(400)
		snaps, _ := joiner.snaps.List()
		if len(snaps) == 0 {
			t.Fatal("the new node caught up without receiving a snapshot")
		}
		applyAll(t, c.waitForLeader(), "y", 10)
		c.waitForSameFSMs(410)
	})
}

func TestSnapshot_RestartedNodeRestoresItsSnapshotAndReplaysTheRest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{conf: snapshotConf(50, 10)})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 300)
		var follower *testNode
		for _, n := range c.nodes {
			if n != leader {
				follower = n
				break
			}
		}
		c.waitFor(5*time.Second, "the follower to snapshot and compact", func() bool {
			snaps, _ := follower.snaps.List()
			return len(snaps) > 0 && firstIndex(t, follower) > 1
		})
		c.stop(follower)
		snaps, _ := follower.snaps.List()
		snapIndex := snaps[0].Index
		applyAll(t, leader, "y", 100)

		c.start(follower)
		// The FSM holds the snapshot before the node hears from anyone.
		if got := follower.raft.AppliedIndex(); got < snapIndex {
			t.Fatalf("after restart the applied index is %d, want at least the snapshot's %d", got, snapIndex)
		}
		c.waitForSameFSMs(400)
	})
}

func TestSnapshot_HundredAutomaticSnapshotsUnderLoadLoseNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		counts := make(map[ServerID]*atomic.Int64)
		c := newTestCluster(t, 3, clusterOpts{
			conf: snapshotConf(20, 5),
			snaps: func(id ServerID) SnapshotStore {
				counts[id] = new(atomic.Int64)
				return countingSnapshots{SnapshotStore: NewInmemSnapshotStore(), closed: counts[id]}
			},
		})
		defer c.shutdown()
		leader := c.waitForLeader()
		n := 0
		for counts[leader.id].Load() < 100 {
			// Keep applying, in bursts, so snapshots and applies overlap.
			var futures []ApplyFuture
			for i := 0; i < 25; i++ {
				futures = append(futures, leader.raft.Apply([]byte(fmt.Sprintf("x-%d", n)), 0))
				n++
			}
			for _, f := range futures {
				if err := f.Error(); err != nil {
					t.Fatalf("apply: %v", err)
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		c.waitForSameFSMs(n)
		for i, cmd := range leader.fsm.commands() {
			if want := fmt.Sprintf("x-%d", i); string(cmd) != want {
				t.Fatalf("command %d is %q, want %q", i, cmd, want)
			}
		}
		t.Logf("%d applies, %d snapshots on the leader", n, counts[leader.id].Load())
	})
}

func TestSnapshot_UserSnapshotCanBeOpened(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 10)
		f := leader.raft.Snapshot()
		if err := f.Error(); err != nil {
			t.Fatal(err)
		}
		meta, rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		var data [][]byte
		if err := json.NewDecoder(rc).Decode(&data); err != nil {
			t.Fatal(err)
		}
		if len(data) != 10 || meta.Index < 11 {
			t.Fatalf("snapshot at index %d holds %d commands", meta.Index, len(data))
		}
		if err := leader.raft.Snapshot().Error(); !errors.Is(err, ErrNothingNewToSnapshot) {
			t.Fatalf("a second snapshot with nothing new: %v, want ErrNothingNewToSnapshot", err)
		}
	})
}

func TestRestore_UserSnapshotReachesEveryNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "before", 20)
		c.waitForSameFSMs(20)

		var buf bytes.Buffer
		json.NewEncoder(&buf).Encode([][]byte{[]byte("restored-1"), []byte("restored-2")})
		meta := &SnapshotMeta{Version: 1, Index: 5, Term: 1, Size: int64(buf.Len())}
		if err := leader.raft.Restore(meta, &buf, 0); err != nil {
			t.Fatalf("Restore: %v", err)
		}
		c.waitFor(5*time.Second, "every FSM to hold the restored state", func() bool {
			for _, n := range c.running() {
				cmds := n.fsm.commands()
				if len(cmds) != 2 || string(cmds[0]) != "restored-1" {
					return false
				}
			}
			return true
		})
		applyAll(t, leader, "after", 3)
		c.waitForSameFSMs(5)
	})
}

func TestSnapshot_CorruptSnapshotIsSkippedForAnOlderGoodOne(t *testing.T) {
	for _, damage := range []string{"bad crc", "truncated state", "missing meta", "garbled meta"} {
		t.Run(damage, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dirs := make(map[ServerID]string)
				c := newTestCluster(t, 1, clusterOpts{
					conf: func(c *Config) { c.SnapshotThreshold, c.TrailingLogs = 1<<30, 1<<30 },
					snaps: func(id ServerID) SnapshotStore {
						dirs[id] = t.TempDir()
						s, err := NewFileSnapshotStoreWithLogger(dirs[id], 3, testLogger(t, "snapshots"))
						if err != nil {
							t.Fatal(err)
						}
						return s
					},
				})
				defer c.shutdown()
				node := c.waitForLeader()
				applyAll(t, node, "a", 10)
				if err := node.raft.Snapshot().Error(); err != nil {
					t.Fatal(err)
				}
				applyAll(t, node, "b", 10)
				if err := node.raft.Snapshot().Error(); err != nil {
					t.Fatal(err)
				}
				c.stop(node)
				snaps, err := node.snaps.List()
				if err != nil || len(snaps) != 2 {
					t.Fatalf("List: %d snapshots, %v", len(snaps), err)
				}
				newest := filepath.Join(dirs[node.id], "snapshots", snaps[0].ID)
				switch damage {
				case "bad crc":
					flipByte(t, filepath.Join(newest, "state.bin"))
				case "truncated state":
					if err := os.Truncate(filepath.Join(newest, "state.bin"), 3); err != nil {
						t.Fatal(err)
					}
				case "missing meta":
					os.Remove(filepath.Join(newest, "meta.json"))
				case "garbled meta":
					os.WriteFile(filepath.Join(newest, "meta.json"), []byte("{not json"), 0o644)
				}
				// A fresh store sees the damage; the node restores the older
				// snapshot and replays its log after it.
				fresh, err := NewFileSnapshotStoreWithLogger(dirs[node.id], 3, testLogger(t, "snapshots"))
				if err != nil {
					t.Fatal(err)
				}
				node.snaps = fresh
				c.start(node)
				if got := node.raft.AppliedIndex(); got != snaps[1].Index {
					t.Fatalf("restored applied index %d, want the older snapshot's %d", got, snaps[1].Index)
				}
				c.waitForLeader()
				c.waitForSameFSMs(20)
				if _, _, err := fresh.Open(snaps[0].ID); err == nil {
					t.Fatal("opening the damaged snapshot succeeded")
				}
			})
		})
	}
}

func flipByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// slowSnapshots delays every snapshot read, so that an install takes long.
type slowSnapshots struct {
	SnapshotStore
	delay time.Duration
}

func (s slowSnapshots) Open(id string) (*SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := s.SnapshotStore.Open(id)
	if err != nil {
		return nil, nil, err
	}
	time.Sleep(s.delay)
	return meta, rc, nil
}

// installCounter counts the snapshots a node installed, from its log.
type installCounter struct {
	n atomic.Int64
	w io.Writer
}

func (c *installCounter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("installed remote snapshot")) {
		c.n.Add(1)
	}
	return c.w.Write(p)
}

func TestSnapshot_SlowInstallDoesNotLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		installs := make(map[ServerID]*installCounter)
		c := newTestCluster(t, 3, clusterOpts{
			conf: func(conf *Config) {
				snapshotConf(30, 5)(conf)
				ic := &installCounter{w: testLogWriter{t}}
				installs[conf.LocalID] = ic
				conf.Logger = hclog.New(&hclog.LoggerOptions{Name: string(conf.LocalID), Level: hclog.Info, Output: ic})
			},
			snaps: func(id ServerID) SnapshotStore {
				// Sending a snapshot takes long compared to snapshotting.
				return slowSnapshots{SnapshotStore: NewInmemSnapshotStore(), delay: 200 * time.Millisecond}
			},
		})
		defer c.shutdown()
		leader := c.waitForLeader()
		var lagging *testNode
		for _, n := range c.nodes {
			if n != leader {
				lagging = n
				break
			}
		}
		c.partition(lagging)
		applyAll(t, leader, "x", 300)
		// The lagging follower's next entries are gone from the leader's log.
		c.waitFor(5*time.Second, "the leader to compact", func() bool { return firstIndex(t, leader) > 10 })
		c.heal()
		// While it installs, the leader keeps applying and snapshotting.
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; i < 300; i++ {
				if err := leader.raft.Apply([]byte(fmt.Sprintf("y-%d", i)), 0).Error(); err != nil {
					t.Errorf("apply: %v", err)
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
		<-done
		c.waitForSameFSMs(600)
		// The leader kept the entries after the snapshot being sent, so one
		// install sufficed; without that, the follower would have chased
		// snapshot after snapshot while the leader compacted behind it.
		if n := installs[lagging.id].n.Load(); n != 1 {
			t.Fatalf("the lagging follower installed %d snapshots, want 1", n)
		}
	})
}
