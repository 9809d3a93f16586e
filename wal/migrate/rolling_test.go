package migrate_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/quorumkit/raft"
	"github.com/quorumkit/raft/raftboltdb"
	"github.com/quorumkit/raft/wal"
	"github.com/quorumkit/raft/wal/migrate"
)

// seqFSM holds every command applied, in order; its snapshot is the whole
// sequence, one command a line, so a node that restored one holds the
// same history as one that applied every entry.
type seqFSM struct {
	mu      sync.Mutex
	cmds    []string
	last    uint64
	changed chan struct{}
}

func (f *seqFSM) Apply(l *raft.Log) interface{} {
	f.mu.Lock()
	f.cmds = append(f.cmds, string(l.Data))
	f.last = l.Index
	f.mu.Unlock()
	poke(f.changed)
	return nil
}

func (f *seqFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return seqSnapshot(slices.Clone(f.cmds)), nil
}

func (f *seqFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var cmds []string
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		cmds = append(cmds, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	f.cmds = cmds
	f.mu.Unlock()
	poke(f.changed)
	return nil
}

func (f *seqFSM) state() (cmds []string, last uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.cmds), f.last
}

type seqSnapshot []string

func (s seqSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := io.WriteString(sink, strings.Join(s, "\n")); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (seqSnapshot) Release() {}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// logStore is what both stores are: the log and the stable store.
type logStore interface {
	raft.LogStore
	raft.StableStore
	Close() error
}

// migNode is a server whose directory holds raft.db until it is migrated
// and wal/ after.
type migNode struct {
	id      raft.ServerID
	dir     string
	onWAL   bool
	changed chan struct{}

	mu    sync.Mutex // guards the fields below against the clients
	r     *raft.Raft
	store logStore
	snaps *raft.FileSnapshotStore
	trans *raft.InmemTransport
	fsm   *seqFSM
}

func (n *migNode) open(t *testing.T) logStore {
	t.Helper()
	if n.onWAL {
		w, err := wal.Open(filepath.Join(n.dir, "wal"), wal.WithSegmentSize(16<<10), wal.WithLogger(hclog.NewNullLogger()))
		if err != nil {
			t.Fatalf("%s: %v", n.id, err)
		}
		return w
	}
	s, err := raftboltdb.NewBoltStore(filepath.Join(n.dir, "raft.db"))
	if err != nil {
		t.Fatalf("%s: %v", n.id, err)
	}
	return s
}

func (n *migNode) config() *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = n.id
	c.HeartbeatTimeout = 50 * time.Millisecond
	c.ElectionTimeout = 50 * time.Millisecond
	c.LeaderLeaseTimeout = 50 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.SnapshotThreshold = 64
	c.TrailingLogs = 32
	c.SnapshotInterval = 100 * time.Millisecond
	c.LogOutput = io.Discard
	return c
}

