package raft

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
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
		// With nothing applied since, the reference takes another
		// snapshot at the same index; so do we.
		again := leader.raft.Snapshot()
		if err := again.Error(); err != nil {
			t.Fatalf("a second snapshot with nothing new: %v, want a snapshot", err)
		}
		meta2, rc2, err := again.Open()
		if err != nil {
			t.Fatal(err)
		}
		rc2.Close()
		if meta2.Index != meta.Index {
			t.Fatalf("second snapshot at %d; want one at %d", meta2.Index, meta.Index)
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

// gatedSnapshots is an InmemSnapshotStore that a test can hold up, to
// order the writes of two snapshots into it. The sink of the snapshot at
// index hold waits in its first Close until release is closed (closing
// says it got there; held is closed once that Close has returned). The
// sink of the snapshot at index after waits in its first Close until held
// is closed. The first Open after openAfter is set waits until that channel
// is closed. opens counts every Open. Once a test ends, nothing waits.
type gatedSnapshots struct {
	SnapshotStore
	opens atomic.Int64

	hold, after atomic.Uint64
	openAfter   atomic.Pointer[chan struct{}]
	closing     chan struct{}
	release     chan struct{}
	releaseOnce sync.Once
	held        chan struct{}
	ended       chan struct{}
}

func newGatedSnapshots(ended chan struct{}) *gatedSnapshots {
	return &gatedSnapshots{
		SnapshotStore: NewInmemSnapshotStore(),
		closing:       make(chan struct{}),
		release:       make(chan struct{}),
		held:          make(chan struct{}),
		ended:         ended,
	}
}

// letGo lets the held Close go on.
func (g *gatedSnapshots) letGo() { g.releaseOnce.Do(func() { close(g.release) }) }

// wait waits until ch is closed or the test has ended.
func (g *gatedSnapshots) wait(ch chan struct{}) {
	select {
	case <-ch:
	case <-g.ended:
	}
}

func (g *gatedSnapshots) Create(version SnapshotVersion, index, term uint64, cfg Configuration, cfgIndex uint64, trans Transport) (SnapshotSink, error) {
	sink, err := g.SnapshotStore.Create(version, index, term, cfg, cfgIndex, trans)
	if err != nil {
		return nil, err
	}
	return &gatedSink{SnapshotSink: sink, g: g, index: index}, nil
}

func (g *gatedSnapshots) Open(id string) (*SnapshotMeta, io.ReadCloser, error) {
	g.opens.Add(1)
	if ch := g.openAfter.Swap(nil); ch != nil {
		g.wait(*ch)
	}
	return g.SnapshotStore.Open(id)
}

type gatedSink struct {
	SnapshotSink
	g     *gatedSnapshots
	index uint64
	once  sync.Once
}

// Close holds up the first call only: FSMSnapshot.Persist closes the sink,
// and raft closes it again, as the reference does.
func (s *gatedSink) Close() error {
	var err error
	first := false
	s.once.Do(func() {
		first = true
		switch s.index {
		case s.g.hold.Load():
			close(s.g.closing)
			s.g.wait(s.g.release)
			err = s.SnapshotSink.Close()
			close(s.g.held)
		case s.g.after.Load():
			s.g.wait(s.g.held)
			err = s.SnapshotSink.Close()
		default:
			err = s.SnapshotSink.Close()
		}
	})
	if first {
		return err
	}
	return s.SnapshotSink.Close()
}

// gatedCluster starts three nodes on gated stores that never snapshot by
// themselves, keep 5 entries behind a snapshot, and have applied 10
// commands. The cluster shuts down when the test ends, after the gates
// stop holding anything up.
func gatedCluster(t *testing.T) (*testCluster, map[ServerID]*gatedSnapshots, *testNode, *testNode) {
	t.Helper()
	gates := make(map[ServerID]*gatedSnapshots)
	ended := make(chan struct{})
	c := newTestCluster(t, 3, clusterOpts{
		conf: snapshotConf(1<<30, 5),
		snaps: func(id ServerID) SnapshotStore {
			gates[id] = newGatedSnapshots(ended)
			return gates[id]
		},
	})
	t.Cleanup(c.shutdown)
	t.Cleanup(func() { close(ended) })
	leader := c.waitForLeader()
	applyAll(t, leader, "x", 10)
	c.waitForSameFSMs(10)
	var follower *testNode
	for _, n := range c.nodes {
		if n != leader {
			follower = n
			break
		}
	}
	return c, gates, leader, follower
}

// laggingBehindCompaction cuts follower off while leader applies 50
// commands and snapshots, so that the follower can only catch up from that
// snapshot, whose index it returns; then it heals the cluster.
func laggingBehindCompaction(t *testing.T, c *testCluster, leader, follower *testNode) uint64 {
	t.Helper()
	c.partition(follower)
	applyAll(t, leader, "y", 50)
	if err := leader.raft.Snapshot().Error(); err != nil {
		t.Fatalf("leader snapshot: %v", err)
	}
	last, _ := follower.logs.LastIndex()
	c.waitFor(5*time.Second, "the leader to compact its log past the follower's", func() bool {
		return firstIndex(t, leader) > last+1
	})
	snaps, err := leader.snaps.List()
	if err != nil || len(snaps) != 1 {
		t.Fatalf("the leader's store lists %v, %v", snaps, err)
	}
	c.heal()
	return snaps[0].Index
}

// checkNewestSnapshotAdopted checks that node's store holds, as its newest
// snapshot, the one the node has adopted.
func checkNewestSnapshotAdopted(t *testing.T, node *testNode) {
	t.Helper()
	if node.raft.State() == Shutdown {
		t.Fatalf("%s shut down", node.id)
	}
	snaps, err := node.snaps.List()
	if err != nil || len(snaps) == 0 {
		t.Fatalf("%s's store lists %v, %v", node.id, snaps, err)
	}
	if got, want := snaps[0].Index, node.raft.Stats()["last_snapshot_index"]; fmt.Sprint(got) != want {
		t.Fatalf("%s's store holds a snapshot at index %d, but its last snapshot is at %s", node.id, got, want)
	}
}

// A snapshot a node takes of its own FSM, and writes into the store while
// a newer snapshot is written there (one installed from the leader, or a
// user's Restore on the leader), must not end up in the store in place of
// the newer one. An InmemSnapshotStore keeps the snapshot closed last, so
// the older one, closed last, displaced the newer; the FSM goroutine then
// failed to open the snapshot the node had adopted, and the node shut
// down, its log already discarded around the new snapshot. (Found by the
// interop mixed cluster tests: a follower's periodic snapshot, taken just
// before an InstallSnapshot arrived, was closed just after it.) The gated
// store orders the two writes as the subtest says, and holds the FSM's
// Open of the newer snapshot until the older one is done, as a busy FSM
// goroutine did.
// snapshotHeldInClose starts a snapshot of node's FSM and returns once the
// gate holds it in Close, persisted but not yet in the store; the FSM's
// next Open waits for the gate too. The snapshot's answer arrives on the
// returned channel once the gate lets go.
func snapshotHeldInClose(gate *gatedSnapshots, node *testNode) <-chan error {
	gate.hold.Store(node.raft.AppliedIndex())
	gate.openAfter.Store(&gate.held)
	done := make(chan error, 1)
	go func() { done <- node.raft.Snapshot().Error() }()
	<-gate.closing
	return done
}

func TestSnapshot_LocalSnapshotClosedLateDoesNotDisplaceANewerOne(t *testing.T) {
	t.Run("install arrives while the local snapshot is being written", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, gates, leader, follower := gatedCluster(t)

			// The follower snapshots its FSM; the snapshot is persisted but
			// not yet closed.
			gate := gates[follower.id]
			localDone := snapshotHeldInClose(gate, follower)

			// Meanwhile it falls behind the leader's compacted log.
			laggingBehindCompaction(t, c, leader, follower)
			c.waitFor(10*time.Second, "the leader to open its snapshot for the follower", func() bool {
				return gates[leader.id].opens.Load() > 0
			})
			// Everything the install can do before the local snapshot is
			// closed, it has done.
			synctest.Wait()
			gate.letGo()
			if err := <-localDone; err != nil {
				t.Fatalf("the follower's own snapshot: %v", err)
			}
			c.waitForSameFSMs(60)
			checkNewestSnapshotAdopted(t, follower)
		})
	})

	t.Run("local snapshot taken before an install is written after it", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, gates, leader, follower := gatedCluster(t)

			// The install is held in Close, with the follower's FSM still
			// at the 10 commands it applied before it was cut off.
			gate := gates[follower.id]
			gate.hold.Store(^uint64(0)) // until the install's index is known
			installing := laggingBehindCompaction(t, c, leader, follower)
			gate.hold.Store(installing)
			<-gate.closing

			// The follower snapshots its FSM now, but writes the snapshot
			// only after the install's.
			gate.after.Store(follower.raft.AppliedIndex())
			localDone := make(chan error, 1)
			go func() { localDone <- follower.raft.Snapshot().Error() }()
			synctest.Wait()
			restoring := make(chan struct{})
			gate.openAfter.Store(&restoring)
			gate.letGo()
			if err := <-localDone; err != nil && !errors.Is(err, ErrNothingNewToSnapshot) {
				t.Fatalf("the follower's own snapshot: %v", err)
			}
			close(restoring)
			c.waitForSameFSMs(60)
			checkNewestSnapshotAdopted(t, follower)
		})
	})

	t.Run("user restore while the local snapshot is being written", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, gates, leader, _ := gatedCluster(t)

			// The leader snapshots its FSM; the snapshot is persisted but
			// not yet closed.
			gate := gates[leader.id]
			localDone := snapshotHeldInClose(gate, leader)

			// Meanwhile a user restores a snapshot of their own.
			var buf bytes.Buffer
			json.NewEncoder(&buf).Encode([][]byte{[]byte("restored-1"), []byte("restored-2")})
			meta := &SnapshotMeta{Version: 1, Index: 5, Term: 1, Size: int64(buf.Len())}
			restoreDone := make(chan error, 1)
			go func() { restoreDone <- leader.raft.Restore(meta, &buf, 0) }()
			synctest.Wait()
			gate.letGo()
			if err := <-localDone; err != nil {
				t.Fatalf("the leader's own snapshot: %v", err)
			}
			if err := <-restoreDone; err != nil {
				t.Fatalf("Restore: %v", err)
			}
			c.waitFor(5*time.Second, "every FSM to hold the restored state", func() bool {
				for _, n := range c.running() {
					if cmds := n.fsm.commands(); len(cmds) != 2 || string(cmds[0]) != "restored-1" {
						return false
					}
				}
				return true
			})
			applyAll(t, leader, "after", 3)
			c.waitForSameFSMs(5)
			checkNewestSnapshotAdopted(t, leader)
		})
	})
}

