package interop

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	refbolt "github.com/hashicorp/raft-boltdb/v2"
	refwal "github.com/hashicorp/raft-wal"
	refmeta "github.com/hashicorp/raft-wal/metadb"
	qraft "github.com/quorumkit/raft"
	ourbolt "github.com/quorumkit/raft/raftboltdb"
	ourwal "github.com/quorumkit/raft/wal"
	"go.etcd.io/bbolt"
)

// One node of the harness that every mixed-cluster, cross-library and
// migration test uses: a server of either library over real TCP on
// loopback, which the tests can cut off from the network, stop and start
// again on the same port with the stores it had. Everything here is named
// mixed* so that it cannot collide with other interop tests.

// mixedLib names the library a node runs.
type mixedLib string

const (
	libOurs mixedLib = "ours"
	libRef  mixedLib = "reference"
)

// mixedTiming is the Raft timing every node of a cluster runs with.
type mixedTiming struct {
	heartbeat, election, lease, commit time.Duration
}

// mixedSettings are the settings every node of a cluster runs with.
type mixedSettings struct {
	timing mixedTiming
	// snapshotThreshold, trailingLogs and snapshotInterval are small, so
	// that both libraries snapshot and compact their logs while the tests
	// run: a node that misses more than trailingLogs entries, cut off or
	// down, catches up from a snapshot its leader sends, unless a
	// replicator read the entries before compacting them
	// (harness_catchup_test.go).
	snapshotThreshold uint64
	trailingLogs      uint64
	snapshotInterval  time.Duration
	// retain is how many snapshots each FileSnapshotStore keeps.
	retain int
	// onDisk keeps every node's log and stable store in a raft-boltdb
	// file and its snapshots in a FileSnapshotStore, both in the node's
	// directory, opened by each incarnation and closed when it stops, so
	// that the next incarnation may run the other library on the same
	// files. Otherwise the stores live in memory for the node's whole life
	// (see mixedNode), and a node always runs the same library.
	onDisk bool
	// walLogs, with onDisk, keeps the log and stable store in a WAL
	// directory, wal/ in the node's directory, instead of raft.db:
	// raft-wal v0.4.0 for the reference, our wal package for ours.
	walLogs bool
}

// mixedMemorySettings are the settings of the clusters whose nodes keep
// their stores in memory: a snapshot every 64 entries, checked every
// 50-100ms, and 32 entries kept behind it.
func mixedMemorySettings(timing mixedTiming) mixedSettings {
	return mixedSettings{
		timing:            timing,
		snapshotThreshold: 64,
		trailingLogs:      32,
		snapshotInterval:  50 * time.Millisecond,
		retain:            2,
	}
}

const (
	// mixedRPCTimeout bounds each RPC of both transports.
	mixedRPCTimeout = 5 * time.Second
	// mixedFutureDeadline bounds the wait for any future. Both libraries
	// answer every future; one that stays unanswered this long is a bug.
	mixedFutureDeadline = 30 * time.Second
)

var (
	errMixedPartitioned = errors.New("partitioned by the test")
	errMixedNodeDown    = errors.New("node is down")
)

// mixedOurLogs and mixedRefLogs are a log store that is also the stable
// store, as both libraries' InmemStore and raft-boltdb stores are.
type mixedOurLogs interface {
	qraft.LogStore
	qraft.StableStore
}

type mixedRefLogs interface {
	hraft.LogStore
	hraft.StableStore
}