// start runs a new incarnation of n on its directory, connected to the
// running peers, bootstrapping it first with boot if that is set.
func (n *migNode) start(t *testing.T, peers []*migNode, boot *raft.Configuration) {
	t.Helper()
	store := n.open(t)
	snaps, err := raft.NewFileSnapshotStore(n.dir, 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	_, trans := raft.NewInmemTransport(raft.ServerAddress(n.id))
	if boot != nil {
		if err := raft.BootstrapCluster(n.config(), store, store, snaps, trans, *boot); err != nil {
			t.Fatal(err)
		}
	}
	fsm := &seqFSM{changed: n.changed}
	r, err := raft.NewRaft(n.config(), fsm, store, store, snaps, trans)
	if err != nil {
		t.Fatalf("starting %s: %v", n.id, err)
	}
	r.RegisterObserver(raft.NewObserver(nil, false, func(*raft.Observation) bool { poke(n.changed); return false }))
	for _, p := range peers {
		if pt := p.transport(); p != n && pt != nil {
			trans.Connect(pt.LocalAddr(), pt)
			pt.Connect(trans.LocalAddr(), trans)
		}
	}
	n.mu.Lock()
	n.r, n.store, n.snaps, n.trans, n.fsm = r, store, snaps, trans, fsm
	n.mu.Unlock()
}

func (n *migNode) transport() *raft.InmemTransport {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.r == nil {
		return nil
	}
	return n.trans
}

func (n *migNode) raft() *raft.Raft {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.r
}

// stop shuts n down and closes its store.
func (n *migNode) stop(t *testing.T) {
	t.Helper()
	n.mu.Lock()
	r, store := n.r, n.store
	n.r, n.store = nil, nil
	n.mu.Unlock()
	if r == nil {
		return
	}
	if err := r.Shutdown().Error(); err != nil {
		t.Errorf("shutting down %s: %v", n.id, err)
	}
	if err := store.Close(); err != nil {
		t.Errorf("closing the store of %s: %v", n.id, err)
	}
}

// migrate copies n's stopped raftboltdb store into wal/ with the migrate
// helpers, as a user would, and moves raft.db aside.
func (n *migNode) migrate(t *testing.T) {
	t.Helper()
	src := n.open(t)
	walDir := filepath.Join(n.dir, "wal")
	if err := os.Mkdir(walDir, 0o755); err != nil {
		t.Fatal(err)
	}
	n.onWAL = true
	dst := n.open(t)
	ctx := context.Background()
	if err := migrate.CopyLogs(ctx, dst, src, 64<<10, nil); err != nil {
		t.Fatalf("copying the log of %s: %v", n.id, err)
	}
	if err := migrate.CopyStable(ctx, dst, src, nil, nil, nil); err != nil {
		t.Fatalf("copying the stable values of %s: %v", n.id, err)
	}
	for _, s := range []logStore{src, dst} {
		first, _ := s.FirstIndex()
		last, _ := s.LastIndex()
		term, _ := s.GetUint64([]byte("CurrentTerm"))
		t.Logf("%s %T: log [%d,%d], term %d", n.id, s, first, last, term)
	}
	srcFirst, _ := src.FirstIndex()
	srcLast, _ := src.LastIndex()
	dstFirst, _ := dst.FirstIndex()
	dstLast, _ := dst.LastIndex()
	if srcFirst != dstFirst || srcLast != dstLast {
		t.Fatalf("%s: the wal holds [%d,%d]; raftboltdb held [%d,%d]", n.id, dstFirst, dstLast, srcFirst, srcLast)
	}
	if err := errors.Join(src.Close(), dst.Close()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(n.dir, "raft.db"), filepath.Join(n.dir, "raft.db.migrated")); err != nil {
		t.Fatal(err)
	}
}

// TestRollingMigrationFromBoltStoreToWAL is our users' own migration: a
// three-node cluster on raftboltdb files, with snapshots and compacted
// logs, is converted one node at a time to wal while clients write. Each
// node is stopped, its raft.db copied into a new wal directory with
// CopyLogs and CopyStable, and started on the wal; it catches up, and the
// next one follows. At the end every acknowledged command is applied
// exactly once, in the same order on every node.
func TestRollingMigrationFromBoltStoreToWAL(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		changed := make(chan struct{}, 1)
		var nodes []*migNode
		var cfg raft.Configuration
		for i := 1; i <= 3; i++ {
			id := raft.ServerID(fmt.Sprintf("node%d", i))
			n := &migNode{id: id, dir: filepath.Join(dir, string(id)), changed: changed}
			if err := os.Mkdir(n.dir, 0o755); err != nil {
				t.Fatal(err)
			}
			nodes = append(nodes, n)
			cfg.Servers = append(cfg.Servers, raft.Server{ID: id, Address: raft.ServerAddress(id)})
		}
		for _, n := range nodes {
			n.start(t, nodes, &cfg)
		}
		stopClients := make(chan struct{})
		endClients := sync.OnceFunc(func() { close(stopClients) })
		var clients sync.WaitGroup
		defer func() {
			endClients()
			clients.Wait()
			for _, n := range nodes {
				n.stop(t)
			}
		}()

		// waitFor waits for cond, woken by any FSM or observer event,
		// within a minute of fake time.
		waitFor := func(what string, cond func() bool) {
			t.Helper()
			deadline := time.Now().Add(time.Minute)
			for !cond() {
				if time.Now().After(deadline) {
					t.Fatalf("timed out waiting until %s", what)
				}
				select {
				case <-changed:
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
		leader := func() *migNode {
			for _, n := range nodes {
				if r := n.raft(); r != nil && r.State() == raft.Leader {
					return n
				}
			}
			return nil
		}

		var mu sync.Mutex
		acked := map[string]uint64{} // command -> index
		var highest uint64
		for c := 0; c < 4; c++ {
			clients.Add(1)
			go func() {
				defer clients.Done()
				for seq := 0; ; seq++ {
					select {
					case <-stopClients:
						return
					default:
					}
					l := leader()
					var r *raft.Raft
					if l != nil {
						r = l.raft()
					}
					if r == nil {
						select {
						case <-stopClients:
							return
						case <-time.After(10 * time.Millisecond):
						}
						continue
					}
					cmd := fmt.Sprintf("c%d-%d", c, seq)
					f := r.Apply([]byte(cmd), 100*time.Millisecond)
					if f.Error() != nil {
						// No leader to take it, for now: try again after
						// a pause of fake time, so the bubble can idle.
						select {
						case <-stopClients:
							return
						case <-time.After(10 * time.Millisecond):
						}
						continue
					}
					mu.Lock()
					acked[cmd] = f.Index()
					highest = max(highest, f.Index())
					mu.Unlock()
					// A client's think time, in fake time: without it a
					// disk write is always in flight, the bubble never
					// idles, and its clock (snapshot interval, timeouts)
					// stands still.
					select {
					case <-stopClients:
						return
					case <-time.After(time.Millisecond):
					}
				}
			}()
		}
		ackedCount := func() (int, uint64) {
			mu.Lock()
			defer mu.Unlock()
			return len(acked), highest
		}

		for _, n := range nodes {
			before, _ := ackedCount()
			waitFor(fmt.Sprintf("%d more commands are acknowledged", 150), func() bool {
				got, _ := ackedCount()
				return got >= before+150
			})
			waitFor(fmt.Sprintf("%s has a snapshot and a compacted log", n.id), func() bool {
				n.mu.Lock()
				defer n.mu.Unlock()
				metas, err := n.snaps.List()
				first, err2 := n.store.FirstIndex()
				return err == nil && err2 == nil && len(metas) > 0 && first > 1
			})
			n.stop(t)
			n.migrate(t)
			n.start(t, nodes, nil)
			_, target := ackedCount()
			waitFor(fmt.Sprintf("%s on wal has applied index %d", n.id, target), func() bool {
				n.mu.Lock()
				fsm := n.fsm
				n.mu.Unlock()
				_, last := fsm.state()
				return last >= target
			})
		}
		before, _ := ackedCount()
		waitFor("100 more commands are acknowledged on wal", func() bool {
			got, _ := ackedCount()
			return got >= before+100
		})
		endClients()
		clients.Wait()

		var fence raft.ApplyFuture
		attempt := 0
		waitFor("a fence is committed", func() bool {
			if l := leader(); l != nil {
				if r := l.raft(); r != nil {
					attempt++
					fence = r.Apply(fmt.Appendf(nil, "fence-%d", attempt), time.Second)
					return fence.Error() == nil
				}
			}
			return false
		})
		var seqs [][]string
		for _, n := range nodes {
			waitFor(fmt.Sprintf("%s has applied the fence", n.id), func() bool {
				n.mu.Lock()
				fsm := n.fsm
				n.mu.Unlock()
				_, last := fsm.state()
				return last >= fence.Index()
			})
			if _, err := os.Stat(filepath.Join(n.dir, "raft.db")); err == nil {
				t.Errorf("%s still runs on raft.db", n.id)
			}
			n.mu.Lock()
			cmds, _ := n.fsm.state()
			n.mu.Unlock()
			seqs = append(seqs, cmds)
		}
		for i := 1; i < len(seqs); i++ {
			if !slices.Equal(seqs[0], seqs[i]) {
				t.Fatalf("%s and %s applied different commands (%d and %d)", nodes[0].id, nodes[i].id, len(seqs[0]), len(seqs[i]))
			}
		}
		seen := map[string]bool{}
		for _, cmd := range seqs[0] {
			if seen[cmd] {
				t.Fatalf("%q applied twice", cmd)
			}
			seen[cmd] = true
		}
		for cmd := range acked {
			if !seen[cmd] {
				t.Fatalf("acknowledged command %q was lost", cmd)
			}
		}
		t.Logf("%d commands acknowledged, %d applied on every node, up to index %d", len(acked), len(seqs[0]), fence.Index())
	})
}
