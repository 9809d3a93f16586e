package interop

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
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

// The harness of the cross-library tests of snapshots, membership and
// rolling migration: nodes of either library that keep their state on
// disk, in a raft-boltdb file and a FileSnapshotStore directory, so that
// a node can be stopped and started again on the same files by the same
// or the other library. It reuses the mixed cluster tests' network
// (mixedNetwork: loopback TCP with cuts and heals), log sink and bounded
// waits; everything of its own is named xlib*.

// xlibSettings are the Raft settings every node of a cluster runs with.
type xlibSettings struct {
	timing mixedTiming
	// snapshotThreshold, trailingLogs and snapshotInterval are small, so
	// that snapshots are taken and logs compacted while the tests run.
	snapshotThreshold uint64
	trailingLogs      uint64
	snapshotInterval  time.Duration
	// retain is how many snapshots each FileSnapshotStore keeps.
	retain int
	// walLogs keeps each node's log and stable store in a raft-wal
	// directory (wal/ in the node's directory: raft-wal v0.4.0 for the
	// reference, our wal package for ours) instead of raft.db.
	walLogs bool
}

var errXlibNodeDown = errors.New("node is down")

// --- The state machine. ---

// xlibEntry is one command as an FSM applied it.
type xlibEntry struct {
	Index, Term uint64
	Data        string
}

// xlibResult is the FSM's answer to a command: its index and its 1-based
// position in the FSM's sequence.
type xlibResult struct {
	Index uint64
	Seq   int
}

// xlibRestore records one Restore call: how many commands the restored
// state held and the index of the last one.
type xlibRestore struct {
	Commands  int
	LastIndex uint64
}

// xlibFSM holds every command applied since the cluster began, in order.
// Its snapshot is that whole sequence, so a node that restores one holds
// the same history as a node that applied every entry, and the tests can
// compare complete histories at the end. The snapshot format is the
// test's own JSON and the same whichever library writes or reads it: what
// crosses libraries is the snapshot's framing, files and transfer.
type xlibFSM struct {
	mu       sync.Mutex // Apply, Snapshot and Restore run on the node's FSM goroutine; tests read concurrently
	entries  []xlibEntry
	restores []xlibRestore
	problems []string
}

func (f *xlibFSM) apply(index, term uint64, data []byte) interface{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.entries); n > 0 && index <= f.entries[n-1].Index {
		f.problems = append(f.problems, fmt.Sprintf("index %d applied after index %d", index, f.entries[n-1].Index))
	}
	f.entries = append(f.entries, xlibEntry{Index: index, Term: term, Data: string(data)})
	return xlibResult{Index: index, Seq: len(f.entries)}
}

// snapshot captures the sequence so far; persisting it may run
// concurrently with later applies.
func (f *xlibFSM) snapshot() xlibSnapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return xlibSnapshot{entries: append([]xlibEntry(nil), f.entries...)}
}

func (f *xlibFSM) restore(rc io.ReadCloser) error {
	defer rc.Close()
	var entries []xlibEntry
	if err := json.NewDecoder(rc).Decode(&entries); err != nil {
		return fmt.Errorf("decoding the snapshot: %w", err)
	}
	for i := 1; i < len(entries); i++ {
		if entries[i].Index <= entries[i-1].Index {
			return fmt.Errorf("snapshot holds index %d after index %d", entries[i].Index, entries[i-1].Index)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r := xlibRestore{Commands: len(entries)}
	if len(entries) > 0 {
		r.LastIndex = entries[len(entries)-1].Index
	}
	f.entries = entries
	f.restores = append(f.restores, r)
	return nil
}

func (f *xlibFSM) sequence() []xlibEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]xlibEntry(nil), f.entries...)
}

func (f *xlibFSM) lastIndex() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.entries) == 0 {
		return 0
	}
	return f.entries[len(f.entries)-1].Index
}

func (f *xlibFSM) restoreLog() []xlibRestore {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]xlibRestore(nil), f.restores...)
}

func (f *xlibFSM) orderProblems() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.problems...)
}

// xlibSnapshot is a captured sequence; it persists as JSON.
type xlibSnapshot struct{ entries []xlibEntry }

func (s xlibSnapshot) persist(sink io.WriteCloser, cancel func() error) error {
	if err := json.NewEncoder(sink).Encode(s.entries); err != nil {
		cancel()
		return err
	}
	return sink.Close()
}

type xlibOurFSM struct{ *xlibFSM }

func (f xlibOurFSM) Apply(l *qraft.Log) interface{}       { return f.apply(l.Index, l.Term, l.Data) }
func (f xlibOurFSM) Snapshot() (qraft.FSMSnapshot, error) { return xlibOurSnapshot{f.snapshot()}, nil }
func (f xlibOurFSM) Restore(rc io.ReadCloser) error       { return f.restore(rc) }

type xlibOurSnapshot struct{ xlibSnapshot }

func (s xlibOurSnapshot) Persist(sink qraft.SnapshotSink) error { return s.persist(sink, sink.Cancel) }
func (s xlibOurSnapshot) Release()                              {}

type xlibRefFSM struct{ *xlibFSM }

func (f xlibRefFSM) Apply(l *hraft.Log) interface{}       { return f.apply(l.Index, l.Term, l.Data) }
func (f xlibRefFSM) Snapshot() (hraft.FSMSnapshot, error) { return xlibRefSnapshot{f.snapshot()}, nil }
func (f xlibRefFSM) Restore(rc io.ReadCloser) error       { return f.restore(rc) }