// mixedNode is one server of a cluster. Its identity, address and
// directory outlive its incarnations; stop and start replace the running
// instance (transport, FSM and Raft), as a process restarting on the same
// disk would, and the new instance fills a fresh FSM from the newest
// snapshot and the log after it.
//
// A node whose stores live in memory keeps its snapshots, when it runs the
// reference, in a FileSnapshotStore, not in the reference's
// InmemSnapshotStore: that one makes a snapshot its latest when it is
// created, before it is written, and Open hands out the bytes written so
// far. A reference leader sending a snapshot while its next one is being
// persisted then races with the write and sends a truncated snapshot, its
// meta's Size being that of the truncated bytes (seen here, with the race
// detector's report, as our follower failing to restore a snapshot cut at
// 32768 bytes: ours stops a node whose FSM failed to restore, where the
// reference answers the leader with an error and goes on). Ours publishes
// a snapshot only when its sink is closed.
type mixedNode struct {
	nw     *mixedNetwork
	id     string
	addr   string
	dir    string
	set    mixedSettings
	logger hclog.Logger

	nodeRaft // its mu also guards the fields below, which a restart replaces
	lib      mixedLib
	layer    *mixedLayer
	fsm      *mixedFSM
	// The stores of the library the node runs or last ran: only that
	// library's are set. On disk they are opened by start and closed by
	// stop (nil while the node is down); in memory they are made once.
	ourLogs  mixedOurLogs
	refLogs  mixedRefLogs
	ourSnaps qraft.SnapshotStore
	refSnaps hraft.SnapshotStore
	// refWALMeta is the meta store the reference's raft-wal runs on, given
	// to it with WithMetaStore so that the test can close it: raft-wal's
	// Close leaves the meta store it opened itself open and locked.
	refWALMeta *refmeta.BoltMetaDB
	// incarnation counts starts, for log messages.
	incarnation int
}

func (n *mixedNode) String() string { return n.id }

// library returns the library of the current or last incarnation.
func (n *mixedNode) library() mixedLib {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.lib
}

// ourConfig and refConfig are the same settings for each library.
func (n *mixedNode) ourConfig() *qraft.Config {
	c := qraft.DefaultConfig()
	c.LocalID = qraft.ServerID(n.id)
	c.HeartbeatTimeout = n.set.timing.heartbeat
	c.ElectionTimeout = n.set.timing.election
	c.LeaderLeaseTimeout = n.set.timing.lease
	c.CommitTimeout = n.set.timing.commit
	c.SnapshotThreshold = n.set.snapshotThreshold
	c.TrailingLogs = n.set.trailingLogs
	c.SnapshotInterval = n.set.snapshotInterval
	c.Logger = n.logger.Named(string(libOurs))
	return c
}

func (n *mixedNode) refConfig() *hraft.Config {
	c := hraft.DefaultConfig()
	c.LocalID = hraft.ServerID(n.id)
	c.HeartbeatTimeout = n.set.timing.heartbeat
	c.ElectionTimeout = n.set.timing.election
	c.LeaderLeaseTimeout = n.set.timing.lease
	c.CommitTimeout = n.set.timing.commit
	c.SnapshotThreshold = n.set.snapshotThreshold
	c.TrailingLogs = n.set.trailingLogs
	c.SnapshotInterval = n.set.snapshotInterval
	c.Logger = n.logger.Named(string(libRef))
	return c
}

// mixedMember is a server of a configuration, in either library.
type mixedMember struct {
	ID, Addr string
	Voter    bool
}

func (m mixedMember) String() string {
	s := "voter"
	if !m.Voter {
		s = "nonvoter"
	}
	return fmt.Sprintf("%s(%s)@%s", m.ID, s, m.Addr)
}

// nodeRaft is a test node's running raft, of whichever library, both nil
// while the node is down. The driver replaces it under mu; clients read it.
type nodeRaft struct {
	mu   sync.RWMutex
	ours *qraft.Raft
	ref  *hraft.Raft
	// down is closed once the running incarnation's Shutdown has returned.
	down chan struct{}
}

func (n *nodeRaft) running() bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.ours != nil || n.ref != nil
}

// state returns the node's role as both libraries spell it, or "Down".
func (n *nodeRaft) state() string {
	n.mu.RLock()
	defer n.mu.RUnlock()
	switch {
	case n.ours != nil:
		return n.ours.State().String()
	case n.ref != nil:
		return n.ref.State().String()
	}
	return "Down"
}

// term returns the node's current term, 0 when it is down.
func (n *nodeRaft) term() uint64 {
	n.mu.RLock()
	defer n.mu.RUnlock()
	switch {
	case n.ours != nil:
		return n.ours.CurrentTerm()
	case n.ref != nil:
		return n.ref.CurrentTerm()
	}
	return 0
}