// An InstallSnapshot of a snapshot past the follower's commit index is
// answered once the snapshot is stored: the follower cannot tell yet
// whether the cluster committed it (a user restore may not have been), so
// its FSM restores it only once the leader's next AppendEntries shows it
// committed (unconfirmed_snapshot.go), and the leader must hear of the
// install to send that. Entries after the snapshot may be stored while the
// FSM restores it, but none is applied before the restore ends. The
// follower's FSM is held in its Open of the installed snapshot while the
// leader commits more commands.
func TestSnapshot_InstallRestoresOnceConfirmed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, gates, leader, follower := gatedCluster(t)
		gate := gates[follower.id]
		restoring := make(chan struct{})
		gate.openAfter.Store(&restoring)
		installing := laggingBehindCompaction(t, c, leader, follower)
		c.waitFor(10*time.Second, "the follower's FSM to open the installed snapshot", func() bool {
			return gate.opens.Load() > 0
		})
		applyAll(t, leader, "z", 5)
		synctest.Wait()
		if applied := follower.raft.AppliedIndex(); applied >= installing {
			t.Fatalf("the follower's applied index is %d while its FSM still restores the snapshot at %d", applied, installing)
		}
		close(restoring)
		c.waitForSameFSMs(65)
		if last, _ := follower.logs.LastIndex(); last <= installing {
			t.Fatalf("the follower's log ends at %d, not past the snapshot at %d", last, installing)
		}
	})
}
