package raft

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
)

// Strict test doubles: wrappers around the parts a user gives NewRaft that
// fail the test on any call the contract in ARCHITECTURE.md ("Calls into
// user code") rules out: a call after Shutdown returned or after Close, a
// second Close or Release, a Write into a finished sink, two calls at once
// on an object that is only ever called from one goroutine at a time. The
// cluster harness (cluster_test.go) runs every node over them.

// strictNode is the contract checker of one Raft instance: the wrappers of
// its parts share it. A node restarted on the same stores gets a new one, so
// a late call from the old instance is still caught.
type strictNode struct {
	t    *testing.T
	name string

	mu sync.Mutex
	// stopped is set once the node's Shutdown returned.
	stopped bool
	// fsmActive names the FSM call in progress, if any.
	fsmActive string
	// stableActive names the StableStore call in progress, if any.
	stableActive string
	// sinks and snapshots are every sink created and every FSMSnapshot
	// handed out, to check at Shutdown that each was finished.
	sinks     []*strictSink
	snapshots []*strictFSMSnapshot
	// readers are every snapshot reader SnapshotStore.Open handed out.
	readers []*strictReader
}

func newStrictNode(t *testing.T, name string) *strictNode {
	return &strictNode{t: t, name: name}
}

// violation fails the test with a message that names the node and the
// broken rule.
func (n *strictNode) violation(format string, args ...any) {
	n.t.Helper()
	n.t.Errorf("%s: contract with user code broken: %s", n.name, fmt.Sprintf(format, args...))
}

// call checks that anything may be called at all: the node's Shutdown has
// not returned.
func (n *strictNode) call(what string) {
	n.mu.Lock()
	stopped := n.stopped
	n.mu.Unlock()
	if stopped {
		n.violation("%s called after Shutdown returned", what)
	}
}

// enter and leave bracket a call on an object the reference calls from one
// goroutine at a time; active is the field naming the call in progress.
func (n *strictNode) enter(active *string, what string) {
	n.call(what)
	n.mu.Lock()
	other := *active
	if other == "" {
		*active = what
	}
	n.mu.Unlock()
	if other != "" {
		n.violation("%s called while %s is still running", what, other)
	}
}

func (n *strictNode) leave(active *string, what string) {
	n.mu.Lock()
	if *active == what {
		*active = ""
	}
	n.mu.Unlock()
}

// shutdownReturned is called by the harness once the node's Shutdown
// returned: from here on nothing may be called, and every sink and FSM
// snapshot must have been finished.
func (n *strictNode) shutdownReturned() {
	n.mu.Lock()
	n.stopped = true
	sinks, snaps, readers := n.sinks, n.snapshots, n.readers
	n.mu.Unlock()
	for _, r := range readers {
		if !r.closed.Load() {
			n.violation("snapshot %s opened by SnapshotStore.Open and never closed by Shutdown", r.id)
		}
	}
	for _, s := range sinks {
		if !s.finished() {
			n.violation("snapshot sink %s neither closed nor cancelled by Shutdown", s.ID())
		}
	}
	for _, s := range snaps {
		if !s.released() {
			n.violation("FSM snapshot never released by Shutdown")
		}
	}
}

// strictTransport wraps an InmemTransport (embedded, so that Connect routes
// to it) the way some applications wrap theirs: every Consumer call returns
// a new channel fed by a forwarding goroutine, so a node that asked twice
// would lose requests to a channel nobody reads. Pipelines it opens panic
// on a second Close, as one that closes a channel in Close does.
type strictTransport struct {
	*InmemTransport
	n *strictNode

	mu         sync.Mutex
	consumers  int
	heartbeats int // SetHeartbeatHandler calls
	closed     bool
	// doneCh, closed by Close, stops the forwarding goroutines.
	doneCh chan struct{}

	// refuseAppends, while set, makes the forwarding goroutine answer
	// every incoming AppendEntries with an error instead of delivering it;
	// refused counts those answers.
	refuseAppends atomic.Bool
	refused       atomic.Int64

	// appends counts the AppendEntries requests sent, pipelined or not;
	// heartbeatsSent those that carry only the term and the leader.
	appends        atomic.Int64
	heartbeatsSent atomic.Int64
	// dropHeartbeats, while set, fails every heartbeat this node sends.
	dropHeartbeats atomic.Bool
	// heartbeatGate, while set, holds every heartbeat this node sends,
	// already built, until it takes a value from the channel (closing it
	// lets them all through); heartbeatsHeld counts those held.
	heartbeatGate  atomic.Pointer[chan struct{}]
	heartbeatsHeld atomic.Int64
	// readIndexCalls counts the ReadIndex requests the node sent;
	// readIndexHook, when set, runs before each is sent, and an error it
	// returns is the request's answer.
	readIndexCalls atomic.Int64
	readIndexHook  atomic.Pointer[func() error]
	// onDeliver, when set, sees every request Consumer delivers.
	onDeliver atomic.Pointer[func(RPC)]
}