// leaderID returns the ID of the leader the node knows, "" if none or down.
func (n *nodeRaft) leaderID() string {
	n.mu.RLock()
	defer n.mu.RUnlock()
	switch {
	case n.ours != nil:
		_, id := n.ours.LeaderWithID()
		return string(id)
	case n.ref != nil:
		_, id := n.ref.LeaderWithID()
		return string(id)
	}
	return ""
}

// startOurRaft starts our library over layer with the given stores,
// bootstrapping them first with voters when there are any. On failure it
// closes the transport it made; the stores are the caller's.
func startOurRaft(conf *qraft.Config, fsm qraft.FSM, logs qraft.LogStore, stable qraft.StableStore, snaps qraft.SnapshotStore, layer *mixedLayer, netLogger hclog.Logger, voters []mixedMember) (*qraft.Raft, error) {
	trans := qraft.NewNetworkTransportWithConfig(&qraft.NetworkTransportConfig{
		Stream: mixedOurLayer{layer}, MaxPool: 3, Timeout: mixedRPCTimeout, Logger: netLogger,
	})
	if len(voters) > 0 {
		var cfg qraft.Configuration
		for _, v := range voters {
			cfg.Servers = append(cfg.Servers, qraft.Server{Suffrage: qraft.Voter, ID: qraft.ServerID(v.ID), Address: qraft.ServerAddress(v.Addr)})
		}
		if err := qraft.BootstrapCluster(conf, logs, stable, snaps, trans, cfg); err != nil {
			trans.Close()
			return nil, fmt.Errorf("bootstrapping our library: %w", err)
		}
	}
	r, err := qraft.NewRaft(conf, fsm, logs, stable, snaps, trans)
	if err != nil {
		trans.Close()
		return nil, fmt.Errorf("starting our library: %w", err)
	}
	return r, nil
}

// startRefRaft is startOurRaft for the reference library.
func startRefRaft(conf *hraft.Config, fsm hraft.FSM, logs hraft.LogStore, stable hraft.StableStore, snaps hraft.SnapshotStore, layer *mixedLayer, netLogger hclog.Logger, voters []mixedMember) (*hraft.Raft, error) {
	trans := hraft.NewNetworkTransportWithConfig(&hraft.NetworkTransportConfig{
		Stream: mixedRefLayer{layer}, MaxPool: 3, Timeout: mixedRPCTimeout, Logger: netLogger,
	})
	if len(voters) > 0 {
		var cfg hraft.Configuration
		for _, v := range voters {
			cfg.Servers = append(cfg.Servers, hraft.Server{Suffrage: hraft.Voter, ID: hraft.ServerID(v.ID), Address: hraft.ServerAddress(v.Addr)})
		}
		if err := hraft.BootstrapCluster(conf, logs, stable, snaps, trans, cfg); err != nil {
			trans.Close()
			return nil, fmt.Errorf("bootstrapping the reference: %w", err)
		}
	}
	r, err := hraft.NewRaft(conf, fsm, logs, stable, snaps, trans)
	if err != nil {
		trans.Close()
		return nil, fmt.Errorf("starting the reference: %w", err)
	}
	return r, nil
}

// openStoresLocked gives the node the stores of its library: on disk, it
// opens them on the node's directory; in memory, it makes them the first
// time.
func (n *mixedNode) openStoresLocked() error {
	snapLogger := n.logger.Named("snapshot")
	if !n.set.onDisk {
		switch {
		case n.lib == libOurs && n.ourLogs == nil:
			n.ourLogs, n.ourSnaps = qraft.NewInmemStore(), qraft.NewInmemSnapshotStore()
		case n.lib == libRef && n.refLogs == nil:
			snaps, err := hraft.NewFileSnapshotStoreWithLogger(n.dir, n.set.retain, snapLogger)
			if err != nil {
				return fmt.Errorf("opening the reference's FileSnapshotStore: %w", err)
			}
			n.refLogs, n.refSnaps = hraft.NewInmemStore(), snaps
		}
		return nil
	}
	if n.set.walLogs {
		return n.openWALStoresLocked(snapLogger)
	}
	dbPath := filepath.Join(n.dir, "raft.db")
	switch n.lib {
	case libOurs:
		logs, err := ourbolt.New(ourbolt.Options{Path: dbPath})
		if err != nil {
			return fmt.Errorf("opening %s with raftboltdb: %w", dbPath, err)
		}
		snaps, err := qraft.NewFileSnapshotStoreWithLogger(n.dir, n.set.retain, snapLogger)
		if err != nil {
			logs.Close()
			return fmt.Errorf("opening our FileSnapshotStore: %w", err)
		}
		n.ourLogs, n.ourSnaps = logs, snaps
	case libRef:
		logs, err := refbolt.New(refbolt.Options{Path: dbPath, BoltOptions: &bbolt.Options{Timeout: 10 * time.Second}})
		if err != nil {
			return fmt.Errorf("opening %s with raft-boltdb: %w", dbPath, err)
		}
		snaps, err := hraft.NewFileSnapshotStoreWithLogger(n.dir, n.set.retain, snapLogger)
		if err != nil {
			logs.Close()
			return fmt.Errorf("opening the reference's FileSnapshotStore: %w", err)
		}
		n.refLogs, n.refSnaps = logs, snaps
	}
	return nil
}

