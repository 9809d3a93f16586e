// Package sidebyside measures hashicorp/raft and QuorumKit Raft with one
// workload driver: the same clusters (three nodes in this process, TCP on
// 127.0.0.1, DefaultConfig, a LogCache of 512 over the disk store, a
// FileSnapshotStore), the same commands and the same clocks, run in
// alternation so that both libraries see the same machine. Each library
// is wired in its own package (reference, ours) behind the interfaces of
// this file; the modes (throughput.go, failover.go, snapshot.go) and the
// output (output.go) know nothing of either library.
package sidebyside

import (
	"errors"
	"time"
)

// ReadWay is how a node makes one read linearizable (see reads.go for
// what the reads mode measures with each).
type ReadWay string

// The ways of reading.
const (
	// ReadLog applies a get command through the log and answers what the
	// leader's FSM returned for it.
	ReadLog ReadWay = "log"
	// ReadVerify calls VerifyLeader, then reads the node's machine
	// directly.
	ReadVerify ReadWay = "verify"
	// ReadVerifyBarrier calls VerifyLeader, then Barrier, then reads the
	// node's machine directly.
	ReadVerifyBarrier ReadWay = "verify-barrier"
	// ReadIndex calls ReadIndex on the node, leader or follower, then
	// reads the node's machine directly.
	ReadIndex ReadWay = "readindex"
	// ReadLease calls ReadLease on the node, then reads the node's machine
	// directly.
	ReadLease ReadWay = "lease"
)

// ErrUnsupported is wrapped by the errors that say a library has no way
// of making a read.
var ErrUnsupported = errors.New("not supported")

// ErrNotLeader is what a node's Read answers, wrapped, when the library
// answered its own ErrNotLeader.
var ErrNotLeader = errors.New("not the leader")

// Library starts clusters of one Raft implementation.
type Library interface {
	// Name is how the output names the library: "reference" or "ours".
	Name() string
	// StoreLabel describes the library's store of the given kind ("bolt",
	// "wal", "mem"), e.g. "raft-boltdb v2.3.0"; ok is false when the
	// library has no store of that kind (yet).
	StoreLabel(kind string) (label string, ok bool)
	// Start starts and bootstraps a cluster as spec says. It returns once
	// every node runs; electing a leader is left to the caller.
	Start(spec ClusterSpec) (Cluster, error)
	// ReadSupport says, without starting anything, whether the library
	// can read the given way: nil, or an error wrapping ErrUnsupported
	// that says why not.
	ReadSupport(way ReadWay) error
}

// ClusterSpec says what cluster to start.
type ClusterSpec struct {
	// Nodes is how many voters to bootstrap.
	Nodes int
	// Store is the kind of log and stable store ("bolt", "wal", "mem").
	Store string
	// Dir is an empty directory that the cluster may fill; the caller
	// removes it after Close.
	Dir string
	// Crashable wraps every node's transport and stores so that Crash can
	// stop them. Modes other than the crash failover leave it off, so that
	// they measure the stores as a user would run them.
	Crashable bool
	// Leases configures every node for lease reads (ReadLease), which
	// other modes leave off: the setting delays votes after a start.
	Leases bool
}

// Cluster is a running cluster of one library.
type Cluster interface {
	// Nodes are the cluster's nodes, those added by AddNode included.
	Nodes() []Node
	// AddNode starts a node on fresh, empty stores that is not a member of
	// the configuration yet; a leader's AddVoter makes it one.
	AddNode() (Node, error)
	// Close shuts every node down (crashed ones too), closes their
	// transports and stores, and returns once all of it is done.
	Close() error
}

// Node is one server of a cluster.
type Node interface {
	// ID is the node's server ID; Addr is its transport's address.
	ID() string
	Addr() string
	// Apply submits cmd and waits for it to be committed and applied.
	Apply(cmd []byte, timeout time.Duration) error
	// LeaderCh is the library's LeaderCh: true when the node becomes
	// leader, false when it stops being one.
	LeaderCh() <-chan bool
	// IsLeader reports whether the node is leader now.
	IsLeader() bool
	// AddVoter asks this node (the leader) to add other as a voter and
	// waits for the configuration change to commit.
	AddVoter(other Node, timeout time.Duration) error
	// Snapshot takes a user snapshot and waits for it.
	Snapshot() error
	// Machine is the node's state machine.
	Machine() *Machine
	// Shutdown is the library's Shutdown, waited for: a graceful stop.
	Shutdown() error
	// Read reads register key of the node's machine the way given and
	// returns the value it observed: a linearizable read once it answers
	// nil. A library's ErrNotLeader comes back wrapping ErrNotLeader; a
	// way the library lacks, wrapping ErrUnsupported.
	Read(way ReadWay, key uint32, timeout time.Duration) (uint64, error)
	// Crash cuts the node off without a goodbye: its connections drop,
	// new ones are refused, and its stores stop answering. The library
	// keeps running unaware until Close. Only on a Crashable cluster.
	Crash()
}