type xlibRefSnapshot struct{ xlibSnapshot }

func (s xlibRefSnapshot) Persist(sink hraft.SnapshotSink) error { return s.persist(sink, sink.Cancel) }
func (s xlibRefSnapshot) Release()                              {}

// --- A node. ---

// xlibNode is one server whose state lives in a directory: raft.db, a
// raft-boltdb file holding its log and stable store, and snapshots/, a
// FileSnapshotStore. Its identity, address and directory outlive its
// incarnations; each incarnation runs either library on the same files,
// with a fresh FSM that the library fills from the snapshot and the log,
// as a restarted process would.
type xlibNode struct {
	nw     *mixedNetwork
	id     string
	addr   string
	dir    string
	set    xlibSettings
	logger hclog.Logger

	nodeRaft    // its mu also guards the fields below, which a restart replaces
	lib         mixedLib
	layer       *mixedLayer
	fsm         *xlibFSM
	ourLogs     *ourbolt.BoltStore
	refLogs     *refbolt.BoltStore
	ourWAL      *ourwal.WAL
	refWAL      *refwal.WAL
	refWALMeta  *refmeta.BoltMetaDB // raft-wal's Close leaves its meta store open
	ourSnaps    *qraft.FileSnapshotStore
	refSnaps    *hraft.FileSnapshotStore
	incarnation int
}

func (n *xlibNode) String() string { return n.id }

// library returns the library of the current or last incarnation.
func (n *xlibNode) library() mixedLib {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.lib
}