// openWALStoresLocked opens the node's WAL directory with the WAL of its
// library, and its FileSnapshotStore.
func (n *mixedNode) openWALStoresLocked(snapLogger hclog.Logger) error {
	walDir := filepath.Join(n.dir, "wal")
	if err := os.MkdirAll(walDir, 0o755); err != nil {
		return err
	}
	switch n.lib {
	case libOurs:
		logs, err := ourwal.Open(walDir, ourwal.WithLogger(n.logger.Named("wal")))
		if err != nil {
			return fmt.Errorf("opening %s with wal: %w", walDir, err)
		}
		snaps, err := qraft.NewFileSnapshotStoreWithLogger(n.dir, n.set.retain, snapLogger)
		if err != nil {
			logs.Close()
			return fmt.Errorf("opening our FileSnapshotStore: %w", err)
		}
		n.ourLogs, n.ourSnaps = logs, snaps
	case libRef:
		meta := &refmeta.BoltMetaDB{}
		logs, err := refwal.Open(walDir, refwal.WithMetaStore(meta), refwal.WithLogger(n.logger.Named("raft-wal")))
		if err != nil {
			meta.Close()
			return fmt.Errorf("opening %s with raft-wal: %w", walDir, err)
		}
		snaps, err := hraft.NewFileSnapshotStoreWithLogger(n.dir, n.set.retain, snapLogger)
		if err != nil {
			logs.Close()
			meta.Close()
			return fmt.Errorf("opening the reference's FileSnapshotStore: %w", err)
		}
		n.refLogs, n.refSnaps, n.refWALMeta = logs, snaps, meta
	}
	return nil
}

// closeStoresLocked closes the bolt file or WAL of a node on disk; a node
// in memory keeps its stores.
func (n *mixedNode) closeStoresLocked() error {
	if !n.set.onDisk {
		return nil
	}
	var err error
	switch c := n.ourLogs.(type) {
	case *ourbolt.BoltStore:
		err = c.Close()
	case *ourwal.WAL:
		err = c.Close()
	}
	switch c := n.refLogs.(type) {
	case *refbolt.BoltStore:
		err = errors.Join(err, c.Close())
	case *refwal.WAL:
		err = errors.Join(err, c.Close())
	}
	if n.refWALMeta != nil {
		err = errors.Join(err, n.refWALMeta.Close())
	}
	n.ourLogs, n.refLogs, n.ourSnaps, n.refSnaps, n.refWALMeta = nil, nil, nil, nil, nil
	return err
}

