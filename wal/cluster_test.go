package wal

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
	pokeCh(f.changed)
	return nil
}

func (f *cmdFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, fmt.Errorf("not used") }
func (f *cmdFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

func (f *cmdFSM) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cmds...)
}

func pokeCh(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// walNode is a cluster member whose log and stable store is a WAL
// directory that outlives the node.
type walNode struct {
	id    raft.ServerID
	dir   string
	store *WAL
	snaps *raft.InmemSnapshotStore
	trans *raft.InmemTransport
	fsm   *cmdFSM

	mu sync.Mutex // guards r against the clients
	r  *raft.Raft
}

func (n *walNode) current() *raft.Raft {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.r
}

func (n *walNode) start(t *testing.T, peers []*walNode, changed chan struct{}) {
	t.Helper()
	store, err := Open(n.dir, WithSegmentSize(8192), WithLogger(quietLogger()))
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
	r.RegisterObserver(raft.NewObserver(nil, false, func(*raft.Observation) bool { pokeCh(changed); return false }))
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

func (n *walNode) stop(t *testing.T) {
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

func leaderOf(nodes []*walNode) *walNode {
	for _, n := range nodes {
		if r := n.current(); r != nil && r.State() == raft.Leader {
			return n
		}
	}
	return nil
}

// TestClusterOnWAL runs a 3-node cluster on WAL directories with small
// segments while clients write: the leader is stopped and restarted on
// its directory (in this process: Close releases the files), then every
// node is stopped with writes in flight and the cluster restarted. Every
// acknowledged write must be applied once, in the same order everywhere.
func TestClusterOnWAL(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		changed := make(chan struct{}, 1)
		var nodes []*walNode
		var cfg raft.Configuration
		for i := 0; i < 3; i++ {
			id := raft.ServerID(fmt.Sprintf("wal%d", i))
			n := &walNode{id: id, dir: filepath.Join(dir, string(id)), snaps: raft.NewInmemSnapshotStore()}
			if err := os.Mkdir(n.dir, 0o755); err != nil {
				t.Fatal(err)
			}
			nodes = append(nodes, n)
			cfg.Servers = append(cfg.Servers, raft.Server{ID: id, Address: raft.ServerAddress(id)})
		}
		for _, n := range nodes {
			store, err := Open(n.dir, WithLogger(quietLogger()))
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
		time.Sleep(300 * time.Millisecond)
		l := leaderOf(nodes)
		if l == nil {
			t.Fatal("no leader")
		}
		l.stop(t)
		time.Sleep(300 * time.Millisecond)
		l.start(t, nodes, changed)
		time.Sleep(300 * time.Millisecond)
		var sd sync.WaitGroup
		for _, n := range nodes {
			sd.Add(1)
			go func() { defer sd.Done(); n.stop(t) }()
		}
		sd.Wait()
		close(stop)
		wg.Wait()
		if len(acked) < 100 {
			t.Fatalf("only %d writes were acknowledged", len(acked))
		}

		for _, n := range nodes {
			n.start(t, nodes, changed)
		}
		var leader *raft.Raft
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
		waitFor("a leader after the restart", func() bool {
			if l := leaderOf(nodes); l != nil {
				leader = l.current()
				return true
			}
			return false
		})
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
		t.Logf("%d acknowledged writes survived a leader restart and a whole-cluster restart", len(acked))
		for _, n := range nodes {
			n.stop(t)
		}
	})
}