// errRefusedByTest answers an AppendEntries refused by refuseAppends.
var errRefusedByTest = errors.New("AppendEntries refused by the test")

func newStrictTransport(n *strictNode, inner *InmemTransport) *strictTransport {
	return &strictTransport{InmemTransport: inner, n: n, doneCh: make(chan struct{})}
}

// use checks a call on the transport: not after Close, not after Shutdown.
func (s *strictTransport) use(what string) {
	s.n.call("Transport." + what)
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		s.n.violation("Transport.%s called after Close", what)
	}
}

func (s *strictTransport) Consumer() <-chan RPC {
	s.use("Consumer")
	s.mu.Lock()
	s.consumers++
	count := s.consumers
	s.mu.Unlock()
	if count == 2 {
		s.n.violation("Transport.Consumer called more than once; the reference calls it once and keeps the channel")
	}
	ch := make(chan RPC)
	if count > 3 {
		// Enough to show the harm: a node that keeps asking would
		// otherwise pile up goroutines while the test times out.
		return ch
	}
	in := s.InmemTransport.Consumer()
	go func() {
		for {
			select {
			case rpc := <-in:
				if fn := s.onDeliver.Load(); fn != nil {
					(*fn)(rpc)
				}
				if _, ok := rpc.Command.(*AppendEntriesRequest); ok && s.refuseAppends.Load() {
					s.refused.Add(1)
					rpc.Respond(nil, errRefusedByTest)
					continue
				}
				select {
				case ch <- rpc:
				case <-s.doneCh:
					return
				}
			case <-s.doneCh:
				return
			}
		}
	}()
	return ch
}

func (s *strictTransport) LocalAddr() ServerAddress {
	s.use("LocalAddr")
	return s.InmemTransport.LocalAddr()
}

func (s *strictTransport) AppendEntriesPipeline(id ServerID, target ServerAddress) (AppendPipeline, error) {
	s.use("AppendEntriesPipeline")
	p, err := s.InmemTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	return &strictPipeline{inner: p, n: s.n, closedCh: make(chan struct{}), appends: &s.appends}, nil
}

func (s *strictTransport) AppendEntries(id ServerID, target ServerAddress, args *AppendEntriesRequest, resp *AppendEntriesResponse) error {
	s.use("AppendEntries")
	s.appends.Add(1)
	if len(args.Entries) == 0 && args.PrevLogEntry == 0 && args.LeaderCommitIndex == 0 {
		s.heartbeatsSent.Add(1)
		if s.dropHeartbeats.Load() {
			return errors.New("heartbeat dropped by the test")
		}
		if gate := s.heartbeatGate.Load(); gate != nil {
			s.heartbeatsHeld.Add(1)
			<-*gate
			s.heartbeatsHeld.Add(-1)
		}
	}
	return s.InmemTransport.AppendEntries(id, target, args, resp)
}

func (s *strictTransport) RequestVote(id ServerID, target ServerAddress, args *RequestVoteRequest, resp *RequestVoteResponse) error {
	s.use("RequestVote")
	return s.InmemTransport.RequestVote(id, target, args, resp)
}

func (s *strictTransport) RequestPreVote(id ServerID, target ServerAddress, args *RequestPreVoteRequest, resp *RequestPreVoteResponse) error {
	s.use("RequestPreVote")
	return s.InmemTransport.RequestPreVote(id, target, args, resp)
}

func (s *strictTransport) InstallSnapshot(id ServerID, target ServerAddress, args *InstallSnapshotRequest, resp *InstallSnapshotResponse, data io.Reader) error {
	s.use("InstallSnapshot")
	return s.InmemTransport.InstallSnapshot(id, target, args, resp, data)
}