// start runs a new incarnation of the node's library on its stores,
// bootstrapping them first with the given voters if there are any. With
// cut set, the node's layer is cut off before Raft starts, so the test can
// look at what the library loaded from its stores before any peer changes
// it.
func (n *mixedNode) start(voters []mixedMember, cut bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if cut {
		n.layer.partition()
	}
	n.incarnation++
	n.down = make(chan struct{})
	n.fsm = &mixedFSM{}
	if err := n.openStoresLocked(); err != nil {
		return fmt.Errorf("%s: %w", n.id, err)
	}
	netLogger := n.logger.Named("net")
	var err error
	switch n.lib {
	case libOurs:
		n.ours, err = startOurRaft(n.ourConfig(), mixedOurFSM{n.fsm}, n.ourLogs, n.ourLogs, n.ourSnaps, n.layer, netLogger, voters)
	case libRef:
		n.ref, err = startRefRaft(n.refConfig(), mixedRefFSM{n.fsm}, n.refLogs, n.refLogs, n.refSnaps, n.layer, netLogger, voters)
	}
	if err != nil {
		n.closeStoresLocked()
		return fmt.Errorf("%s: %w", n.id, err)
	}
	n.logger.Info("test: node started", "library", n.lib, "incarnation", n.incarnation, "address", n.addr, "cut", cut)
	return nil
}

// mixedDisk is what a stopped node left in its stores.
type mixedDisk struct {
	// first, last and term are the log bounds and CurrentTerm in raft.db,
	// read with bbolt alone once the file is closed (on disk only).
	first, last, term uint64
	// lastAtShutdown is the last index the store reported right after
	// Shutdown returned, before the file was closed. It differs from last
	// if the library still wrote after Shutdown returned (see
	// crosslib_shutdown_test.go).
	lastAtShutdown uint64
	snaps          []mixedSnap // newest first, listed before the file was closed
}

// mixedSnap is a snapshot a snapshot store lists.
type mixedSnap struct {
	ID          string
	Index, Term uint64
}

