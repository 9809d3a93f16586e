// Package ours runs QuorumKit Raft clusters for the side-by-side
// benchmark, on raftboltdb or the InmemStore (and on the wal store once
// it exists: see stores.go).
package ours

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	qraft "github.com/quorumkit/raft"
	"github.com/quorumkit/raft/interop/internal/sidebyside"
)

// Library is QuorumKit Raft (this repository) as a sidebyside.Library.
type Library struct{}

// Name implements sidebyside.Library.
func (Library) Name() string { return "ours" }

// StoreLabel implements sidebyside.Library.
func (Library) StoreLabel(kind string) (string, bool) {
	k, ok := storeKinds[kind]
	return k.label, ok
}

// Start implements sidebyside.Library.
func (Library) Start(spec sidebyside.ClusterSpec) (sidebyside.Cluster, error) {
	kind, ok := storeKinds[spec.Store]
	if !ok {
		return nil, fmt.Errorf("ours: no store %q", spec.Store)
	}
	c := &cluster{spec: spec, kind: kind}
	var conf qraft.Configuration
	for i := 0; i < spec.Nodes; i++ {
		var n *node
		var err error
		sidebyside.Labelled(fmt.Sprintf("n%d", i+1), func() { n, err = c.newNode() })
		if err != nil {
			c.Close()
			return nil, err
		}
		conf.Servers = append(conf.Servers, qraft.Server{ID: n.id, Address: n.trans.LocalAddr()})
	}
	for _, n := range c.nodes {
		if err := n.start(&conf, spec.Leases); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// logger is silent unless SIDEBYSIDE_LOG is set in the environment,
// which sends the libraries' log lines to stderr for debugging a run.
func logger(name string) hclog.Logger {
	if os.Getenv("SIDEBYSIDE_LOG") == "" {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Name: "ours-" + name, Output: os.Stderr, Level: hclog.Debug})
}

type cluster struct {
	spec  sidebyside.ClusterSpec
	kind  storeKind
	mu    sync.Mutex
	nodes []*node
}

func (c *cluster) Nodes() []sidebyside.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]sidebyside.Node, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n
	}
	return out
}

func (c *cluster) AddNode() (sidebyside.Node, error) {
	var n *node
	var err error
	sidebyside.Labelled(fmt.Sprintf("n%d", len(c.Nodes())+1), func() { n, err = c.newNode() })
	if err != nil {
		return nil, err
	}
	if err := n.start(nil, c.spec.Leases); err != nil {
		return nil, err
	}
	return n, nil
}

// Close stops every node, crashed ones included, and closes their
// transports and stores.
func (c *cluster) Close() error {
	c.mu.Lock()
	nodes := c.nodes
	c.mu.Unlock()
	var errs []error
	for _, n := range nodes {
		errs = append(errs, n.close())
	}
	return errors.Join(errs...)
}

// newNode opens a node's transport and stores and records it; start
// starts its Raft.
func (c *cluster) newNode() (*node, error) {
	c.mu.Lock()
	id := qraft.ServerID(fmt.Sprintf("n%d", len(c.nodes)+1))
	n := &node{id: id, machine: sidebyside.NewMachine()}
	c.nodes = append(c.nodes, n) // Close cleans up whatever opened
	c.mu.Unlock()

	dir := filepath.Join(c.spec.Dir, string(id))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	link, err := sidebyside.Listen()
	if err != nil {
		return nil, err
	}
	n.link = link
	n.trans = qraft.NewNetworkTransportWithConfig(&qraft.NetworkTransportConfig{
		Stream:  streamLayer{link},
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  logger(string(id) + "-net"),
	})
	s, err := c.kind.open(dir)
	if err != nil {
		return nil, err
	}
	n.closeStores = s.close
	n.log, n.stable = s.log, s.stable
	if c.kind.disk {
		cache, err := qraft.NewLogCache(512, n.log)
		if err != nil {
			return nil, err
		}
		n.log = cache
	}
	if c.spec.Crashable {
		n.gate = sidebyside.NewGate()
		n.log = gatedLog{gate: n.gate, s: n.log}
		n.stable = gatedStable{gate: n.gate, s: n.stable}
	}
	n.snaps, err = qraft.NewFileSnapshotStoreWithLogger(filepath.Join(dir, "snapshots"), 2, hclog.NewNullLogger())
	if err != nil {
		return nil, err
	}
	return n, nil
}

type node struct {
	id          qraft.ServerID
	machine     *sidebyside.Machine
	link        *sidebyside.Link
	trans       *qraft.NetworkTransport
	log         qraft.LogStore
	stable      qraft.StableStore
	snaps       qraft.SnapshotStore
	gate        *sidebyside.Gate // nil unless the cluster is crashable
	closeStores func() error
	raft        *qraft.Raft

	closeOnce sync.Once
	closeErr  error
}

// start runs Raft on the node, bootstrapping it with conf if not nil,
// configured for lease reads if leases is set. Its goroutines carry the
// node's profiler label (see sidebyside.Labelled).
func (n *node) start(conf *qraft.Configuration, leases bool) (err error) {
	sidebyside.Labelled(string(n.id), func() { err = n.startLabelled(conf, leases) })
	return err
}

func (n *node) startLabelled(conf *qraft.Configuration, leases bool) error {
	cfg := qraft.DefaultConfig()
	cfg.LocalID = n.id
	cfg.Logger = logger(string(n.id))
	// The graceful failover mode measures the hand-off raftkv uses; a
	// crash never reaches Shutdown, so it is unaffected.
	cfg.LeadershipTransferOnShutdown = true
	if leases {
		configureLeases(cfg)
	}
	if conf != nil {
		if err := qraft.BootstrapCluster(cfg, n.log, n.stable, n.snaps, n.trans, *conf); err != nil {
			return fmt.Errorf("bootstrapping %s: %w", n.id, err)
		}
	}
	r, err := qraft.NewRaft(cfg, fsm{n.machine}, n.log, n.stable, n.snaps, n.trans)
	if err != nil {
		return fmt.Errorf("starting %s: %w", n.id, err)
	}
	n.raft = r
	return nil
}

func (n *node) ID() string                   { return string(n.id) }
func (n *node) Addr() string                 { return string(n.trans.LocalAddr()) }
func (n *node) LeaderCh() <-chan bool        { return n.raft.LeaderCh() }
func (n *node) IsLeader() bool               { return n.raft.State() == qraft.Leader }
func (n *node) Machine() *sidebyside.Machine { return n.machine }
func (n *node) Snapshot() error              { return n.raft.Snapshot().Error() }
func (n *node) Shutdown() error              { return n.raft.Shutdown().Error() }
func (n *node) Apply(cmd []byte, timeout time.Duration) error {
	return n.raft.Apply(cmd, timeout).Error()
}

func (n *node) AddVoter(other sidebyside.Node, timeout time.Duration) error {
	return n.raft.AddVoter(qraft.ServerID(other.ID()), qraft.ServerAddress(other.Addr()), 0, timeout).Error()
}

func (n *node) Crash() {
	n.link.Sever()
	n.gate.Stop()
}

// close undoes whatever the node opened, in reverse: a crashed node's
// stores are let through first, so that its Raft can stop.
func (n *node) close() error {
	n.closeOnce.Do(func() {
		var errs []error
		n.gate.Release()
		if n.raft != nil {
			errs = append(errs, n.raft.Shutdown().Error())
		}
		if n.trans != nil {
			errs = append(errs, n.trans.Close())
		} else if n.link != nil {
			errs = append(errs, n.link.Close())
		}
		if n.closeStores != nil {
			errs = append(errs, n.closeStores())
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}