func (s *strictTransport) EncodePeer(id ServerID, addr ServerAddress) []byte {
	s.use("EncodePeer")
	return s.InmemTransport.EncodePeer(id, addr)
}

func (s *strictTransport) DecodePeer(b []byte) ServerAddress {
	s.use("DecodePeer")
	return s.InmemTransport.DecodePeer(b)
}

func (s *strictTransport) SetHeartbeatHandler(cb func(RPC)) {
	s.use("SetHeartbeatHandler")
	s.mu.Lock()
	s.heartbeats++
	count := s.heartbeats
	s.mu.Unlock()
	if count > 1 {
		s.n.violation("Transport.SetHeartbeatHandler called %d times; the reference calls it once", count)
	}
	s.InmemTransport.SetHeartbeatHandler(cb)
}

func (s *strictTransport) TimeoutNow(id ServerID, target ServerAddress, args *TimeoutNowRequest, resp *TimeoutNowResponse) error {
	s.use("TimeoutNow")
	return s.InmemTransport.TimeoutNow(id, target, args, resp)
}

// ReadIndex is the WithReadIndex a follower calls for a follower read;
// readIndexCalls counts the calls.
func (s *strictTransport) ReadIndex(id ServerID, target ServerAddress, args *ReadIndexRequest, resp *ReadIndexResponse) error {
	s.use("ReadIndex")
	s.readIndexCalls.Add(1)
	if hook := s.readIndexHook.Load(); hook != nil {
		if err := (*hook)(); err != nil {
			return err
		}
	}
	return s.InmemTransport.ReadIndex(id, target, args, resp)
}

// Close is the WithClose the node calls when it stops.
func (s *strictTransport) Close() error {
	s.mu.Lock()
	again := s.closed
	s.closed = true
	s.mu.Unlock()
	if again {
		s.n.violation("Transport.Close called twice")
		return nil
	}
	close(s.doneCh)
	return s.InmemTransport.Close()
}

// strictPipeline wraps an AppendPipeline. Its Close closes a channel, as a
// hand-written pipeline's would: a second Close panics.
type strictPipeline struct {
	inner AppendPipeline
	n     *strictNode
	// appends is the transport's count of AppendEntries sent.
	appends *atomic.Int64

	mu        sync.Mutex
	sending   bool // an AppendEntries call is running
	consumers int
	closedCh  chan struct{}
}

func (p *strictPipeline) isClosed() bool {
	select {
	case <-p.closedCh:
		return true
	default:
		return false
	}
}

func (p *strictPipeline) AppendEntries(args *AppendEntriesRequest, resp *AppendEntriesResponse) (AppendFuture, error) {
	p.n.call("AppendPipeline.AppendEntries")
	p.appends.Add(1)
	if p.isClosed() {
		p.n.violation("AppendPipeline.AppendEntries called after Close")
		return nil, ErrPipelineShutdown
	}
	p.mu.Lock()
	busy := p.sending
	p.sending = true
	p.mu.Unlock()
	if busy {
		p.n.violation("two AppendPipeline.AppendEntries calls at once")
	}
	defer func() {
		p.mu.Lock()
		p.sending = false
		p.mu.Unlock()
	}()
	return p.inner.AppendEntries(args, resp)
}

func (p *strictPipeline) Consumer() <-chan AppendFuture {
	p.n.call("AppendPipeline.Consumer")
	p.mu.Lock()
	p.consumers++
	count := p.consumers
	p.mu.Unlock()
	if count > 1 {
		p.n.violation("AppendPipeline.Consumer called %d times; the reference calls it once per pipeline", count)
	}
	return p.inner.Consumer()
}

func (p *strictPipeline) Close() error {
	p.n.call("AppendPipeline.Close")
	p.mu.Lock()
	busy := p.sending
	p.mu.Unlock()
	if busy {
		p.n.violation("AppendPipeline.Close called while AppendEntries is running")
	}
	if p.isClosed() {
		p.n.violation("AppendPipeline.Close called twice")
	}
	close(p.closedCh) // panics on a second Close, as a user's pipeline would
	return p.inner.Close()
}

// strictLogStore wraps a LogStore: nothing after Shutdown returned. The
// reference calls a LogStore from several goroutines at once (replication
// reads while the run loop writes), so concurrency is allowed.
type strictLogStore struct {
	inner LogStore
	n     *strictNode
}