// stop ends the running incarnation as a crash or a process exit would:
// its connections drop at once, Raft shuts down, and a node on disk closes
// its bolt file so that the next incarnation, of either library, can open
// it. It returns what the incarnation left in its stores.
func (n *mixedNode) stop() (mixedDisk, error) {
	n.mu.Lock()
	ours, ref, layer, down := n.ours, n.ref, n.layer, n.down
	n.ours, n.ref = nil, nil
	n.mu.Unlock()
	if ours == nil && ref == nil {
		return mixedDisk{}, nil
	}
	n.logger.Info("test: stopping node", "library", n.lib, "incarnation", n.incarnation)
	layer.partition()
	err := mixedWait(func() error {
		if ours != nil {
			return ours.Shutdown().Error()
		}
		return ref.Shutdown().Error()
	}, mixedFutureDeadline)
	if err == nil {
		close(down)
	}
	layer.Close() // the transport closed the listener already, unless Shutdown hung
	if err != nil {
		return mixedDisk{}, fmt.Errorf("shutting down %s: %w", n.id, err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var disk mixedDisk
	var err1, err2 error
	switch {
	case n.ourLogs != nil:
		disk.lastAtShutdown, err1 = n.ourLogs.LastIndex()
	case n.refLogs != nil:
		disk.lastAtShutdown, err1 = n.refLogs.LastIndex()
	}
	disk.snaps, err2 = n.snapshotsLocked()
	if err := n.closeStoresLocked(); err != nil {
		return disk, fmt.Errorf("closing the stores of %s: %w", n.id, err)
	}
	if err := errors.Join(err1, err2); err != nil {
		return disk, fmt.Errorf("%s after shutdown: %w", n.id, err)
	}
	if !n.set.onDisk {
		disk.last = disk.lastAtShutdown
		return disk, nil
	}
	if n.set.walLogs {
		disk.first, disk.last, disk.term, err = mixedReadWALDir(filepath.Join(n.dir, "wal"))
		return disk, err
	}
	disk.first, disk.last, disk.term, err = mixedReadBoltFile(filepath.Join(n.dir, "raft.db"))
	return disk, err
}

// mixedReadWALDir reads the log bounds and CurrentTerm of a closed WAL
// directory with our wal package, which reads either library's.
func mixedReadWALDir(dir string) (first, last, term uint64, err error) {
	w, err := ourwal.Open(dir, ourwal.WithLogger(hclog.NewNullLogger()))
	if err != nil {
		return 0, 0, 0, fmt.Errorf("opening %s: %w", dir, err)
	}
	defer w.Close()
	if first, err = w.FirstIndex(); err != nil {
		return 0, 0, 0, err
	}
	if last, err = w.LastIndex(); err != nil {
		return 0, 0, 0, err
	}
	term, err = w.GetUint64([]byte("CurrentTerm"))
	return first, last, term, err
}

// mixedReadBoltFile reads the log bounds and CurrentTerm of a closed
// raft-boltdb file with bbolt alone, as neither library sees it.
func mixedReadBoltFile(path string) (first, last, term uint64, err error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 10 * time.Second})
	if err != nil {
		return 0, 0, 0, fmt.Errorf("opening %s read-only: %w", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bbolt.Tx) error {
		logs, conf := tx.Bucket([]byte("logs")), tx.Bucket([]byte("conf"))
		if logs == nil || conf == nil {
			return fmt.Errorf("%s lacks the logs or conf bucket", path)
		}
		c := logs.Cursor()
		if k, _ := c.First(); len(k) == 8 {
			first = binary.BigEndian.Uint64(k)
		}
		if k, _ := c.Last(); len(k) == 8 {
			last = binary.BigEndian.Uint64(k)
		}
		if v := conf.Get([]byte("CurrentTerm")); len(v) == 8 {
			term = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return first, last, term, err
}

// restartAs starts a new incarnation of lib on the node's address and
// stores. Only a node on disk can change its library.
func (n *mixedNode) restartAs(lib mixedLib, cut bool) error {
	if lib != n.library() && !n.set.onDisk {
		return fmt.Errorf("%s keeps its stores in memory and cannot change from %s to %s", n.id, n.library(), lib)
	}
	layer, err := n.nw.listen(n.addr)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.layer, n.lib = layer, lib
	n.mu.Unlock()
	return n.start(nil, cut)
}

func (n *mixedNode) currentLayer() *mixedLayer {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.layer
}

func (n *mixedNode) currentFSM() *mixedFSM {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.fsm
}

// lastIndex returns the index of the node's last log entry as its Raft
// reports it, or from its store when it is down (0 on disk).
func (n *mixedNode) lastIndex() uint64 {
	n.mu.RLock()
	defer n.mu.RUnlock()
	switch {
	case n.ours != nil:
		return n.ours.LastIndex()
	case n.ref != nil:
		return n.ref.LastIndex()
	}
	_, last, _ := n.logBoundsLocked()
	return last
}

// storedLastIndex returns the index of the last entry in the node's log
// store, which can trail lastIndex while writes are in flight.
func (n *mixedNode) storedLastIndex() uint64 {
	_, last, _ := n.logBounds()
	return last
}

// firstIndex returns the index of the first entry in the node's log
// store: everything before it was compacted away (0 if the log is empty).
func (n *mixedNode) firstIndex() uint64 {
	first, _, _ := n.logBounds()
	return first
}

// logBounds returns the first and last index in the node's log store,
// read while the node runs (bolt serves readers concurrently).
func (n *mixedNode) logBounds() (first, last uint64, err error) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.logBoundsLocked()
}

func (n *mixedNode) logBoundsLocked() (first, last uint64, err error) {
	var e1, e2 error
	switch {
	case n.ourLogs != nil:
		first, e1 = n.ourLogs.FirstIndex()
		last, e2 = n.ourLogs.LastIndex()
	case n.refLogs != nil:
		first, e1 = n.refLogs.FirstIndex()
		last, e2 = n.refLogs.LastIndex()
	default:
		return 0, 0, errMixedNodeDown
	}
	return first, last, errors.Join(e1, e2)
}

// mixedLogEntry is a raft log entry of either library.
type mixedLogEntry struct {
	Index, Term uint64
	Type        uint8
	Data        string
}

// logEntry reads one entry from the node's log store.
func (n *mixedNode) logEntry(index uint64) (mixedLogEntry, error) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	switch {
	case n.ourLogs != nil:
		var l qraft.Log
		if err := n.ourLogs.GetLog(index, &l); err != nil {
			return mixedLogEntry{}, err
		}
		return mixedLogEntry{Index: l.Index, Term: l.Term, Type: uint8(l.Type), Data: string(l.Data)}, nil
	case n.refLogs != nil:
		var l hraft.Log
		if err := n.refLogs.GetLog(index, &l); err != nil {
			return mixedLogEntry{}, err
		}
		return mixedLogEntry{Index: l.Index, Term: l.Term, Type: uint8(l.Type), Data: string(l.Data)}, nil
	}
	return mixedLogEntry{}, errMixedNodeDown
}

// unbrokenFrom returns the lowest index from which the node's log store
// holds every entry up to last: its first index, unless the store has a
// gap (see checkSameHistory). It returns 0 if the store does not hold last,
// as after our node installed a snapshot at last, which empties its log.
func (n *mixedNode) unbrokenFrom(last uint64) uint64 {
	if _, err := n.logEntry(last); err != nil {
		return 0
	}
	from, first := last, n.firstIndex()
	for from > max(first, 1) {
		if _, err := n.logEntry(from - 1); err != nil {
			break
		}
		from--
	}
	return from
}

// snapshots lists the snapshots of the node's store, newest first. (On
// disk, opening a second store on the directory while the node runs is
// avoided: ours removes leftover .tmp directories when opened.)
func (n *mixedNode) snapshots() ([]mixedSnap, error) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.snapshotsLocked()
}

