package interop

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	qraft "github.com/quorumkit/raft"
)

// The pieces of a mixed cluster: one node of either library over real TCP
// on loopback, which the tests can cut off from the network, kill and
// restart on the same port with the stores it had. Everything here is
// named mixed* so that it cannot collide with other interop tests.

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

const (
	// Both libraries snapshot and compact their logs while the mixed
	// cluster tests run: a periodic check every 50-100ms takes a snapshot
	// once 64 entries accumulated, and compaction keeps 32 entries behind
	// the end of the log. A node that misses more than that, cut off or
	// down, can only catch up from a snapshot its leader sends, whichever
	// library either runs.
	mixedSnapshotThreshold = 64
	mixedTrailingLogs      = 32
	mixedSnapshotInterval  = 50 * time.Millisecond
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

// --- The state machine. ---

// mixedEntry is one command as an FSM applied it.
type mixedEntry struct {
	Index, Term uint64
	Data        string
}

// mixedResult is what the FSM answers for a command: the index it saw and
// the command's 1-based position in this FSM's sequence. The leader's
// answer reaches the client through ApplyFuture.Response, so a client
// learns where its command sits in every node's sequence.
type mixedResult struct {
	Index uint64
	Seq   int
}

// mixedFSM records every command it applies, in order. Each incarnation of
// a node gets a fresh one, as a restarted process would; the library fills
// it from the node's newest snapshot and replays the log after it.
//
// Its snapshot is the whole sequence, so a node that restores one holds
// the same history as a node that applied every entry, and the tests
// compare complete histories whatever each node restored. Both libraries'
// nodes share this FSM and its snapshot format (mixedSnapshotMagic), so a
// node of either library restores what a node of the other wrote: an
// InstallSnapshot carries these bytes unchanged from the leader's snapshot
// store into the follower's and then into its FSM.
type mixedFSM struct {
	mu       sync.Mutex // Apply, Snapshot and Restore run on the node's FSM goroutine; tests read concurrently
	entries  []mixedEntry
	restores []mixedRestore
	problems []string
}

// mixedRestore records one Restore: how many commands the restored state
// held and the index of the last one.
type mixedRestore struct {
	Commands  int
	LastIndex uint64
}

func (f *mixedFSM) record(index, term uint64, data []byte) interface{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.entries); n > 0 && index <= f.entries[n-1].Index {
		f.problems = append(f.problems, fmt.Sprintf("index %d applied after index %d", index, f.entries[n-1].Index))
	}
	f.entries = append(f.entries, mixedEntry{Index: index, Term: term, Data: string(data)})
	return mixedResult{Index: index, Seq: len(f.entries)}
}

// snapshot captures the sequence so far. The entries are never changed in
// place (record appends, restore replaces the slice), so the clipped slice
// stays as it is while Persist writes it and later applies go on.
func (f *mixedFSM) snapshot() mixedSnapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return mixedSnapshot{entries: slices.Clip(f.entries)}
}

// restore replaces the sequence with a snapshot's. What the FSM held
// before must be a prefix of it: a snapshot only ever moves a node forward
// along the one committed history, so anything else is a lost or
// rewritten command, which the tests report.
func (f *mixedFSM) restore(rc io.ReadCloser) error {
	defer rc.Close()
	entries, err := mixedDecodeSnapshot(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r := mixedRestore{Commands: len(entries)}
	if len(entries) > 0 {
		r.LastIndex = entries[len(entries)-1].Index
	}
	if len(entries) < len(f.entries) {
		f.problems = append(f.problems, fmt.Sprintf("restored a snapshot of %d commands (last index %d) over %d applied ones (last index %d)",
			len(entries), r.LastIndex, len(f.entries), f.entries[len(f.entries)-1].Index))
	} else {
		for i, e := range f.entries {
			if entries[i] != e {
				f.problems = append(f.problems, fmt.Sprintf("restored a snapshot whose command %d is %+v, but %+v was applied", i+1, entries[i], e))
				break
			}
		}
	}
	f.entries = entries
	f.restores = append(f.restores, r)
	return nil
}

// sequence returns a copy of what was applied so far.
func (f *mixedFSM) sequence() []mixedEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]mixedEntry(nil), f.entries...)
}

// lastIndex returns the index of the last command applied, 0 if none.
func (f *mixedFSM) lastIndex() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.entries) == 0 {
		return 0
	}
	return f.entries[len(f.entries)-1].Index
}