// strictLogs wraps inner, keeping the optional interfaces it implements.
func strictLogs(n *strictNode, inner LogStore) LogStore {
	base := strictLogStore{inner: inner, n: n}
	_, mono := inner.(MonotonicLogStore)
	_, commit := inner.(CommitTrackingLogStore)
	switch {
	case mono && commit:
		return &strictMonotonicCommitLogStore{strictCommitLogStore{base}}
	case mono:
		return &strictMonotonicLogStore{base}
	case commit:
		return &strictCommitLogStore{base}
	}
	return &base
}

func (s *strictLogStore) FirstIndex() (uint64, error) {
	s.n.call("LogStore.FirstIndex")
	return s.inner.FirstIndex()
}

func (s *strictLogStore) LastIndex() (uint64, error) {
	s.n.call("LogStore.LastIndex")
	return s.inner.LastIndex()
}

func (s *strictLogStore) GetLog(index uint64, log *Log) error {
	s.n.call("LogStore.GetLog")
	return s.inner.GetLog(index, log)
}

func (s *strictLogStore) StoreLog(log *Log) error {
	s.n.call("LogStore.StoreLog")
	return s.inner.StoreLog(log)
}

func (s *strictLogStore) StoreLogs(logs []*Log) error {
	s.n.call("LogStore.StoreLogs")
	return s.inner.StoreLogs(logs)
}

func (s *strictLogStore) DeleteRange(min, max uint64) error {
	s.n.call("LogStore.DeleteRange")
	return s.inner.DeleteRange(min, max)
}

type strictMonotonicLogStore struct{ strictLogStore }

func (s *strictMonotonicLogStore) IsMonotonic() bool {
	s.n.call("MonotonicLogStore.IsMonotonic")
	return s.inner.(MonotonicLogStore).IsMonotonic()
}

type strictCommitLogStore struct{ strictLogStore }

func (s *strictCommitLogStore) StageCommitIndex(idx uint64) error {
	s.n.call("CommitTrackingLogStore.StageCommitIndex")
	return s.inner.(CommitTrackingLogStore).StageCommitIndex(idx)
}

func (s *strictCommitLogStore) GetCommitIndex() (uint64, error) {
	s.n.call("CommitTrackingLogStore.GetCommitIndex")
	return s.inner.(CommitTrackingLogStore).GetCommitIndex()
}

type strictMonotonicCommitLogStore struct{ strictCommitLogStore }

func (s *strictMonotonicCommitLogStore) IsMonotonic() bool {
	s.n.call("MonotonicLogStore.IsMonotonic")
	return s.inner.(MonotonicLogStore).IsMonotonic()
}

// strictStableStore wraps a StableStore: nothing after Shutdown returned,
// and one call at a time (the reference calls it from its run loop only).
type strictStableStore struct {
	inner StableStore
	n     *strictNode
}

func (s *strictStableStore) Set(key, val []byte) error {
	s.n.enter(&s.n.stableActive, "StableStore.Set")
	defer s.n.leave(&s.n.stableActive, "StableStore.Set")
	return s.inner.Set(key, val)
}

func (s *strictStableStore) Get(key []byte) ([]byte, error) {
	s.n.enter(&s.n.stableActive, "StableStore.Get")
	defer s.n.leave(&s.n.stableActive, "StableStore.Get")
	return s.inner.Get(key)
}

func (s *strictStableStore) SetUint64(key []byte, val uint64) error {
	s.n.enter(&s.n.stableActive, "StableStore.SetUint64")
	defer s.n.leave(&s.n.stableActive, "StableStore.SetUint64")
	return s.inner.SetUint64(key, val)
}

func (s *strictStableStore) GetUint64(key []byte) (uint64, error) {
	s.n.enter(&s.n.stableActive, "StableStore.GetUint64")
	defer s.n.leave(&s.n.stableActive, "StableStore.GetUint64")
	return s.inner.GetUint64(key)
}

// strictSnapshotStore wraps a SnapshotStore: nothing after Shutdown
// returned; every sink it creates is strict.
type strictSnapshotStore struct {
	inner SnapshotStore
	n     *strictNode
}

func (s *strictSnapshotStore) Create(version SnapshotVersion, index, term uint64, configuration Configuration,
	configurationIndex uint64, trans Transport) (SnapshotSink, error) {
	s.n.call("SnapshotStore.Create")
	sink, err := s.inner.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	ss := &strictSink{inner: sink, n: s.n}
	s.n.mu.Lock()
	s.n.sinks = append(s.n.sinks, ss)
	s.n.mu.Unlock()
	return ss, nil
}