func (n *mixedNode) snapshotsLocked() ([]mixedSnap, error) {
	var out []mixedSnap
	switch {
	case n.ourSnaps != nil:
		metas, err := n.ourSnaps.List()
		if err != nil {
			return nil, err
		}
		for _, m := range metas {
			out = append(out, mixedSnap{ID: m.ID, Index: m.Index, Term: m.Term})
		}
	case n.refSnaps != nil:
		metas, err := n.refSnaps.List()
		if err != nil {
			return nil, err
		}
		for _, m := range metas {
			out = append(out, mixedSnap{ID: m.ID, Index: m.Index, Term: m.Term})
		}
	default:
		return nil, errMixedNodeDown
	}
	return out, nil
}

// newestSnapshot returns the newest snapshot in the node's snapshot store;
// ok is false if there is none.
func (n *mixedNode) newestSnapshot() (s mixedSnap, ok bool, err error) {
	snaps, err := n.snapshots()
	if err != nil || len(snaps) == 0 {
		return s, false, err
	}
	return snaps[0], true, nil
}

// stats returns the node's Stats, nil when it is down.
func (n *mixedNode) stats() map[string]string {
	n.mu.RLock()
	defer n.mu.RUnlock()
	switch {
	case n.ours != nil:
		return n.ours.Stats()
	case n.ref != nil:
		return n.ref.Stats()
	}
	return nil
}