// restoreLog returns every Restore of this incarnation, oldest first.
func (f *mixedFSM) restoreLog() []mixedRestore {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]mixedRestore(nil), f.restores...)
}

func (f *mixedFSM) orderProblems() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.problems...)
}

// mixedSnapshotMagic opens every mixed FSM snapshot. The rest is the
// number of commands, then each command's index, term and data length as
// uvarints followed by the data, and nothing after the last.
const mixedSnapshotMagic = "quorumkit-interop-mixed-fsm-v1\n"

// mixedSnapshot is a captured sequence.
type mixedSnapshot struct{ entries []mixedEntry }

func (s mixedSnapshot) persist(sink io.WriteCloser, cancel func() error) error {
	w := bufio.NewWriter(sink)
	w.WriteString(mixedSnapshotMagic)
	var buf [binary.MaxVarintLen64]byte
	putUvarint := func(v uint64) { w.Write(buf[:binary.PutUvarint(buf[:], v)]) }
	putUvarint(uint64(len(s.entries)))
	for _, e := range s.entries {
		putUvarint(e.Index)
		putUvarint(e.Term)
		putUvarint(uint64(len(e.Data)))
		w.WriteString(e.Data)
	}
	// bufio.Writer keeps the first write error and returns it here.
	if err := w.Flush(); err != nil {
		cancel()
		return fmt.Errorf("writing the snapshot: %w", err)
	}
	return sink.Close()
}

// mixedDecodeSnapshot reads a snapshot persist wrote, checking that it is
// whole and that its indexes increase.
func mixedDecodeSnapshot(rd io.Reader) ([]mixedEntry, error) {
	r := bufio.NewReader(rd)
	magic := make([]byte, len(mixedSnapshotMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != mixedSnapshotMagic {
		return nil, fmt.Errorf("not a mixed FSM snapshot: starts with %q (%v)", magic, err)
	}
	count, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, fmt.Errorf("reading the snapshot's command count: %w", err)
	}
	const maxCommands, maxData = 1 << 24, 1 << 20
	if count > maxCommands {
		return nil, fmt.Errorf("snapshot claims %d commands", count)
	}
	entries := make([]mixedEntry, 0, count)
	for i := uint64(0); i < count; i++ {
		var e mixedEntry
		var size uint64
		for _, v := range []*uint64{&e.Index, &e.Term, &size} {
			if *v, err = binary.ReadUvarint(r); err != nil {
				return nil, fmt.Errorf("reading command %d of %d: %w", i+1, count, err)
			}
		}
		if size > maxData {
			return nil, fmt.Errorf("command %d of the snapshot claims %d bytes", i+1, size)
		}
		data := make([]byte, size)
		if _, err := io.ReadFull(r, data); err != nil {
			return nil, fmt.Errorf("reading command %d of %d: %w", i+1, count, err)
		}
		e.Data = string(data)
		if n := len(entries); n > 0 && e.Index <= entries[n-1].Index {
			return nil, fmt.Errorf("snapshot holds index %d after index %d", e.Index, entries[n-1].Index)
		}
		entries = append(entries, e)
	}
	if n, _ := r.Read(make([]byte, 1)); n > 0 {
		return nil, errors.New("snapshot holds bytes after its last command")
	}
	return entries, nil
}

type mixedOurFSM struct{ *mixedFSM }

func (f mixedOurFSM) Apply(l *qraft.Log) interface{} { return f.record(l.Index, l.Term, l.Data) }
func (f mixedOurFSM) Snapshot() (qraft.FSMSnapshot, error) {
	return mixedOurSnapshot{f.snapshot()}, nil
}
func (f mixedOurFSM) Restore(rc io.ReadCloser) error { return f.restore(rc) }

type mixedOurSnapshot struct{ mixedSnapshot }

func (s mixedOurSnapshot) Persist(sink qraft.SnapshotSink) error { return s.persist(sink, sink.Cancel) }
func (s mixedOurSnapshot) Release()                              {}

type mixedRefFSM struct{ *mixedFSM }

func (f mixedRefFSM) Apply(l *hraft.Log) interface{} { return f.record(l.Index, l.Term, l.Data) }
func (f mixedRefFSM) Snapshot() (hraft.FSMSnapshot, error) {
	return mixedRefSnapshot{f.snapshot()}, nil
}
func (f mixedRefFSM) Restore(rc io.ReadCloser) error { return f.restore(rc) }

type mixedRefSnapshot struct{ mixedSnapshot }

func (s mixedRefSnapshot) Persist(sink hraft.SnapshotSink) error { return s.persist(sink, sink.Cancel) }
func (s mixedRefSnapshot) Release()                              {}

// --- Logs. ---

// mixedLogSink keeps the last lines the nodes logged, to show them when a
// test fails. It never writes to the test itself, so goroutines that log
// after a test has ended are harmless.
type mixedLogSink struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
}