func (n *xlibNode) ourConfig() *qraft.Config {
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

func (n *xlibNode) refConfig() *hraft.Config {
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

// xlibMember is a server of a configuration, in either library.
type xlibMember struct {
	ID, Addr string
	Voter    bool
}

func (m xlibMember) String() string {
	s := "voter"
	if !m.Voter {
		s = "nonvoter"
	}
	return fmt.Sprintf("%s(%s)@%s", m.ID, s, m.Addr)
}

// bootVoters lists members as the voters to bootstrap a cluster with.
func bootVoters(members []xlibMember) []mixedServer {
	out := make([]mixedServer, len(members))
	for i, m := range members {
		out[i] = mixedServer{id: m.ID, addr: m.Addr}
	}
	return out
}

// start runs a new incarnation of the node's library on its directory,
// bootstrapping it first with the given voters if there are any. With cut
// set, the node's layer is cut off before Raft starts, so the test can
// look at what the library loaded from disk before any peer changes it.
func (n *xlibNode) start(voters []xlibMember, cut bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if cut {
		n.layer.partition()
	}
	n.incarnation++
	n.fsm = &xlibFSM{}
	dbPath := filepath.Join(n.dir, "raft.db")
	walDir := filepath.Join(n.dir, "wal")
	if n.set.walLogs {
		if err := os.MkdirAll(walDir, 0o755); err != nil {
			return err
		}
	}
	netLogger := n.logger.Named("net")
	snapLogger := n.logger.Named("snapshot")
	var err error
	switch n.lib {
	case libOurs:
		var logs interface {
			qraft.LogStore
			qraft.StableStore
		}
		if n.set.walLogs {
			if n.ourWAL, err = ourwal.Open(walDir, ourwal.WithLogger(n.logger.Named("wal"))); err != nil {
				return fmt.Errorf("%s: opening %s with wal: %w", n.id, walDir, err)
			}
			logs = n.ourWAL
		} else {
			if n.ourLogs, err = ourbolt.New(ourbolt.Options{Path: dbPath}); err != nil {
				return fmt.Errorf("%s: opening %s with raftboltdb: %w", n.id, dbPath, err)
			}
			logs = n.ourLogs
		}
		if n.ourSnaps, err = qraft.NewFileSnapshotStoreWithLogger(n.dir, n.set.retain, snapLogger); err != nil {
			n.closeStoresLocked()
			return fmt.Errorf("%s: opening our FileSnapshotStore: %w", n.id, err)
		}
		if n.ours, err = startOurRaft(n.ourConfig(), xlibOurFSM{n.fsm}, logs, logs, n.ourSnaps, n.layer, netLogger, bootVoters(voters)); err != nil {
			n.closeStoresLocked()
			return fmt.Errorf("%s: %w", n.id, err)
		}
	case libRef:
		var logs interface {
			hraft.LogStore
			hraft.StableStore
		}
		if n.set.walLogs {
			n.refWALMeta = &refmeta.BoltMetaDB{}
			if n.refWAL, err = refwal.Open(walDir, refwal.WithMetaStore(n.refWALMeta), refwal.WithLogger(n.logger.Named("raft-wal"))); err != nil {
				n.closeStoresLocked()
				return fmt.Errorf("%s: opening %s with raft-wal: %w", n.id, walDir, err)
			}
			logs = n.refWAL
		} else {
			if n.refLogs, err = refbolt.New(refbolt.Options{Path: dbPath, BoltOptions: &bbolt.Options{Timeout: 10 * time.Second}}); err != nil {
				return fmt.Errorf("%s: opening %s with raft-boltdb: %w", n.id, dbPath, err)
			}
			logs = n.refLogs
		}
		if n.refSnaps, err = hraft.NewFileSnapshotStoreWithLogger(n.dir, n.set.retain, snapLogger); err != nil {
			n.closeStoresLocked()
			return fmt.Errorf("%s: opening the reference's FileSnapshotStore: %w", n.id, err)
		}
		if n.ref, err = startRefRaft(n.refConfig(), xlibRefFSM{n.fsm}, logs, logs, n.refSnaps, n.layer, netLogger, bootVoters(voters)); err != nil {
			n.closeStoresLocked()
			return fmt.Errorf("%s: %w", n.id, err)
		}
	}
	n.logger.Info("test: node started", "library", n.lib, "incarnation", n.incarnation, "address", n.addr, "cut", cut)
	return nil
}

func (n *xlibNode) closeStoresLocked() error {
	var err error
	if n.ourLogs != nil {
		err = n.ourLogs.Close()
	}
	if n.refLogs != nil {
		err = errors.Join(err, n.refLogs.Close())
	}
	if n.ourWAL != nil {
		err = errors.Join(err, n.ourWAL.Close())
	}
	if n.refWAL != nil {
		err = errors.Join(err, n.refWAL.Close())
	}
	if n.refWALMeta != nil {
		err = errors.Join(err, n.refWALMeta.Close())
	}
	n.ourLogs, n.refLogs, n.ourSnaps, n.refSnaps = nil, nil, nil, nil
	n.ourWAL, n.refWAL, n.refWALMeta = nil, nil, nil
	return err
}

// xlibDisk is what a stopped node left in its directory.
type xlibDisk struct {
	// first, last and term are the log bounds and CurrentTerm in raft.db,
	// read with bbolt alone once the file is closed.
	first, last, term uint64
	// lastAtShutdown is the last index the store reported right after
	// Shutdown returned, before the file was closed. It differs from last
	// if the library still wrote after Shutdown returned (see
	// crosslib_shutdown_test.go).
	lastAtShutdown uint64
	snaps          []xlibSnap // newest first, listed before the file was closed
}

// xlibSnap is a snapshot a FileSnapshotStore lists.
type xlibSnap struct {
	ID          string
	Index, Term uint64
}

// stop ends the running incarnation as a process exit would: its
// connections drop, Raft shuts down, and the bolt file is closed so that
// the next incarnation, of either library, can open it. It returns what
// the incarnation left on disk.
func (n *xlibNode) stop() (xlibDisk, error) {
	n.mu.Lock()
	ours, ref, layer := n.ours, n.ref, n.layer
	n.ours, n.ref = nil, nil
	n.mu.Unlock()
	if ours == nil && ref == nil {
		return xlibDisk{}, nil
	}
	n.logger.Info("test: stopping node", "library", n.lib, "incarnation", n.incarnation)
	layer.partition()
	err := mixedWait(func() error {
		if ours != nil {
			return ours.Shutdown().Error()
		}
		return ref.Shutdown().Error()
	}, mixedFutureDeadline)
	layer.Close() // the transport closed the listener already, unless Shutdown hung
	if err != nil {
		return xlibDisk{}, fmt.Errorf("shutting down %s: %w", n.id, err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var disk xlibDisk
	var err1, err2 error
	switch {
	case n.ourLogs != nil:
		disk.lastAtShutdown, err1 = n.ourLogs.LastIndex()
	case n.refLogs != nil:
		disk.lastAtShutdown, err1 = n.refLogs.LastIndex()
	case n.ourWAL != nil:
		disk.lastAtShutdown, err1 = n.ourWAL.LastIndex()
	case n.refWAL != nil:
		disk.lastAtShutdown, err1 = n.refWAL.LastIndex()
	}
	disk.snaps, err2 = n.snapshotsLocked()
	if err := n.closeStoresLocked(); err != nil {
		return disk, fmt.Errorf("closing the stores of %s: %w", n.id, err)
	}
	if err := errors.Join(err1, err2); err != nil {
		return disk, fmt.Errorf("%s after shutdown: %w", n.id, err)
	}
	if n.set.walLogs {
		disk.first, disk.last, disk.term, err = xlibReadWALDir(filepath.Join(n.dir, "wal"))
		return disk, err
	}
	disk.first, disk.last, disk.term, err = xlibReadBoltFile(filepath.Join(n.dir, "raft.db"))
	return disk, err
}

// xlibReadBoltFile reads the log bounds and CurrentTerm of a closed
// raft-boltdb file with bbolt alone, as neither library sees it.
func xlibReadBoltFile(path string) (first, last, term uint64, err error) {
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
// directory.
func (n *xlibNode) restartAs(lib mixedLib, cut bool) error {
	layer, err := n.nw.listen(n.addr)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.layer, n.lib = layer, lib
	n.mu.Unlock()
	return n.start(nil, cut)
}

func (n *xlibNode) currentLayer() *mixedLayer {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.layer
}

func (n *xlibNode) currentFSM() *xlibFSM {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.fsm
}

func (n *xlibNode) lastIndex() uint64 {
	n.mu.RLock()
	defer n.mu.RUnlock()
	switch {
	case n.ours != nil:
		return n.ours.LastIndex()
	case n.ref != nil:
		return n.ref.LastIndex()
	}
	return 0
}

func (n *xlibNode) stats() map[string]string {
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

// logBounds returns the first and last index in the node's bolt file, read
// while the node runs (bolt serves readers concurrently).
func (n *xlibNode) logBounds() (first, last uint64, err error) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	var e1, e2 error
	switch {
	case n.ourLogs != nil:
		first, e1 = n.ourLogs.FirstIndex()
		last, e2 = n.ourLogs.LastIndex()
	case n.refLogs != nil:
		first, e1 = n.refLogs.FirstIndex()
		last, e2 = n.refLogs.LastIndex()
	case n.ourWAL != nil:
		first, e1 = n.ourWAL.FirstIndex()
		last, e2 = n.ourWAL.LastIndex()
	case n.refWAL != nil:
		first, e1 = n.refWAL.FirstIndex()
		last, e2 = n.refWAL.LastIndex()
	default:
		return 0, 0, errXlibNodeDown
	}
	return first, last, errors.Join(e1, e2)
}

// snapshots lists the snapshots of the running incarnation's store,
// newest first. (Opening a second store on the directory while the node
// runs is avoided: ours removes leftover .tmp directories when opened.)
func (n *xlibNode) snapshots() ([]xlibSnap, error) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.snapshotsLocked()
}

func (n *xlibNode) snapshotsLocked() ([]xlibSnap, error) {
	var out []xlibSnap
	switch {
	case n.ourSnaps != nil:
		metas, err := n.ourSnaps.List()
		if err != nil {
			return nil, err
		}
		for _, m := range metas {
			out = append(out, xlibSnap{ID: m.ID, Index: m.Index, Term: m.Term})
		}
	case n.refSnaps != nil:
		metas, err := n.refSnaps.List()
		if err != nil {
			return nil, err
		}
		for _, m := range metas {
			out = append(out, xlibSnap{ID: m.ID, Index: m.Index, Term: m.Term})
		}
	default:
		return nil, errXlibNodeDown
	}
	return out, nil
}

// configuration returns the node's latest configuration, sorted by ID.
func (n *xlibNode) configuration() ([]xlibMember, error) {
	n.mu.RLock()
	ours, ref := n.ours, n.ref
	n.mu.RUnlock()
	var out []xlibMember
	switch {
	case ours != nil:
		f := ours.GetConfiguration()
		if err := mixedWait(f.Error, mixedFutureDeadline); err != nil {
			return nil, err
		}
		for _, s := range f.Configuration().Servers {
			out = append(out, xlibMember{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == qraft.Voter})
		}
	case ref != nil:
		f := ref.GetConfiguration()
		if err := mixedWait(f.Error, mixedFutureDeadline); err != nil {
			return nil, err
		}
		for _, s := range f.Configuration().Servers {
			out = append(out, xlibMember{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == hraft.Voter})
		}
	default:
		return nil, errXlibNodeDown
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// xlibFuture is the method set all the futures used here share.
type xlibFuture interface{ Error() error }

// leaderCall runs one of the leader's operations, in whichever library
// the node runs, and waits for its future.
func (n *xlibNode) leaderCall(ours func(*qraft.Raft) xlibFuture, ref func(*hraft.Raft) xlibFuture) error {
	n.mu.RLock()
	o, r := n.ours, n.ref
	n.mu.RUnlock()
	var f xlibFuture
	switch {
	case o != nil:
		f = ours(o)
	case r != nil:
		f = ref(r)
	default:
		return errXlibNodeDown
	}
	return mixedWait(f.Error, mixedFutureDeadline)
}

func (n *xlibNode) addVoter(m *xlibNode) error {
	return n.leaderCall(
		func(r *qraft.Raft) xlibFuture {
			return r.AddVoter(qraft.ServerID(m.id), qraft.ServerAddress(m.addr), 0, mixedEnqueueTimeout)
		},
		func(r *hraft.Raft) xlibFuture {
			return r.AddVoter(hraft.ServerID(m.id), hraft.ServerAddress(m.addr), 0, mixedEnqueueTimeout)
		})
}

func (n *xlibNode) addNonvoter(m *xlibNode) error {
	return n.leaderCall(
		func(r *qraft.Raft) xlibFuture {
			return r.AddNonvoter(qraft.ServerID(m.id), qraft.ServerAddress(m.addr), 0, mixedEnqueueTimeout)
		},
		func(r *hraft.Raft) xlibFuture {
			return r.AddNonvoter(hraft.ServerID(m.id), hraft.ServerAddress(m.addr), 0, mixedEnqueueTimeout)
		})
}

func (n *xlibNode) removeServer(m *xlibNode) error {
	return n.leaderCall(
		func(r *qraft.Raft) xlibFuture { return r.RemoveServer(qraft.ServerID(m.id), 0, mixedEnqueueTimeout) },
		func(r *hraft.Raft) xlibFuture { return r.RemoveServer(hraft.ServerID(m.id), 0, mixedEnqueueTimeout) })
}

func (n *xlibNode) transferTo(m *xlibNode) error {
	return n.leaderCall(
		func(r *qraft.Raft) xlibFuture {
			return r.LeadershipTransferToServer(qraft.ServerID(m.id), qraft.ServerAddress(m.addr))
		},
		func(r *hraft.Raft) xlibFuture {
			return r.LeadershipTransferToServer(hraft.ServerID(m.id), hraft.ServerAddress(m.addr))
		})
}

// apply submits cmd to this node and waits for the outcome.
func (n *xlibNode) apply(cmd []byte) (uint64, interface{}, error) {
	n.mu.RLock()
	ours, ref := n.ours, n.ref
	n.mu.RUnlock()
	var f mixedApplyFuture
	switch {
	case ours != nil:
		f = ours.Apply(cmd, mixedEnqueueTimeout)
	case ref != nil:
		f = ref.Apply(cmd, mixedEnqueueTimeout)
	default:
		return 0, nil, errXlibNodeDown
	}
	if err := mixedWait(f.Error, mixedFutureDeadline); err != nil {
		return 0, nil, err
	}
	return f.Index(), f.Response(), nil
}

// --- The cluster. ---

type xlibCluster struct {
	t      *testing.T
	base   string // the nodes' directories are under it
	nw     *mixedNetwork
	sink   *mixedLogSink
	logger hclog.Logger
	set    xlibSettings

	mu      sync.Mutex // guards nodes and members; clients read them while the test adds nodes
	nodes   []*xlibNode
	members map[*xlibNode]bool // the nodes the test has made members, voters or not
	// uncertain holds the test's own commands that mustSubmit retried
	// after an attempt whose outcome was unknown.
	uncertain map[string]bool
	// sent holds every command mustSubmit had acknowledged.
	sent map[string]bool
}

// newXlibCluster prepares an empty cluster. Cleanup stops every node and,
// if the test failed or MIXED_CLUSTER_LOGS is set, shows the nodes' last
// log lines.
func newXlibCluster(t *testing.T, set xlibSettings) *xlibCluster {
	t.Helper()
	// The nodes' directories live under one taken before the cleanup below
	// is registered, so that they are removed after the nodes stop.
	c := &xlibCluster{t: t, base: t.TempDir(), nw: newMixedNetwork(), sink: &mixedLogSink{}, set: set,
		members: map[*xlibNode]bool{}, uncertain: map[string]bool{}, sent: map[string]bool{}}
	c.logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: c.sink, TimeFormat: "15:04:05.000"})
	t.Cleanup(func() {
		dump := t.Failed() || os.Getenv("MIXED_CLUSTER_LOGS") != ""
		if dump {
			t.Logf("cluster at the end: %s", c.describe())
		}
		for _, n := range c.allNodes() {
			if _, err := n.stop(); err != nil {
				t.Errorf("cleanup: %v", err)
			}
			n.currentLayer().Close() // for nodes that never started
		}
		if dump {
			t.Logf("last log lines of the cluster:\n%s", c.sink)
		}
	})
	return c
}

// addNode creates a node of lib with its own directory and port; it does
// not start it.
func (c *xlibCluster) addNode(id string, lib mixedLib) *xlibNode {
	c.t.Helper()
	if err := os.Mkdir(filepath.Join(c.base, id), 0o755); err != nil {
		c.t.Fatal(err)
	}
	layer, err := c.nw.listen("127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	n := &xlibNode{
		nw: c.nw, id: id, addr: layer.Addr().String(), dir: filepath.Join(c.base, id), set: c.set,
		logger: c.logger.Named(id), lib: lib, layer: layer,
	}
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	return n
}

// bootstrap starts the given nodes as the founding voters.
func (c *xlibCluster) bootstrap(nodes ...*xlibNode) {
	c.t.Helper()
	var voters []xlibMember
	for _, n := range nodes {
		voters = append(voters, xlibMember{ID: n.id, Addr: n.addr, Voter: true})
	}
	for _, n := range nodes {
		if err := n.start(voters, false); err != nil {
			c.t.Fatal(err)
		}
		c.setMember(n, true)
	}
}

func (c *xlibCluster) setMember(n *xlibNode, member bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if member {
		c.members[n] = true
	} else {
		delete(c.members, n)
	}
}

func (c *xlibCluster) allNodes() []*xlibNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*xlibNode(nil), c.nodes...)
}

// memberNodes returns the members in the order they were created.
func (c *xlibCluster) memberNodes() []*xlibNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*xlibNode
	for _, n := range c.nodes {
		if c.members[n] {
			out = append(out, n)
		}
	}
	return out
}

func (c *xlibCluster) logf(format string, args ...interface{}) {
	c.t.Helper()
	msg := fmt.Sprintf(format, args...)
	c.t.Log(msg)
	fmt.Fprintf(c.sink, "%s [TEST] %s\n", time.Now().Format("15:04:05.000"), msg)
}

func (c *xlibCluster) eventually(timeout time.Duration, what string, cond func() bool) {
	c.t.Helper()
	if !mixedPollUntil(timeout, cond) {
		c.t.Fatalf("timed out after %v waiting until %s; cluster: %s", timeout, what, c.describe())
	}
}

// describe summarises every node for failure messages.
func (c *xlibCluster) describe() string {
	var parts []string
	for _, n := range c.allNodes() {
		first, last, _ := n.logBounds()
		snap := uint64(0)
		if s, err := n.snapshots(); err == nil && len(s) > 0 {
			snap = s[0].Index
		}
		parts = append(parts, fmt.Sprintf("%s/%s{state=%s term=%d last=%d log=[%d,%d] snap=%d applied=%d leader=%q}",
			n.id, n.library(), n.state(), n.term(), n.lastIndex(), first, last, snap, n.currentFSM().lastIndex(), n.leaderID()))
	}
	return strings.Join(parts, " ")
}

// leader returns the running node that reports being leader in the
// highest term, or nil.
func (c *xlibCluster) leader() *xlibNode {
	var best *xlibNode
	var bestTerm uint64
	for _, n := range c.allNodes() {
		if n.state() != "Leader" {
			continue
		}
		if t := n.term(); best == nil || t > bestTerm {
			best, bestTerm = n, t
		}
	}
	return best
}

// waitLeader waits until a node leads and every running member follows
// it, cut-off ones excepted.
func (c *xlibCluster) waitLeader() *xlibNode {
	c.t.Helper()
	var l *xlibNode
	c.eventually(mixedSettle, "a leader is elected and known to every running member", func() bool {
		l = c.leader()
		if l == nil {
			return false
		}
		for _, n := range c.memberNodes() {
			if n != l && n.running() && !xlibIsCut(n) && (n.leaderID() != l.id || n.term() != l.term()) {
				return false
			}
		}
		return true
	})
	return l
}

func xlibIsCut(n *xlibNode) bool {
	l := n.currentLayer()
	l.nw.mu.Lock()
	defer l.nw.mu.Unlock()
	return l.cut
}

// leadWith makes w the leader, by leadership transfer, and waits until
// every running member follows it. Transfers can fail on a loaded machine
// (the target's election can time out); they are retried.
func (c *xlibCluster) leadWith(w *xlibNode) {
	c.t.Helper()
	for attempt := 1; ; attempt++ {
		l := c.waitLeader()
		if l == w {
			c.logf("%s (%s) leads in term %d", w, w.library(), w.term())
			return
		}
		if attempt == 6 {
			c.t.Fatalf("five leadership transfers to %s failed; cluster: %s", w, c.describe())
		}
		c.logf("transferring leadership from %s (%s) to %s (%s)", l, l.library(), w, w.library())
		if err := l.transferTo(w); err != nil {
			c.logf("transfer from %s to %s failed: %v", l, w, err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		mixedPollUntil(mixedSettle/3, func() bool { return c.leader() != l })
	}
}

// xlibNotApplied reports whether an Apply error proves the command was
// never appended to any log, so that retrying cannot apply it twice.
func xlibNotApplied(err error) bool {
	return mixedNotApplied(err) || errors.Is(err, errXlibNodeDown) ||
		errors.Is(err, qraft.ErrLeadershipTransferInProgress) || errors.Is(err, hraft.ErrLeadershipTransferInProgress)
}

// xlibAck is a command's successful outcome.
type xlibAck struct {
	node   *xlibNode
	lib    mixedLib // the library the node ran when it answered
	index  uint64
	result xlibResult
}

// submit sends cmd to whichever node leads until one accepts it, with
// bounded retries. uncertain is true if an earlier attempt failed in a way
// that may still have applied the command.
func (c *xlibCluster) submit(cmd []byte, stop <-chan struct{}) (ack xlibAck, uncertain bool, err error) {
	deadline := time.Now().Add(mixedSubmitDeadline)
	var lastErr error
	for attempt := 0; attempt < mixedSubmitAttempts && time.Now().Before(deadline); attempt++ {
		select {
		case <-stop:
			return ack, uncertain, errors.New("stopped")
		default:
		}
		n := c.leader()
		if n == nil {
			time.Sleep(mixedPoll)
			continue
		}
		lib := n.library()
		index, resp, err := n.apply(cmd)
		if err == nil {
			res, ok := resp.(xlibResult)
			if !ok {
				return ack, uncertain, fmt.Errorf("%s answered %.40q with response %#v, want an xlibResult", n, cmd, resp)
			}
			return xlibAck{node: n, lib: lib, index: index, result: res}, uncertain, nil
		}
		lastErr = fmt.Errorf("%s: %w", n, err)
		if !xlibNotApplied(err) {
			uncertain = true
		}
		time.Sleep(mixedPoll)
	}
	return ack, uncertain, fmt.Errorf("command %.40q not applied after bounded retries; last error: %v", cmd, lastErr)
}

// mustSubmit applies a command of the test's own, failing the test if no
// leader takes it. A command whose outcome was uncertain on some attempt
// is remembered: it may be applied twice.
func (c *xlibCluster) mustSubmit(cmd string) xlibAck {
	c.t.Helper()
	ack, uncertain, err := c.submit([]byte(cmd), nil)
	if uncertain {
		c.mu.Lock()
		c.uncertain[cmd] = true
		c.mu.Unlock()
	}
	if err != nil {
		c.t.Fatalf("%v; cluster: %s", err, c.describe())
	}
	c.mu.Lock()
	c.sent[cmd] = true
	c.mu.Unlock()
	return ack
}

// checkOnce checks that seq holds every command mustSubmit had
// acknowledged once, or twice for those retried after an uncertain
// outcome, plus extra, and nothing else.
func (c *xlibCluster) checkOnce(seq []xlibEntry, extra map[string]bool) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	want := map[string]bool{}
	for cmd := range c.sent {
		want[cmd] = true
	}
	for cmd := range extra {
		want[cmd] = true
	}
	count := map[string]int{}
	for _, e := range seq {
		count[e.Data]++
	}
	for cmd := range want {
		if n := count[cmd]; n == 0 || n > 1 && !c.uncertain[cmd] {
			c.t.Errorf("command %.40q applied %d times, want once", cmd, n)
		}
	}
	for cmd := range count {
		if !want[cmd] {
			c.t.Errorf("command %.40q applied but never sent", cmd)
		}
	}
}

// submitMany applies n commands of the test's own, one after another, and
// returns the last acknowledgement.
func (c *xlibCluster) submitMany(prefix string, n, pad int) xlibAck {
	c.t.Helper()
	var ack xlibAck
	for i := 0; i < n; i++ {
		ack = c.mustSubmit(xlibPadded(fmt.Sprintf("%s-%04d", prefix, i), pad))
	}
	return ack
}

// xlibPadded returns cmd followed by pad bytes of filler, so that
// snapshots grow past the transports' buffers.
func xlibPadded(cmd string, pad int) string {
	if pad == 0 {
		return cmd
	}
	return cmd + "|" + strings.Repeat("x", pad)
}

// waitApplied waits until every running member has applied index.
func (c *xlibCluster) waitApplied(index uint64) {
	c.t.Helper()
	c.eventually(mixedSettle, fmt.Sprintf("every running member has applied index %d", index), func() bool {
		for _, n := range c.memberNodes() {
			if n.running() && n.currentFSM().lastIndex() < index {
				return false
			}
		}
		return true
	})
}

// checkSameFSMs waits until every running member has applied last, then
// checks that their FSMs hold the same sequence of commands up to last,
// each index once and in increasing order, and returns that sequence. A
// restored snapshot holds the whole history before it, so this compares
// complete histories whatever each node restored.
func (c *xlibCluster) checkSameFSMs(last uint64) []xlibEntry {
	c.t.Helper()
	c.waitApplied(last)
	var first *xlibNode
	var seq []xlibEntry
	for _, n := range c.memberNodes() {
		if !n.running() {
			continue
		}
		fsm := n.currentFSM()
		if p := fsm.orderProblems(); len(p) > 0 {
			c.t.Errorf("%s applied entries out of order: %v", n, p)
		}
		got := fsm.sequence()
		for len(got) > 0 && got[len(got)-1].Index > last {
			got = got[:len(got)-1]
		}
		if first == nil {
			first, seq = n, got
			continue
		}
		if len(got) != len(seq) {
			c.t.Fatalf("%s holds %d commands up to index %d, %s holds %d", first, len(seq), last, n, len(got))
		}
		for i := range seq {
			if seq[i] != got[i] {
				c.t.Fatalf("command %d differs: %s holds %+v, %s holds %.80v", i+1, first, xlibShort(seq[i]), n, xlibShort(got[i]))
			}
		}
	}
	if first == nil {
		c.t.Fatal("no running member to compare")
	}
	return seq
}

// xlibShort drops a command's padding for messages.
func xlibShort(e xlibEntry) xlibEntry {
	if i := strings.IndexByte(e.Data, '|'); i >= 0 {
		e.Data = e.Data[:i] + "|…"
	}
	return e
}

// checkConfigurations waits until every running member reports want as its
// latest configuration.
func (c *xlibCluster) checkConfigurations(want []xlibMember) {
	c.t.Helper()
	sort.Slice(want, func(i, j int) bool { return want[i].ID < want[j].ID })
	var last string
	if !mixedPollUntil(mixedSettle, func() bool {
		var diffs []string
		for _, n := range c.memberNodes() {
			if !n.running() {
				continue
			}
			got, err := n.configuration()
			if err != nil {
				diffs = append(diffs, fmt.Sprintf("%s: %v", n, err))
			} else if fmt.Sprint(got) != fmt.Sprint(want) {
				diffs = append(diffs, fmt.Sprintf("%s has %v", n, got))
			}
		}
		last = strings.Join(diffs, "; ")
		return len(diffs) == 0
	}) {
		c.t.Fatalf("members do not agree on the configuration %v: %s; cluster: %s", want, last, c.describe())
	}
	c.logf("every running member reports the configuration %v", want)
}

// waitLogCompactedPast waits until n's log no longer holds the entry after
// index, so a follower whose log ends at index can only catch up from a
// snapshot, and returns n's snapshots at that moment.
func (c *xlibCluster) waitLogCompactedPast(n *xlibNode, index uint64) []xlibSnap {
	c.t.Helper()
	var snaps []xlibSnap
	c.eventually(mixedSettle, fmt.Sprintf("%s has a snapshot and has compacted its log past index %d", n, index+1), func() bool {
		first, _, err := n.logBounds()
		if err != nil || first <= index+1 {
			return false
		}
		snaps, err = n.snapshots()
		return err == nil && len(snaps) > 0
	})
	return snaps
}

// --- Concurrent clients. ---

// xlibLoad is a set of clients applying numbered commands through
// whichever node leads. Commands numbered at or above the gate wait until
// the test opens it further, so that the test's steps happen while
// commands are flowing.
type xlibLoad struct {
	c     *xlibCluster
	total int
	pad   int
	stop  chan struct{}
	wg    sync.WaitGroup

	gate  atomic.Int64
	next  atomic.Int64
	acked atomic.Int64

	mu        sync.Mutex // guards the fields below
	acks      []xlibAck
	ok        []bool
	uncertain map[int]bool
	byLib     map[mixedLib]int
	maxIndex  uint64
	errs      []error
}

func xlibCommand(k int) string { return fmt.Sprintf("load-%05d", k) }

func startXlibLoad(c *xlibCluster, total, clients, gate, pad int) *xlibLoad {
	l := &xlibLoad{
		c: c, total: total, pad: pad, stop: make(chan struct{}),
		acks: make([]xlibAck, total), ok: make([]bool, total),
		uncertain: make(map[int]bool), byLib: make(map[mixedLib]int),
	}
	l.gate.Store(int64(gate))
	for i := 0; i < clients; i++ {
		l.wg.Add(1)
		go l.client()
	}
	// Registered after the cluster's cleanup, so it runs first: clients
	// stop before the nodes do.
	c.t.Cleanup(func() {
		close(l.stop)
		mixedWait(func() error { l.wg.Wait(); return nil }, mixedSubmitDeadline+mixedFutureDeadline)
	})
	return l
}

func (l *xlibLoad) client() {
	defer l.wg.Done()
	for {
		k := int(l.next.Add(1) - 1)
		if k >= l.total {
			return
		}
		gated := time.Now()
		for int64(k) >= l.gate.Load() {
			select {
			case <-l.stop:
				return
			default:
			}
			if time.Since(gated) > 2*time.Minute {
				l.fail(fmt.Errorf("command %d waited for the gate for 2 minutes", k))
				return
			}
			time.Sleep(mixedPoll)
		}
		ack, uncertain, err := l.c.submit([]byte(xlibPadded(xlibCommand(k), l.pad)), l.stop)
		l.mu.Lock()
		if uncertain {
			l.uncertain[k] = true
		}
		if err == nil {
			l.acks[k], l.ok[k] = ack, true
			l.byLib[ack.lib]++
			l.maxIndex = max(l.maxIndex, ack.index)
		}
		l.mu.Unlock()
		if err != nil {
			l.fail(err)
			return
		}
		l.acked.Add(1)
	}
}

func (l *xlibLoad) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *xlibLoad) open(n int) { l.gate.Store(int64(min(n, l.total))) }

func (l *xlibLoad) highestAcked() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.maxIndex
}