// configuration returns the node's latest configuration, sorted by ID.
func (n *mixedNode) configuration() ([]mixedMember, error) {
	n.mu.RLock()
	ours, ref := n.ours, n.ref
	n.mu.RUnlock()
	var out []mixedMember
	switch {
	case ours != nil:
		f := ours.GetConfiguration()
		if err := mixedWait(f.Error, mixedFutureDeadline); err != nil {
			return nil, err
		}
		for _, s := range f.Configuration().Servers {
			out = append(out, mixedMember{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == qraft.Voter})
		}
	case ref != nil:
		f := ref.GetConfiguration()
		if err := mixedWait(f.Error, mixedFutureDeadline); err != nil {
			return nil, err
		}
		for _, s := range f.Configuration().Servers {
			out = append(out, mixedMember{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == hraft.Voter})
		}
	default:
		return nil, errMixedNodeDown
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// mixedFuture is the method set all the futures used here share.
type mixedFuture interface{ Error() error }

// leaderCall runs one of the leader's operations, in whichever library
// the node runs, and waits for its future.
func (n *mixedNode) leaderCall(ours func(*qraft.Raft) mixedFuture, ref func(*hraft.Raft) mixedFuture) error {
	n.mu.RLock()
	o, r := n.ours, n.ref
	n.mu.RUnlock()
	var f mixedFuture
	switch {
	case o != nil:
		f = ours(o)
	case r != nil:
		f = ref(r)
	default:
		return errMixedNodeDown
	}
	return mixedWait(f.Error, mixedFutureDeadline)
}

func (n *mixedNode) addVoter(m *mixedNode) error {
	return n.leaderCall(
		func(r *qraft.Raft) mixedFuture {
			return r.AddVoter(qraft.ServerID(m.id), qraft.ServerAddress(m.addr), 0, mixedEnqueueTimeout)
		},
		func(r *hraft.Raft) mixedFuture {
			return r.AddVoter(hraft.ServerID(m.id), hraft.ServerAddress(m.addr), 0, mixedEnqueueTimeout)
		})
}

func (n *mixedNode) addNonvoter(m *mixedNode) error {
	return n.leaderCall(
		func(r *qraft.Raft) mixedFuture {
			return r.AddNonvoter(qraft.ServerID(m.id), qraft.ServerAddress(m.addr), 0, mixedEnqueueTimeout)
		},
		func(r *hraft.Raft) mixedFuture {
			return r.AddNonvoter(hraft.ServerID(m.id), hraft.ServerAddress(m.addr), 0, mixedEnqueueTimeout)
		})
}

func (n *mixedNode) removeServer(m *mixedNode) error {
	return n.leaderCall(
		func(r *qraft.Raft) mixedFuture { return r.RemoveServer(qraft.ServerID(m.id), 0, mixedEnqueueTimeout) },
		func(r *hraft.Raft) mixedFuture { return r.RemoveServer(hraft.ServerID(m.id), 0, mixedEnqueueTimeout) })
}

// snapshotNow takes a snapshot on the node, as a user's Snapshot call
// does, and waits for it; the library then compacts its log as after any
// snapshot of its own.
func (n *mixedNode) snapshotNow() error {
	return n.leaderCall(
		func(r *qraft.Raft) mixedFuture { return r.Snapshot() },
		func(r *hraft.Raft) mixedFuture { return r.Snapshot() })
}

func (n *mixedNode) transferTo(m *mixedNode) error {
	return n.leaderCall(
		func(r *qraft.Raft) mixedFuture {
			return r.LeadershipTransferToServer(qraft.ServerID(m.id), qraft.ServerAddress(m.addr))
		},
		func(r *hraft.Raft) mixedFuture {
			return r.LeadershipTransferToServer(hraft.ServerID(m.id), hraft.ServerAddress(m.addr))
		})
}

// mixedApplyFuture is the method set both libraries' ApplyFuture share.
type mixedApplyFuture interface {
	Error() error
	Index() uint64
	Response() interface{}
}

// apply submits cmd to this node and waits, at most mixedFutureDeadline,
// for the outcome: the library that took it, the entry's index and the
// FSM's answer.
func (n *mixedNode) apply(cmd []byte) (mixedLib, uint64, interface{}, error) {
	n.mu.RLock()
	ours, ref, lib, down := n.ours, n.ref, n.lib, n.down
	n.mu.RUnlock()
	var f mixedApplyFuture
	switch {
	case ours != nil:
		f = ours.Apply(cmd, mixedEnqueueTimeout)
	case ref != nil:
		f = ref.Apply(cmd, mixedEnqueueTimeout)
	default:
		return lib, 0, nil, errMixedNodeDown
	}
	if err := mixedWaitUnlessDown(f.Error, mixedFutureDeadline, down); err != nil {
		return lib, 0, nil, err
	}
	return lib, f.Index(), f.Response(), nil
}

// errMixedUnanswered is the error of a future its node left unanswered
// when it shut down. hashicorp/raft does that to an Apply still queued for
// its leader loop when Shutdown comes: the future never answers. Whether
// the command was appended is unknown, so the client retries it as an
// uncertain outcome, as after any other error but a refusal.
var errMixedUnanswered = errors.New("the node shut down without answering")

// mixedWaitUnlessDown is mixedWait, except that it gives up on fn as soon
// as down is closed (its node's Shutdown returned): an answer not given by
// then never comes, and waiting the whole of d for it would stall every
// client that had a command in hand at a leader the test stopped.
func mixedWaitUnlessDown(fn func() error, d time.Duration, down <-chan struct{}) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-down:
		select {
		case err := <-done:
			return err
		default:
			return errMixedUnanswered
		}
	case <-t.C:
		return fmt.Errorf("no answer within %v", d)
	}
}

// mixedWait calls fn and waits at most d for it to return. On a timeout
// fn's goroutine is left behind; the test fails anyway.
func mixedWait(fn func() error, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("no answer within %v", d)
	}
}