func (s *strictSnapshotStore) List() ([]*SnapshotMeta, error) {
	s.n.call("SnapshotStore.List")
	return s.inner.List()
}

func (s *strictSnapshotStore) Open(id string) (*SnapshotMeta, io.ReadCloser, error) {
	s.n.call("SnapshotStore.Open")
	meta, rc, err := s.inner.Open(id)
	if err != nil {
		return meta, rc, err
	}
	r := &strictReader{inner: rc, n: s.n, id: id}
	s.n.mu.Lock()
	s.n.readers = append(s.n.readers, r)
	s.n.mu.Unlock()
	return meta, r, nil
}

// strictReader wraps a snapshot reader: no Read after Close. Closing twice
// is allowed: FSM.Restore closes the reader it is given, and the library
// closes it again afterwards, as the reference does.
type strictReader struct {
	inner  io.ReadCloser
	n      *strictNode
	id     string
	closed atomic.Bool
}

func (r *strictReader) Read(p []byte) (int, error) {
	if r.closed.Load() {
		r.n.violation("snapshot %s read after Close", r.id)
	}
	return r.inner.Read(p)
}

func (r *strictReader) Close() error {
	r.closed.Store(true)
	return r.inner.Close()
}

// strictSink wraps a SnapshotSink. The library closes or cancels it once,
// and writes nothing after. An FSMSnapshot's Persist closes the sink itself
// and the library closes it again afterwards, as the reference does; calls
// made inside Persist (persisting set) are the user's and are not counted
// against the library.
type strictSink struct {
	inner SnapshotSink
	n     *strictNode

	mu         sync.Mutex
	persisting bool
	// finishedBy names the library's Close or Cancel, once made.
	finishedBy string
	// userClosed is set once Persist closed or cancelled the sink.
	userClosed bool
}

func (s *strictSink) finished() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.finishedBy != "" || s.userClosed
}

func (s *strictSink) Write(p []byte) (int, error) {
	s.n.call("SnapshotSink.Write")
	s.mu.Lock()
	by := s.finishedBy
	s.mu.Unlock()
	if by != "" {
		s.n.violation("SnapshotSink.Write called after %s", by)
	}
	return s.inner.Write(p)
}

func (s *strictSink) ID() string { return s.inner.ID() }

func (s *strictSink) finish(what string) {
	s.n.call("SnapshotSink." + what)
	s.mu.Lock()
	if s.persisting {
		s.userClosed = true
		s.mu.Unlock()
		return
	}
	by := s.finishedBy
	if by == "" {
		s.finishedBy = what
	}
	s.mu.Unlock()
	if by != "" {
		s.n.violation("SnapshotSink.%s called after %s", what, by)
	}
}

func (s *strictSink) Close() error {
	s.finish("Close")
	return s.inner.Close()
}

func (s *strictSink) Cancel() error {
	s.finish("Cancel")
	return s.inner.Cancel()
}

// strictFSM wraps an FSM: its methods never run at once, and never after
// Shutdown returned. Snapshots it returns are strict.
type strictFSM struct {
	inner FSM
	n     *strictNode
}

func (f *strictFSM) Apply(l *Log) interface{} {
	f.n.enter(&f.n.fsmActive, "FSM.Apply")
	defer f.n.leave(&f.n.fsmActive, "FSM.Apply")
	return f.inner.Apply(l)
}

func (f *strictFSM) Snapshot() (FSMSnapshot, error) {
	f.n.enter(&f.n.fsmActive, "FSM.Snapshot")
	defer f.n.leave(&f.n.fsmActive, "FSM.Snapshot")
	snap, err := f.inner.Snapshot()
	if err != nil || snap == nil {
		return snap, err
	}
	ss := &strictFSMSnapshot{inner: snap, n: f.n}
	f.n.mu.Lock()
	f.n.snapshots = append(f.n.snapshots, ss)
	f.n.mu.Unlock()
	return ss, nil
}

func (f *strictFSM) Restore(rc io.ReadCloser) error {
	f.n.enter(&f.n.fsmActive, "FSM.Restore")
	defer f.n.leave(&f.n.fsmActive, "FSM.Restore")
	return f.inner.Restore(rc)
}