func (l *xlibLoad) waitAcked(n int) {
	l.c.t.Helper()
	l.c.eventually(2*time.Minute, fmt.Sprintf("%d commands are acknowledged", n), func() bool {
		return l.acked.Load() >= int64(n) || l.failed()
	})
	l.checkNoErrors()
}

func (l *xlibLoad) failed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.errs) > 0
}

func (l *xlibLoad) checkNoErrors() {
	l.c.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) > 0 {
		l.c.t.Fatalf("%d clients failed, first: %v; cluster: %s", len(l.errs), l.errs[0], l.c.describe())
	}
}

// checkAgainst checks the load's outcome against the common FSM sequence:
// every command was acknowledged with the index and position the FSMs
// show, every acknowledged command was applied, and only commands with an
// uncertain attempt were applied more than once.
func (l *xlibLoad) checkAgainst(seq []xlibEntry) {
	t := l.c.t
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	count := make(map[string]int)
	for _, e := range seq {
		count[e.Data]++
	}
	problems := 0
	report := func(format string, args ...interface{}) {
		t.Helper()
		if problems < 10 {
			t.Errorf(format, args...)
		}
		problems++
	}
	dups := 0
	for k := 0; k < l.total; k++ {
		cmd := xlibPadded(xlibCommand(k), l.pad)
		if !l.ok[k] {
			report("command %s was never acknowledged", xlibCommand(k))
			continue
		}
		ack := l.acks[k]
		if ack.result.Index != ack.index {
			report("command %s: future index %d but the FSM of %s saw index %d", xlibCommand(k), ack.index, ack.node, ack.result.Index)
		}
		if p := ack.result.Seq; p < 1 || p > len(seq) || seq[p-1].Data != cmd || seq[p-1].Index != ack.index {
			report("command %s: %s (%s) answered position %d index %d, which the common sequence does not hold",
				xlibCommand(k), ack.node, ack.lib, p, ack.index)
		}
		switch n := count[cmd]; {
		case n == 0:
			report("command %s was acknowledged but not applied", xlibCommand(k))
		case n > 1 && !l.uncertain[k]:
			report("command %s was applied %d times although it was sent once", xlibCommand(k), n)
		case n > 1:
			dups++
		}
	}
	if problems > 10 {
		t.Errorf("... and %d more problems with the commands", problems-10)
	}
	t.Logf("%d commands acknowledged (by library of the leader: %v), %d retried after an uncertain outcome, %d of those applied twice",
		l.total, l.byLib, len(l.uncertain), dups)
}

