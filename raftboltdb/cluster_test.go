package raftboltdb

import (
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quorumkit/raft"
	"go.etcd.io/bbolt"
)

// listFSM records every command it applies, in order, and pokes changed.
type listFSM struct {
	mu      sync.Mutex
	cmds    []string
	changed chan struct{}
}

func (f *listFSM) Apply(l *raft.Log) interface{} {
	f.mu.Lock()
	f.cmds = append(f.cmds, string(l.Data))
	f.mu.Unlock()
	poke(f.changed)
	return nil
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// waitUntil waits for cond, re-checking whenever changed is poked, for at
// most timeout of fake time.
func waitUntil(t *testing.T, changed chan struct{}, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (f *listFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, fmt.Errorf("not used") }
func (f *listFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

func (f *listFSM) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cmds...)
}

// boltNode is a cluster member whose log and stable store is a BoltStore
// file that outlives the node.
type boltNode struct {
	id    raft.ServerID
	path  string
	store *BoltStore
	snaps *raft.InmemSnapshotStore
	trans *raft.InmemTransport
	raft  *raft.Raft
	fsm   *listFSM
}

func (n *boltNode) start(t *testing.T, peers []*boltNode, changed chan struct{}) {
	t.Helper()
	store, err := New(Options{Path: n.path, BoltOptions: &bbolt.Options{Timeout: testTimeout}})
	if err != nil {
		t.Fatalf("opening %s: %v", n.path, err)
	}
	n.store = store
	_, n.trans = raft.NewInmemTransport(raft.ServerAddress(n.id))
	conf := raft.DefaultConfig()
	conf.LocalID = n.id
	conf.HeartbeatTimeout = 50 * time.Millisecond
	conf.ElectionTimeout = 50 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	conf.LogOutput = io.Discard
	n.fsm = &listFSM{changed: changed}
	r, err := raft.NewRaft(conf, n.fsm, store, store, n.snaps, n.trans)
	if err != nil {
		t.Fatalf("starting %s: %v", n.id, err)
	}
	r.RegisterObserver(raft.NewObserver(nil, false, func(*raft.Observation) bool { poke(changed); return false }))
	n.raft = r
	for _, p := range peers {
		if p != n && p.raft != nil {
			n.trans.Connect(p.trans.LocalAddr(), p.trans)
			p.trans.Connect(n.trans.LocalAddr(), n.trans)
		}
	}
}

func (n *boltNode) stop(t *testing.T) {
	t.Helper()
	n.raft.Shutdown().Error()
	n.raft = nil
	if err := n.store.Close(); err != nil {
		t.Fatalf("closing %s: %v", n.path, err)
	}
}

// TestCluster_RestartOnBoltStoresKeepsEveryAcknowledgedWrite runs a 3-node
// cluster on BoltStore files, stops every node while clients write, and
// restarts the whole cluster on the same files: every write that was
// acknowledged must be there, once, in the same order on every node.
func TestCluster_RestartOnBoltStoresKeepsEveryAcknowledgedWrite(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		changed := make(chan struct{}, 1)
		var nodes []*boltNode
		var cfg raft.Configuration
		for i := 0; i < 3; i++ {
			id := raft.ServerID(fmt.Sprintf("bolt%d", i))
			n := &boltNode{id: id, path: filepath.Join(dir, string(id)+".db"), snaps: raft.NewInmemSnapshotStore()}
			nodes = append(nodes, n)
			cfg.Servers = append(cfg.Servers, raft.Server{ID: id, Address: raft.ServerAddress(id)})
		}
		for _, n := range nodes {
			store, err := New(Options{Path: n.path})
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
					for _, n := range nodes {
						mu.Lock()
						r := n.raft
						mu.Unlock()
						if r != nil && r.State() == raft.Leader && r.Apply([]byte(cmd), 100*time.Millisecond).Error() == nil {
							mu.Lock()
							acked = append(acked, cmd)
							mu.Unlock()
							break
						}
					}
					time.Sleep(time.Millisecond)
				}
			}()
		}
		time.Sleep(500 * time.Millisecond)
		mu.Lock()
		rafts := []*raft.Raft{nodes[0].raft, nodes[1].raft, nodes[2].raft}
		mu.Unlock()
		// Stop every node, leader included, while writes are in flight.
		var sd sync.WaitGroup
		for _, r := range rafts {
			sd.Add(1)
			go func() { defer sd.Done(); r.Shutdown().Error() }()
		}
		sd.Wait()
		close(stop)
		wg.Wait()
		for _, n := range nodes {
			mu.Lock()
			n.raft = nil
			mu.Unlock()
			if err := n.store.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if len(acked) < 100 {
			t.Fatalf("only %d writes were acknowledged before the stop", len(acked))
		}

		for _, n := range nodes {
			n.start(t, nodes, changed)
		}
		var leader *raft.Raft
		waitUntil(t, changed, 10*time.Second, "a leader after the restart", func() bool {
			for _, n := range nodes {
				if n.raft.State() == raft.Leader {
					leader = n.raft
					return true
				}
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
		waitUntil(t, changed, 10*time.Second, "every node to apply the marker", func() bool {
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
			got := n.fsm.commands()
			if fmt.Sprint(got) != fmt.Sprint(ref) {
				t.Errorf("%s applied a different sequence than %s", n.id, nodes[0].id)
			}
		}
		t.Logf("%d acknowledged writes survived a whole-cluster restart", len(acked))
		for _, n := range nodes {
			n.stop(t)
		}
	})
}