const mixedLogLines = 3000

func (s *mixedLogSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lines == nil {
		s.lines = make([]string, mixedLogLines)
	}
	s.lines[s.next] = strings.TrimRight(string(p), "\n")
	s.next++
	if s.next == len(s.lines) {
		s.next, s.full = 0, true
	}
	return len(p), nil
}

// String returns the kept lines, oldest first.
func (s *mixedLogSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var kept []string
	if s.full {
		kept = append(kept, s.lines[s.next:]...)
	}
	kept = append(kept, s.lines[:s.next]...)
	return strings.Join(kept, "\n")
}

// --- A node. ---

// mixedNode is one server of a mixed cluster. Its identity, address and
// stores outlive its incarnations; kill and restart replace the running
// instance (transport, FSM and Raft) and keep the stores, as a process
// restarting on the same disk would.
type mixedNode struct {
	nw     *mixedNetwork
	id     string
	lib    mixedLib
	addr   string
	timing mixedTiming
	logger hclog.Logger

	// The node's disk, kept across restarts. Only the fields of lib are set.
	//
	// A reference node keeps its snapshots in a FileSnapshotStore, not in
	// the reference's InmemSnapshotStore: that one makes a snapshot its
	// latest when it is created, before it is written, and Open hands out
	// the bytes written so far. A reference leader sending a snapshot while
	// its next one is being persisted then races with the write and sends
	// a truncated snapshot, its meta's Size being that of the truncated
	// bytes (seen here, with the race detector's report, as our follower
	// failing to restore a snapshot cut at 32768 bytes: ours stops a node
	// whose FSM failed to restore, where the reference answers the leader
	// with an error and goes on). Ours publishes a snapshot only when its
	// sink is closed.
	ourStore *qraft.InmemStore
	ourSnaps *qraft.InmemSnapshotStore
	refStore *hraft.InmemStore
	refSnaps *hraft.FileSnapshotStore

	nodeRaft // its mu also guards layer and fsm, which a restart replaces
	layer    *mixedLayer
	fsm      *mixedFSM
	// incarnation counts starts, for log messages.
	incarnation int
}

// mixedRetainSnapshots is how many snapshots a reference node's
// FileSnapshotStore keeps.
const mixedRetainSnapshots = 2