// xlibSnapHas reports whether snaps lists a snapshot at index and term.
func xlibSnapHas(snaps []xlibSnap, index, term uint64) bool {
	for _, s := range snaps {
		if s.Index == index && s.Term == term {
			return true
		}
	}
	return false
}

// xlibSnapshotFiles reads state.bin and meta.json of one of n's snapshots
// as they are on disk. meta is every field of meta.json but the ID, which
// names the directory and differs between a leader's copy and the
// follower's; the rest (Version, Index, Term, the legacy Peers,
// Configuration, ConfigurationIndex, Size, CRC) must match.
func xlibSnapshotFiles(n *xlibNode, id string) (state []byte, meta map[string]string, err error) {
	dir := filepath.Join(n.dir, "snapshots", id)
	metaBytes, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return nil, nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(metaBytes, &fields); err != nil {
		return nil, nil, fmt.Errorf("%s/meta.json: %w", id, err)
	}
	meta = map[string]string{}
	for k, v := range fields {
		if k != "ID" {
			meta[k] = string(v)
		}
	}
	state, err = os.ReadFile(filepath.Join(dir, "state.bin"))
	return state, meta, err
}

// xlibSnapID returns the ID of the snapshot at index and term in snaps.
func xlibSnapID(snaps []xlibSnap, index, term uint64) string {
	for _, s := range snaps {
		if s.Index == index && s.Term == term {
			return s.ID
		}
	}
	return ""
}

// startFresh starts a node that has never been bootstrapped, to be added
// to the cluster.
func (c *xlibCluster) startFresh(n *xlibNode) {
	c.t.Helper()
	if err := n.start(nil, false); err != nil {
		c.t.Fatal(err)
	}
}

// change runs a membership change on l, which must lead. A change that
// fails, for example because leadership moved on a loaded machine, is
// retried once l leads again: every change used here is idempotent.
func (c *xlibCluster) change(l *xlibNode, what string, op func(l *xlibNode) error) {
	c.t.Helper()
	for attempt := 1; ; attempt++ {
		err := op(l)
		if err == nil {
			c.logf("%s (%s, term %d) committed: %s", l, l.library(), l.term(), what)
			return
		}
		if attempt == 4 {
			c.t.Fatalf("%s on %s failed three times, last: %v; cluster: %s", what, l, err, c.describe())
		}
		c.logf("%s on %s failed: %v; retrying once %s leads", what, l, err, l)
		c.leadWith(l)
	}
}
