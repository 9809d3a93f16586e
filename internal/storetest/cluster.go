// Package storetest holds the test scenarios that this module's log store
// packages (raftboltdb/, wal/) run against their own stores. Only their
// tests import it.
package storetest

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quorumkit/raft"
)

// Store is what a cluster node runs on: its log and stable store, which
// Close releases.
type Store interface {
	raft.LogStore
	raft.StableStore
	Close() error
}

// Opener opens the store kept in dir, a directory of the node's own that
// outlives it. bootstrap is true for the opening that bootstraps the
// cluster and false each time the node starts.
type Opener func(dir string, bootstrap bool) (Store, error)

// ClusterRestart describes a run of RunClusterRestart.
type ClusterRestart struct {
	// Prefix names the nodes: Prefix0, Prefix1, Prefix2.
	Prefix string
	// Open opens a node's store.
	Open Opener
	// RestartLeader stops the leader and restarts it on its store while
	// the clients write, before the whole cluster is stopped.
	RestartLeader bool
}

// RunClusterRestart runs a 3-node cluster on stores from s.Open, in fake
// time, while four clients write through the leader; with s.RestartLeader
// the leader is stopped and restarted on its store meanwhile. Then every
// node is stopped with writes in flight and the whole cluster restarted on
// the same stores. Every write that was acknowledged must be applied once,
// in the same order on every node.
func RunClusterRestart(t *testing.T, s ClusterRestart) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		changed := make(chan struct{}, 1)
		var nodes []*node
		var cfg raft.Configuration
		for i := 0; i < 3; i++ {
			id := raft.ServerID(fmt.Sprintf("%s%d", s.Prefix, i))
			n := &node{id: id, dir: filepath.Join(dir, string(id)), open: s.Open, snaps: raft.NewInmemSnapshotStore()}
			if err := os.Mkdir(n.dir, 0o755); err != nil {
				t.Fatal(err)
			}
			nodes = append(nodes, n)
			cfg.Servers = append(cfg.Servers, raft.Server{ID: id, Address: raft.ServerAddress(id)})
		}
		for _, n := range nodes {
			store, err := s.Open(n.dir, true)
			if err != nil {
				t.Fatal(err)
			}
			conf := raft.DefaultConfig()
			conf.LocalID = n.id
			_, trans := raft.NewInmemTransport(raft.ServerAddress(n.id))
			if err := raft.BootstrapCluster(conf, store, store, n.snaps, trans, cfg); err != nil {
				t.Fatal(err)
			}
			store.Close()
		}
		for _, n := range nodes {
			n.start(t, nodes, changed)
		}

		// Clients write until the cluster is stopped under them.
		var mu sync.Mutex
		var acked []string
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for c := 0; c < 4; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for seq := 0; ; seq++ {
					select {
					case <-stop:
						return
					default:
					}
					cmd := fmt.Sprintf("c%d-%d", c, seq)
					if l := leaderOf(nodes); l != nil {
						if r := l.current(); r != nil && r.Apply([]byte(cmd), 100*time.Millisecond).Error() == nil {
							mu.Lock()
							acked = append(acked, cmd)
							mu.Unlock()
						}
					}
					time.Sleep(time.Millisecond)
				}
			}()
		}
		if s.RestartLeader {
			time.Sleep(300 * time.Millisecond)
			l := leaderOf(nodes)
			if l == nil {
				t.Fatal("no leader")
			}
			l.stop(t)
			time.Sleep(300 * time.Millisecond)
			l.start(t, nodes, changed)
			time.Sleep(300 * time.Millisecond)
		} else {
			time.Sleep(500 * time.Millisecond)
		}
		// Stop every node, leader included, while writes are in flight.
		var sd sync.WaitGroup
		for _, n := range nodes {
			sd.Add(1)
			go func() { defer sd.Done(); n.stop(t) }()
		}
		sd.Wait()
		close(stop)
		wg.Wait()
		if len(acked) < 100 {
			t.Fatalf("only %d writes were acknowledged before the stop", len(acked))
		}

		for _, n := range nodes {
			n.start(t, nodes, changed)
		}
		waitFor := func(what string, cond func() bool) {
			t.Helper()
			deadline := time.After(10 * time.Second)
			for !cond() {
				select {
				case <-changed:
				case <-deadline:
					t.Fatalf("timed out waiting for %s", what)
				}
			}
		}
		var leader *raft.Raft
		waitFor("a leader after the restart", func() bool {
			if l := leaderOf(nodes); l != nil {
				leader = l.current()
				return true
			}
			return false
		})
		if err := leader.Barrier(0).Error(); err != nil {
			t.Fatal(err)
		}
		// One more write: when it is applied everywhere, so is everything
		// before it.
		if err := leader.Apply([]byte("marker"), 0).Error(); err != nil {
			t.Fatal(err)
		}
		waitFor("every node to apply the marker", func() bool {
			for _, n := range nodes {
				cmds := n.fsm.commands()
				if len(cmds) == 0 || cmds[len(cmds)-1] != "marker" {
					return false
				}
			}
			return true
		})
		ref := nodes[0].fsm.commands()
		seen := make(map[string]int)
		for _, cmd := range ref {
			seen[cmd]++
		}
		for _, cmd := range acked {
			if seen[cmd] != 1 {
				t.Errorf("acknowledged write %s is applied %d times after the restart", cmd, seen[cmd])
			}
		}
		for _, n := range nodes[1:] {
			if fmt.Sprint(n.fsm.commands()) != fmt.Sprint(ref) {
				t.Errorf("%s applied a different sequence than %s", n.id, nodes[0].id)
			}
		}
		what := "a whole-cluster restart"
		if s.RestartLeader {
			what = "a leader restart and " + what
		}
		t.Logf("%d acknowledged writes survived %s", len(acked), what)
		for _, n := range nodes {
			n.stop(t)
		}
	})
}