// strictConfigFSM adds ConfigurationStore to strictFSM and records the
// indexes of the configuration entries it is given.
type strictConfigFSM struct {
	strictFSM
	mu      sync.Mutex
	configs []uint64
}

func (f *strictConfigFSM) StoreConfiguration(index uint64, c Configuration) {
	f.n.enter(&f.n.fsmActive, "ConfigurationStore.StoreConfiguration")
	defer f.n.leave(&f.n.fsmActive, "ConfigurationStore.StoreConfiguration")
	f.mu.Lock()
	f.configs = append(f.configs, index)
	f.mu.Unlock()
}

// configurations returns how many configuration entries reached the FSM.
func (f *strictConfigFSM) configurations() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.configs)
}

// strictBatchingFSM adds BatchingFSM to strictConfigFSM, applying a batch
// one command at a time on the wrapped FSM; configuration entries come in
// the batch.
type strictBatchingFSM struct {
	strictConfigFSM
}

func (f *strictBatchingFSM) ApplyBatch(logs []*Log) []interface{} {
	f.n.enter(&f.n.fsmActive, "BatchingFSM.ApplyBatch")
	defer f.n.leave(&f.n.fsmActive, "BatchingFSM.ApplyBatch")
	out := make([]interface{}, len(logs))
	for i, l := range logs {
		switch l.Type {
		case LogCommand:
			out[i] = f.inner.Apply(l)
		case LogConfiguration:
			f.mu.Lock()
			f.configs = append(f.configs, l.Index)
			f.mu.Unlock()
		}
	}
	return out
}

// strictFSMSnapshot wraps an FSMSnapshot: Release once, nothing after it,
// one Persist.
type strictFSMSnapshot struct {
	inner FSMSnapshot
	n     *strictNode

	mu        sync.Mutex
	persisted bool
	release   bool
}

func (s *strictFSMSnapshot) released() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.release
}

func (s *strictFSMSnapshot) Persist(sink SnapshotSink) error {
	s.n.call("FSMSnapshot.Persist")
	s.mu.Lock()
	rel, again := s.release, s.persisted
	s.persisted = true
	s.mu.Unlock()
	if rel {
		s.n.violation("FSMSnapshot.Persist called after Release")
	}
	if again {
		s.n.violation("FSMSnapshot.Persist called twice")
	}
	if ss, ok := sink.(*strictSink); ok {
		ss.mu.Lock()
		ss.persisting = true
		ss.mu.Unlock()
		defer func() {
			ss.mu.Lock()
			ss.persisting = false
			ss.mu.Unlock()
		}()
	}
	return s.inner.Persist(sink)
}

func (s *strictFSMSnapshot) Release() {
	s.n.call("FSMSnapshot.Release")
	s.mu.Lock()
	again := s.release
	s.release = true
	s.mu.Unlock()
	if again {
		s.n.violation("FSMSnapshot.Release called twice")
		return
	}
	s.inner.Release()
}

// strictParts are the strict wrappers of one Raft instance's parts.
type strictParts struct {
	node   *strictNode
	fsm    FSM
	logs   LogStore
	stable StableStore
	snaps  SnapshotStore
	trans  *strictTransport
}

// FSM kinds for newStrictParts.
const (
	plainFSM    = ""         // an FSM only
	configFSM   = "config"   // also a ConfigurationStore
	batchingFSM = "batching" // also a BatchingFSM and a ConfigurationStore
)

// newStrictParts wraps a node's parts for one run of NewRaft; kind is one
// of the FSM kinds above.
func newStrictParts(t *testing.T, name string, fsm FSM, logs LogStore, stable StableStore,
	snaps SnapshotStore, trans *InmemTransport, kind string) *strictParts {
	n := newStrictNode(t, name)
	p := &strictParts{
		node:   n,
		logs:   strictLogs(n, logs),
		stable: &strictStableStore{inner: stable, n: n},
		snaps:  &strictSnapshotStore{inner: snaps, n: n},
		trans:  newStrictTransport(n, trans),
	}
	base := strictFSM{inner: fsm, n: n}
	switch kind {
	case configFSM:
		p.fsm = &strictConfigFSM{strictFSM: base}
	case batchingFSM:
		p.fsm = &strictBatchingFSM{strictConfigFSM{strictFSM: base}}
	default:
		p.fsm = &base
	}
	return p
}