// newMixedNode binds a port for a node on nw; start makes it run. A
// reference node keeps its snapshots in dir.
func newMixedNode(nw *mixedNetwork, id string, lib mixedLib, timing mixedTiming, logger hclog.Logger, dir string) (*mixedNode, error) {
	n := &mixedNode{nw: nw, id: id, lib: lib, timing: timing, logger: logger.Named(id)}
	switch lib {
	case libOurs:
		n.ourStore, n.ourSnaps = qraft.NewInmemStore(), qraft.NewInmemSnapshotStore()
	case libRef:
		snaps, err := hraft.NewFileSnapshotStoreWithLogger(dir, mixedRetainSnapshots, n.logger.Named("snapshot"))
		if err != nil {
			return nil, err
		}
		n.refStore, n.refSnaps = hraft.NewInmemStore(), snaps
	}
	layer, err := nw.listen("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	n.addr, n.layer = layer.Addr().String(), layer
	return n, nil
}

func (n *mixedNode) String() string { return n.id }

// ourConfig and refConfig are the same settings for each library.
func (n *mixedNode) ourConfig() *qraft.Config {
	c := qraft.DefaultConfig()
	c.LocalID = qraft.ServerID(n.id)
	c.HeartbeatTimeout = n.timing.heartbeat
	c.ElectionTimeout = n.timing.election
	c.LeaderLeaseTimeout = n.timing.lease
	c.CommitTimeout = n.timing.commit
	c.SnapshotThreshold = mixedSnapshotThreshold
	c.TrailingLogs = mixedTrailingLogs
	c.SnapshotInterval = mixedSnapshotInterval
	c.Logger = n.logger
	return c
}

func (n *mixedNode) refConfig() *hraft.Config {
	c := hraft.DefaultConfig()
	c.LocalID = hraft.ServerID(n.id)
	c.HeartbeatTimeout = n.timing.heartbeat
	c.ElectionTimeout = n.timing.election
	c.LeaderLeaseTimeout = n.timing.lease
	c.CommitTimeout = n.timing.commit
	c.SnapshotThreshold = mixedSnapshotThreshold
	c.TrailingLogs = mixedTrailingLogs
	c.SnapshotInterval = mixedSnapshotInterval
	c.Logger = n.logger
	return c
}

// mixedServer is a member of the bootstrap configuration.
type mixedServer struct{ id, addr string }

// nodeRaft is a test node's running raft, of whichever library, both nil
// while the node is down. The driver replaces it under mu; clients read it.
type nodeRaft struct {
	mu   sync.RWMutex
	ours *qraft.Raft
	ref  *hraft.Raft
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
func startOurRaft(conf *qraft.Config, fsm qraft.FSM, logs qraft.LogStore, stable qraft.StableStore, snaps qraft.SnapshotStore, layer *mixedLayer, netLogger hclog.Logger, voters []mixedServer) (*qraft.Raft, error) {
	trans := qraft.NewNetworkTransportWithConfig(&qraft.NetworkTransportConfig{
		Stream: mixedOurLayer{layer}, MaxPool: 3, Timeout: mixedRPCTimeout, Logger: netLogger,
	})
	if len(voters) > 0 {
		var cfg qraft.Configuration
		for _, v := range voters {
			cfg.Servers = append(cfg.Servers, qraft.Server{Suffrage: qraft.Voter, ID: qraft.ServerID(v.id), Address: qraft.ServerAddress(v.addr)})
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
func startRefRaft(conf *hraft.Config, fsm hraft.FSM, logs hraft.LogStore, stable hraft.StableStore, snaps hraft.SnapshotStore, layer *mixedLayer, netLogger hclog.Logger, voters []mixedServer) (*hraft.Raft, error) {
	trans := hraft.NewNetworkTransportWithConfig(&hraft.NetworkTransportConfig{
		Stream: mixedRefLayer{layer}, MaxPool: 3, Timeout: mixedRPCTimeout, Logger: netLogger,
	})
	if len(voters) > 0 {
		var cfg hraft.Configuration
		for _, v := range voters {
			cfg.Servers = append(cfg.Servers, hraft.Server{Suffrage: hraft.Voter, ID: hraft.ServerID(v.id), Address: hraft.ServerAddress(v.addr)})
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

// start runs a new incarnation on the node's current layer, bootstrapping
// the stores first when servers is not empty.
func (n *mixedNode) start(servers []mixedServer) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.incarnation++
	n.fsm = &mixedFSM{}
	netLogger := n.logger.Named("net")
	var err error
	switch n.lib {
	case libOurs:
		n.ours, err = startOurRaft(n.ourConfig(), mixedOurFSM{n.fsm}, n.ourStore, n.ourStore, n.ourSnaps, n.layer, netLogger, servers)
	case libRef:
		n.ref, err = startRefRaft(n.refConfig(), mixedRefFSM{n.fsm}, n.refStore, n.refStore, n.refSnaps, n.layer, netLogger, servers)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", n.id, err)
	}
	n.logger.Info("test: node started", "incarnation", n.incarnation, "address", n.addr)
	return nil
}

// kill stops the running incarnation as a crash would: its connections
// drop at once, then its goroutines stop. The stores are kept.
func (n *mixedNode) kill() error {
	n.mu.Lock()
	ours, ref, layer := n.ours, n.ref, n.layer
	n.ours, n.ref = nil, nil
	n.mu.Unlock()
	if ours == nil && ref == nil {
		return nil
	}
	n.logger.Info("test: killing node", "incarnation", n.incarnation)
	layer.partition()
	err := mixedWait(func() error {
		if ours != nil {
			return ours.Shutdown().Error()
		}
		return ref.Shutdown().Error()
	}, mixedFutureDeadline)
	layer.Close() // the transport closed the listener already, unless Shutdown hung
	if err != nil {
		return fmt.Errorf("shutting down %s: %w", n.id, err)
	}
	return nil
}

// restart starts a new incarnation on the same port with the same stores.
func (n *mixedNode) restart() error {
	layer, err := n.nw.listen(n.addr)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.layer = layer
	n.mu.Unlock()
	return n.start(nil)
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

// lastIndex returns the index of the node's last log entry, from its store
// when it is down.
func (n *mixedNode) lastIndex() uint64 {
	n.mu.RLock()
	defer n.mu.RUnlock()
	switch {
	case n.ours != nil:
		return n.ours.LastIndex()
	case n.ref != nil:
		return n.ref.LastIndex()
	case n.ourStore != nil:
		i, _ := n.ourStore.LastIndex()
		return i
	default:
		i, _ := n.refStore.LastIndex()
		return i
	}
}

// storedLastIndex returns the index of the last entry in the node's log
// store, which can trail lastIndex while writes are in flight.
func (n *mixedNode) storedLastIndex() uint64 {
	if n.ourStore != nil {
		i, _ := n.ourStore.LastIndex()
		return i
	}
	i, _ := n.refStore.LastIndex()
	return i
}

// firstIndex returns the index of the first entry in the node's log
// store: everything before it was compacted away (0 if the log is empty).
func (n *mixedNode) firstIndex() uint64 {
	if n.ourStore != nil {
		i, _ := n.ourStore.FirstIndex()
		return i
	}
	i, _ := n.refStore.FirstIndex()
	return i
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

// mixedSnap is the newest snapshot in a node's snapshot store.
type mixedSnap struct {
	ID          string
	Index, Term uint64
}

// newestSnapshot returns the newest snapshot in the node's snapshot store;
// ok is false if there is none.
func (n *mixedNode) newestSnapshot() (s mixedSnap, ok bool, err error) {
	if n.ourSnaps != nil {
		metas, err := n.ourSnaps.List()
		if err != nil || len(metas) == 0 {
			return s, false, err
		}
		return mixedSnap{ID: metas[0].ID, Index: metas[0].Index, Term: metas[0].Term}, true, nil
	}
	metas, err := n.refSnaps.List()
	if err != nil || len(metas) == 0 {
		return s, false, err
	}
	return mixedSnap{ID: metas[0].ID, Index: metas[0].Index, Term: metas[0].Term}, true, nil
}

// stat returns one of the node's Stats, "" when it is down.
func (n *mixedNode) stat(key string) string {
	n.mu.RLock()
	defer n.mu.RUnlock()
	switch {
	case n.ours != nil:
		return n.ours.Stats()[key]
	case n.ref != nil:
		return n.ref.Stats()[key]
	}
	return ""
}

// mixedApplyFuture is the method set both libraries' ApplyFuture share.
type mixedApplyFuture interface {
	Error() error
	Index() uint64
	Response() interface{}
}

// apply submits cmd to this node and waits, at most mixedFutureDeadline,
// for the outcome: the entry's index and the FSM's answer.
func (n *mixedNode) apply(cmd []byte, enqueueTimeout time.Duration) (uint64, interface{}, error) {
	n.mu.RLock()
	ours, ref := n.ours, n.ref
	n.mu.RUnlock()
	var f mixedApplyFuture
	switch {
	case ours != nil:
		f = ours.Apply(cmd, enqueueTimeout)
	case ref != nil:
		f = ref.Apply(cmd, enqueueTimeout)
	default:
		return 0, nil, errMixedNodeDown
	}
	if err := mixedWait(f.Error, mixedFutureDeadline); err != nil {
		return 0, nil, err
	}
	return f.Index(), f.Response(), nil
}

// mixedLogEntry is a raft log entry of either library.
type mixedLogEntry struct {
	Index, Term uint64
	Type        uint8
	Data        string
}

// logEntry reads one entry from the node's log store.
func (n *mixedNode) logEntry(index uint64) (mixedLogEntry, error) {
	if n.ourStore != nil {
		var l qraft.Log
		if err := n.ourStore.GetLog(index, &l); err != nil {
			return mixedLogEntry{}, err
		}
		return mixedLogEntry{Index: l.Index, Term: l.Term, Type: uint8(l.Type), Data: string(l.Data)}, nil
	}
	var l hraft.Log
	if err := n.refStore.GetLog(index, &l); err != nil {
		return mixedLogEntry{}, err
	}
	return mixedLogEntry{Index: l.Index, Term: l.Term, Type: uint8(l.Type), Data: string(l.Data)}, nil
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