// node is a cluster member whose store outlives it.
type node struct {
	id    raft.ServerID
	dir   string
	open  Opener
	store Store
	snaps *raft.InmemSnapshotStore
	trans *raft.InmemTransport
	fsm   *cmdFSM

	mu sync.Mutex // guards r against the clients
	r  *raft.Raft
}

func (n *node) current() *raft.Raft {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.r
}

func (n *node) start(t *testing.T, peers []*node, changed chan struct{}) {
	t.Helper()
	store, err := n.open(n.dir, false)
	if err != nil {
		t.Fatalf("opening %s: %v", n.dir, err)
	}
	n.store = store
	_, n.trans = raft.NewInmemTransport(raft.ServerAddress(n.id))
	conf := raft.DefaultConfig()
	conf.LocalID = n.id
	conf.HeartbeatTimeout = 50 * time.Millisecond
	conf.ElectionTimeout = 50 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	conf.LogOutput = io.Discard
	n.fsm = &cmdFSM{changed: changed}
	r, err := raft.NewRaft(conf, n.fsm, store, store, n.snaps, n.trans)
	if err != nil {
		t.Fatalf("starting %s: %v", n.id, err)
	}
	r.RegisterObserver(raft.NewObserver(nil, false, func(*raft.Observation) bool { poke(changed); return false }))
	for _, p := range peers {
		if p != n && p.current() != nil {
			n.trans.Connect(p.trans.LocalAddr(), p.trans)
			p.trans.Connect(n.trans.LocalAddr(), n.trans)
		}
	}
	n.mu.Lock()
	n.r = r
	n.mu.Unlock()
}

func (n *node) stop(t *testing.T) {
	t.Helper()
	n.mu.Lock()
	r := n.r
	n.r = nil
	n.mu.Unlock()
	if r == nil {
		return
	}
	r.Shutdown().Error()
	if err := n.store.Close(); err != nil {
		t.Errorf("closing %s: %v", n.dir, err)
	}
}

// leaderOf returns a running node that believes it leads, or nil.
func leaderOf(nodes []*node) *node {
	for _, n := range nodes {
		if r := n.current(); r != nil && r.State() == raft.Leader {
			return n
		}
	}
	return nil
}

// cmdFSM records the commands it applies, in order, and pokes changed.
type cmdFSM struct {
	mu      sync.Mutex
	cmds    []string
	changed chan struct{}
}

func (f *cmdFSM) Apply(l *raft.Log) interface{} {
	f.mu.Lock()
	f.cmds = append(f.cmds, string(l.Data))
	f.mu.Unlock()
	poke(f.changed)
	return nil
}

func (f *cmdFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, fmt.Errorf("not used") }
func (f *cmdFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

func (f *cmdFSM) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cmds...)
}

// poke tells whoever waits on ch (capacity one) that something changed.
func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
