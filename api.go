package raft

import (
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-metrics"
)

// Raft is one server of a Raft cluster. Create it with NewRaft; every
// method is safe to call from any goroutine.
//
// Inside, one goroutine (the run loop, raft.go) owns the protocol state:
// term, vote, role, commit index, configurations and the leader's
// bookkeeping. Public methods talk to it through channels and futures, and
// read the figures it publishes (published.go). Log writes, replication to
// each follower and the FSM each run on goroutines of their own, so the run
// loop never waits on a disk or on the application.
type Raft struct {
	// RestoreCommittedLogs is Config.RestoreCommittedLogs, as given to
	// NewRaft.
	RestoreCommittedLogs bool

	// Fixed by NewRaft.
	localID         ServerID
	localAddr       ServerAddress
	logger          hclog.Logger
	fsm             FSM
	logs            *trackedLogStore
	stable          *trackedStableStore
	snapshots       SnapshotStore
	trans           Transport
	preVote         bool  // pre-vote is on and the transport can carry it
	rpcLimit        int64 // the transport's request size limit, 0 for none (rpc_size.go)
	protocolVersion ProtocolVersion
	// header is the RPCHeader of every message this node sends, and
	// encodedAddr its encoded address; their bytes are never modified.
	header      RPCHeader
	encodedAddr []byte

	// conf is the current configuration; ReloadConfig replaces it whole,
	// serialized by confMu, and readers load it without locking.
	conf   atomic.Pointer[Config]
	confMu sync.Mutex

	// Requests into the run loop. Public methods send; the run loop is the
	// only receiver. None is ever closed.
	applyCh              chan *logFuture
	verifyCh             chan *verifyFuture
	readIndexCh          chan *readIndexFuture
	followerReadDoneCh   chan followerReadResult
	configChangeCh       chan *configurationChangeFuture
	userSnapshotCh       chan *userSnapshotFuture
	userRestoreCh        chan *userRestoreFuture
	leadershipTransferCh chan *leadershipTransferFuture
	// applyDeadlines says whether requests in applyCh carry a deadline
	// (enqueue.go): with BatchApplyCh off. Set at creation.
	applyDeadlines bool

	// intake takes ReadIndex calls without a run-loop turn each
	// (read_intake.go); readIndexCh takes them when it is full.
	intake *readIntake

	// heartbeatCh carries heartbeats from the transport's fast path; the
	// run loop serves it before anything else.
	heartbeatCh chan RPC
	// rpcCh is the transport's Consumer channel, asked for once here: a
	// transport may hand out a new channel on every call (a wrapper that
	// forwards through a goroutine does), and then only the first one is
	// ever served.
	rpcCh <-chan RPC
	// reloadCh (capacity one) pokes the run loop after ReloadConfig.
	reloadCh chan struct{}

	// The log writer's channels (log_writer.go): the run loop hands ops on
	// writeCh and the writer answers each on writeDoneCh.
	writeCh     chan *writeOp
	writeDoneCh chan writeResult
	// The log compactor's (log_compactor.go), the same way for head
	// compactions.
	compactCh chan *writeOp
	// compactTarget is the highest index a compaction handed (or about to
	// be handed) to the writer or the compactor deletes up to: written by
	// the run loop, read by replicators pinning a snapshot.
	compactTarget atomic.Uint64

	// fsmCh carries work from the run loop to the FSM goroutine (fsm.go).
	fsmCh chan *fsmTask
	// fsmSnapshotCh carries snapshot requests from the snapshot goroutine
	// to the FSM goroutine.
	fsmSnapshotCh chan snapshotRequest
	// fsmProgressCh (capacity one) is poked by the FSM goroutine after each
	// task, so that a leader holding requests back until its FSM catches
	// up looks again (backpressure.go), and a run loop whose next write
	// waits for the FSM to pass an index does too (log_writer.go,
	// writeOp.waitApplied). fsmHeld is the memory charge of the entries in
	// tasks handed to the FSM goroutine and not yet done: the run loop adds
	// a task's on dispatch, the FSM goroutine subtracts it when done.
	fsmProgressCh chan struct{}
	fsmHeld       atomic.Int64

	// eventCh carries the run loop's rare requests and reports, each a
	// value of its own type (runLoopEvent, events.go): Bootstrap, the
	// snapshot goroutine's configuration requests and snapshots taken, the
	// end of a snapshot install or user restore copy (snapshot.go), of a
	// user restore's apply (fsm.go), of a head compaction
	// (log_compactor.go) and of a leadership transfer's TimeoutNow.
	eventCh chan runLoopEvent

	// snapshotWriteCh (capacity one) is held, by sending into it, by
	// whoever writes a snapshot into the store, from Create to Close: the
	// snapshot goroutine, or the goroutine receiving an installed snapshot
	// or copying a user's. A store may keep only its newest snapshot (an
	// InmemSnapshotStore keeps the one closed last), so two writes at once
	// could leave an older snapshot in place of the one the node adopts.
	// writtenUpTo, guarded by holding snapshotWriteCh, is the index of the
	// newest snapshot installed or restored into the store; a snapshot of
	// the node's own FSM below it is stale and is not written (one at the
	// same index holds the same state).
	snapshotWriteCh chan struct{}
	writtenUpTo     uint64

	// restored is the snapshot NewRaft restored, which the FSM goroutine
	// starts from. Written before the goroutines start, then only read.
	restored indexTerm

	// st is the protocol state; only the run loop touches it.
	st runState
	// invariantBroken is Config's test-only hook (write_path_invariants.go);
	// nil in production.
	invariantBroken func(error)
	// clock is this server's clock for elections, leases and the startup
	// hold (clock.go), startedAt when this instance was made on it, which
	// starts the hold, and startHoldFor the hold's length (vote_hold.go).
	// Fixed by newNode.
	clock        clock
	startedAt    time.Time
	startHoldFor time.Duration
	// leaseReads counts the reads answered from the lease (lease.go).
	leaseReads atomic.Uint64
	// lastApplied is the answer the last lease read served on its
	// caller's goroutine got, shared by the next ones at the same index
	// (lease_view.go).
	lastApplied atomic.Pointer[appliedRead]
	// leaseV is the lease view the run loop publishes for lease reads on
	// the caller's goroutine, nil when this node serves none;
	// appliedWaiters are those reads waiting for the FSM (lease_view.go,
	// read_queue.go).
	leaseV         atomic.Pointer[leaseView]
	appliedWaiters readWaiters
	// failed is set by fatal: the node is stopping after an error it
	// cannot recover from, and its state no longer has to make sense.
	failed atomic.Bool

	// pub holds the figures the run loop publishes for other goroutines.
	pub published

	// leaderCh (capacity one) always holds the newest leadership change.
	leaderCh chan bool

	observersMu sync.RWMutex // guards observers, registered from any goroutine
	observers   map[uint64]*Observer

	// Shutdown: shutdownCh is closed once by Shutdown (under shutdownMu);
	// stopping mirrors it for the tracked stores; stoppedCh is closed once
	// every goroutine has stopped (or is parked in a store call) and the
	// transport is closed.
	shutdownMu sync.Mutex
	shutdownCh chan struct{}
	stopping   atomic.Bool
	stoppedCh  chan struct{}
	stopOnce   sync.Once
	routines   *routineGroup

	// fsmCall is the FSM method the FSM goroutine is in, which a Shutdown
	// waiting for it names (shutdown_wait.go).
	fsmCall fsmCall
}

// NewRaft builds a node from its configuration, FSM and stores, restores
// its state from them and starts it as a follower. A new cluster must also
// be bootstrapped (BootstrapCluster) before it can elect a leader.
//
// Errors come from ValidateConfig, from reading the stores, or from a
// configuration that does not fit the stores or transport.
func NewRaft(conf *Config, fsm FSM, logs LogStore, stable StableStore, snaps SnapshotStore, trans Transport) (*Raft, error) {
	if err := ValidateConfig(conf); err != nil {
		return nil, err
	}
	if fsm == nil || logs == nil || stable == nil || snaps == nil || trans == nil {
		return nil, fmt.Errorf("NewRaft needs an FSM, a LogStore, a StableStore, a SnapshotStore and a Transport")
	}
	if conf.ProtocolVersion < 3 && string(conf.LocalID) != string(trans.LocalAddr()) {
		return nil, fmt.Errorf("when running with ProtocolVersion < 3, LocalID must be set to the network address")
	}
	if conf.RestoreCommittedLogs {
		if _, ok := logs.(CommitTrackingLogStore); !ok {
			return nil, ErrIncompatibleLogStore
		}
	}
	r := newNode(conf, fsm, logs, stable, snaps, trans)
	if err := r.restoreState(); err != nil {
		return nil, err
	}
	if conf.skipStartup {
		return r, nil
	}
	r.trans.SetHeartbeatHandler(r.handleHeartbeat)
	r.start()
	return r, nil
}

// newNode allocates a node and its channels without reading any state.
func newNode(conf *Config, fsm FSM, logs LogStore, stable StableStore, snaps SnapshotStore, trans Transport) *Raft {
	c := *conf
	logger := buildLogger(&c)
	r := &Raft{
		RestoreCommittedLogs: c.RestoreCommittedLogs,
		localID:              c.LocalID,
		localAddr:            trans.LocalAddr(),
		logger:               logger,
		fsm:                  fsm,
		snapshots:            snaps,
		trans:                trans,
		protocolVersion:      c.ProtocolVersion,
		rpcLimit:             transportRPCLimit(trans),
		applyCh:              make(chan *logFuture, applyChCap(&c)),
		applyDeadlines:       !c.BatchApplyCh,
		verifyCh:             make(chan *verifyFuture, 64),
		readIndexCh:          make(chan *readIndexFuture, 64),
		intake:               newReadIntake(),
		followerReadDoneCh:   make(chan followerReadResult),
		configChangeCh:       make(chan *configurationChangeFuture),
		userSnapshotCh:       make(chan *userSnapshotFuture),
		userRestoreCh:        make(chan *userRestoreFuture),
		leadershipTransferCh: make(chan *leadershipTransferFuture, 1),
		heartbeatCh:          make(chan RPC),
		rpcCh:                trans.Consumer(),
		reloadCh:             make(chan struct{}, 1),
		writeCh:              make(chan *writeOp, 1),
		writeDoneCh:          make(chan writeResult, 2),
		compactCh:            make(chan *writeOp),
		eventCh:              make(chan runLoopEvent),
		fsmCh:                make(chan *fsmTask, fsmQueueLen),
		fsmSnapshotCh:        make(chan snapshotRequest),
		fsmProgressCh:        make(chan struct{}, 1),
		invariantBroken:      c.invariantCheck.handler(),
		snapshotWriteCh:      make(chan struct{}, 1),
		leaderCh:             make(chan bool, 1),
		observers:            make(map[uint64]*Observer),
		shutdownCh:           make(chan struct{}),
		stoppedCh:            make(chan struct{}),
		routines:             newRoutineGroup(),
	}
	r.conf.Store(&c)
	r.clock = c.clock
	if r.clock == nil {
		r.clock = realClock{}
	}
	r.startedAt = r.clock.now()
	r.startHoldFor = max(c.HeartbeatTimeout, c.StartupVoteHold)
	r.encodedAddr = trans.EncodePeer(c.LocalID, r.localAddr)
	r.header = RPCHeader{ProtocolVersion: c.ProtocolVersion, ID: []byte(c.LocalID), Addr: r.encodedAddr}
	r.logs = &trackedLogStore{LogStore: logs, g: r.routines, stopped: &r.stopping}
	r.stable = &trackedStableStore{StableStore: stable, g: r.routines, stopped: &r.stopping}
	if !c.PreVoteDisabled {
		if _, ok := trans.(WithPreVote); ok {
			r.preVote = true
		} else {
			logger.Warn("pre-vote is enabled but the transport cannot carry it; campaigning without it")
		}
	}
	r.pub.init()
	return r
}

// config returns the current configuration. It must not be modified.
func (r *Raft) config() *Config { return r.conf.Load() }

// start launches the node's goroutines.
func (r *Raft) start() {
	r.routines.goFunc(r.run)
	r.routines.goFunc(r.runFSM)
	r.routines.goFunc(r.runLogWriter)
	r.routines.goFunc(r.runLogCompactor)
	r.routines.goFunc(r.runSnapshots)
	r.routines.goFunc(r.emitPeriodicMetrics)
}

// Apply is ApplyLog for a log entry holding cmd.
func (r *Raft) Apply(cmd []byte, timeout time.Duration) ApplyFuture {
	return r.ApplyLog(Log{Data: cmd}, timeout)
}

// ApplyLog appends an entry with log's Data and Extensions (other fields
// are ignored) to the replicated log, on the leader. The future answers
// once the entry is committed and this node's FSM has applied it;
// Response then returns what FSM.Apply returned.
//
// timeout bounds only how long the leader may take to take the entry (the
// call, or the future's Error, waits that long at most for it), not
// replication; 0 waits as long as it takes. Errors:
// ErrNotLeader on a follower or candidate; ErrEnqueueTimeout when the
// leader did not take the entry in time (it was not appended);
// ErrLeadershipTransferInProgress during a transfer; ErrLeadershipLost
// when this node lost leadership with the entry in flight, in which case
// the entry may or may not be committed and there is no way to know from
// here; ErrRaftShutdown after Shutdown. An error wrapping ErrEntryTooLarge
// says the entry could never be replicated through this node's transport
// (WithMaxRPCBytes); it was not appended.
func (r *Raft) ApplyLog(log Log, timeout time.Duration) ApplyFuture {
	metrics.IncrCounter(keyApply, 1)
	f := &logFuture{log: Log{Type: LogCommand, Data: log.Data, Extensions: log.Extensions}}
	if err := r.checkEntryFits(&f.log); err != nil {
		return errorFuture{err}
	}
	f.init(r.stoppedCh)
	return r.enqueueLog(f, timeout)
}

// Barrier appends an entry that completes once every entry before it has
// been applied to this node's FSM. On a new leader it is the way to wait
// until the FSM holds everything committed so far. timeout and the errors
// are those of ApplyLog.
func (r *Raft) Barrier(timeout time.Duration) Future {
	metrics.IncrCounter([]string{"raft", "barrier"}, 1)
	f := &logFuture{log: Log{Type: LogBarrier}}
	f.init(r.stoppedCh)
	return r.enqueueLog(f, timeout)
}

// enqueueLog hands f to the run loop within timeout (enqueue.go).
func (r *Raft) enqueueLog(f *logFuture, timeout time.Duration) ApplyFuture {
	// Room in applyCh needs no timer and no wait; a node that is shutting
	// down refuses first, as the wait below may.
	select {
	case <-r.shutdownCh:
		return errorFuture{ErrRaftShutdown}
	default:
	}
	if timeout > 0 && r.applyDeadlines {
		f.deadline = time.Now().Add(timeout)
	}
	select {
	case r.applyCh <- f:
		return f
	default:
	}
	timer, stop := enqueueTimer(timeout)
	defer stop()
	select {
	case r.applyCh <- f:
		return f
	case <-timer:
		return errorFuture{ErrEnqueueTimeout}
	case <-r.shutdownCh:
		return errorFuture{ErrRaftShutdown}
	}
}

// VerifyLeader checks, without writing to the log, that this node is still
// the leader: it answers nil once a quorum of voters has acknowledged it in
// its current term. A leader that finds a newer term answers ErrNotLeader
// and steps down; ErrLeadershipLost if it steps down for another reason
// first; ErrNotLeader on a follower; ErrRaftShutdown after Shutdown.
func (r *Raft) VerifyLeader() Future {
	metrics.IncrCounter([]string{"raft", "verify_leader"}, 1)
	f := &verifyFuture{}
	f.init(r.stoppedCh)
	select {
	case r.verifyCh <- f:
		return f
	case <-r.shutdownCh:
		return errorFuture{ErrRaftShutdown}
	}
}

// ReadIndex makes a linearizable read possible without writing to the log
// (Raft thesis §6.4). On the leader, it records the commit index, confirms
// with a quorum of voters that this node still leads (a heartbeat round, as
// VerifyLeader does), and waits until this node's FSM has applied up to the
// recorded index. Once the future answers nil, reading this node's FSM
// observes every write that completed before ReadIndex was called. Index
// returns the recorded index.
//
// A new leader first commits an entry of its own term, so a read never
// misses entries committed by an earlier leader.
//
// On a follower, it asks the leader for a read index (the ReadIndex RPC,
// follower_read.go), which the leader records and confirms as above, and
// waits until this node's FSM has applied up to it: reading this node's
// FSM then observes every write that completed before the call, as on the
// leader. Concurrent calls on one follower share one request. This needs a
// transport that implements WithReadIndex and a leader that knows the RPC.
//
// timeout bounds only the wait for this node to take the request; calls
// wait for the run loop without a bound (sharing one future while they
// wait together, read_intake.go), so today that wait never times out and
// ErrEnqueueTimeout does not occur. Errors:
// ErrNotLeader on a candidate, on a follower that knows no leader, whose
// transport lacks WithReadIndex or whose leader does not know the RPC
// (hashicorp/raft), when the leader asked no longer leads, or when a newer
// term shows this node was deposed; ErrLeadershipLost when this leader
// stepped down before confirming; an error wrapping the transport's when
// the leader could not be asked; ErrRaftShutdown. This method is an
// addition: the reference has no equivalent.
func (r *Raft) ReadIndex(timeout time.Duration) IndexFuture {
	select {
	case <-r.shutdownCh:
		return errorFuture{ErrRaftShutdown}
	default:
	}
	return r.intake.join(r.stoppedCh)
}

// enqueueRead hands a ReadIndex or ReadLease call to the run loop, waiting
// at most timeout (forever if it is zero or less) for room in the channel.
// The timer is made only when there is no room at once: most calls find
// some.
func (r *Raft) enqueueRead(f *readIndexFuture, timeout time.Duration) IndexFuture {
	select {
	case <-r.shutdownCh:
		return errorFuture{ErrRaftShutdown}
	default:
	}
	select {
	case r.readIndexCh <- f:
		return f
	default:
	}
	timer, stop := enqueueTimer(timeout)
	defer stop()
	select {
	case r.readIndexCh <- f:
		return f
	case <-timer:
		return errorFuture{ErrEnqueueTimeout}
	case <-r.shutdownCh:
		return errorFuture{ErrRaftShutdown}
	}
}

// GetConfiguration returns the latest configuration, which may not be
// committed yet. It never fails, and its Index is always 0.
func (r *Raft) GetConfiguration() ConfigurationFuture {
	f := &configurationFuture{}
	f.init(nil)
	f.configurations.latest = r.pub.latestConfiguration()
	f.respond(nil)
	return f
}

// AddPeer adds a voter whose ID is its address.
//
// Deprecated: use AddVoter; AddPeer works only with protocol versions
// below 3.
func (r *Raft) AddPeer(peer ServerAddress) Future {
	if r.protocolVersion > 2 {
		return errorFuture{ErrUnsupportedProtocol}
	}
	return r.requestConfigChange(configurationChangeRequest{
		command: AddVoter, serverID: ServerID(peer), serverAddress: peer,
	}, 0)
}

// RemovePeer removes the server whose ID is peer.
//
// Deprecated: use RemoveServer; RemovePeer works only with protocol
// versions below 3.
func (r *Raft) RemovePeer(peer ServerAddress) Future {
	if r.protocolVersion > 2 {
		return errorFuture{ErrUnsupportedProtocol}
	}
	return r.requestConfigChange(configurationChangeRequest{command: RemoveServer, serverID: ServerID(peer)}, 0)
}

// AddVoter adds id at address as a voter, or makes an existing member a
// voter, on the leader. When prevIndex is not 0, the change is refused
// unless the latest configuration is still the one at prevIndex. Changes
// are made one at a time: a request waits (within timeout, else
// ErrEnqueueTimeout) until the previous configuration has committed and a
// new leader has committed an entry of its own term. The new configuration
// takes effect as soon as it is appended; the future answers once it is
// committed, and its Index is the configuration's index.
//
// The new voter counts towards the quorum at once, as in the reference:
// adding one whose log is far behind can delay commitment until it catches
// up. To avoid that, add it with AddNonvoter first, wait until it has caught
// up, then call AddVoter.
func (r *Raft) AddVoter(id ServerID, address ServerAddress, prevIndex uint64, timeout time.Duration) IndexFuture {
	if r.protocolVersion < 2 {
		return errorFuture{ErrUnsupportedProtocol}
	}
	return r.requestConfigChange(configurationChangeRequest{
		command: AddVoter, serverID: id, serverAddress: address, prevIndex: prevIndex,
	}, timeout)
}

// AddNonvoter adds id at address as a non-voter, which receives the log
// but does not vote. An existing voter keeps its vote and only has its
// address updated. prevIndex and timeout are as for AddVoter.
func (r *Raft) AddNonvoter(id ServerID, address ServerAddress, prevIndex uint64, timeout time.Duration) IndexFuture {
	if r.protocolVersion < 3 {
		return errorFuture{ErrUnsupportedProtocol}
	}
	return r.requestConfigChange(configurationChangeRequest{
		command: AddNonvoter, serverID: id, serverAddress: address, prevIndex: prevIndex,
	}, timeout)
}

// RemoveServer removes id from the cluster. A leader that removes itself
// steps down once the change commits. prevIndex and timeout are as for
// AddVoter.
func (r *Raft) RemoveServer(id ServerID, prevIndex uint64, timeout time.Duration) IndexFuture {
	if r.protocolVersion < 2 {
		return errorFuture{ErrUnsupportedProtocol}
	}
	return r.requestConfigChange(configurationChangeRequest{command: RemoveServer, serverID: id, prevIndex: prevIndex}, timeout)
}

// DemoteVoter takes id's vote away, keeping it as a non-voter. prevIndex
// and timeout are as for AddVoter.
func (r *Raft) DemoteVoter(id ServerID, prevIndex uint64, timeout time.Duration) IndexFuture {
	if r.protocolVersion < 3 {
		return errorFuture{ErrUnsupportedProtocol}
	}
	return r.requestConfigChange(configurationChangeRequest{command: DemoteVoter, serverID: id, prevIndex: prevIndex}, timeout)
}

// requestConfigChange hands a membership change to the run loop.
func (r *Raft) requestConfigChange(req configurationChangeRequest, timeout time.Duration) IndexFuture {
	timer, stop := enqueueTimer(timeout)
	defer stop()
	f := &configurationChangeFuture{req: req}
	f.init(r.stoppedCh)
	select {
	case r.configChangeCh <- f:
		return f
	case <-timer:
		return errorFuture{ErrEnqueueTimeout}
	case <-r.shutdownCh:
		return errorFuture{ErrRaftShutdown}
	}
}

// Shutdown stops the node: it stops every goroutine the node started,
// answers every pending future (ErrRaftShutdown for requests never taken,
// ErrLeadershipLost for entries in flight on a leader), and closes the
// transport if it implements WithClose. It never closes the stores.
//
// The returned future's Error waits until all that is done, and always
// returns nil. Shutdown may be called more than once; every call's future
// waits for the same end, so a caller whose node already began shutting
// down by itself (for example ShutdownOnRemove) still knows, once Error
// returns, that nothing runs.
//
// Shutdown itself returns at once (but for the hand-off below) and may be
// called from any goroutine, including from inside the FSM's methods.
// With Config.LeadershipTransferOnShutdown, Shutdown called on a leader
// first hands leadership to the most up-to-date voter, waiting for that
// for at most three election timeouts, then stops the node. Waiting on its future is what
// can deadlock: called from inside FSM.Apply, BatchingFSM.ApplyBatch,
// ConfigurationStore.StoreConfiguration, FSM.Snapshot or FSM.Restore
// (that is, on the FSM goroutine), or from FSMSnapshot.Persist, Error
// never returns, because it waits for that very call to return.
//
// A call into the FSM is waited for however long it takes, as the
// reference library does: nothing calls the FSM once Error has returned,
// and the FSM goroutine cannot be abandoned in the middle of a call. So an
// FSM.Apply that never returns makes Shutdown wait forever; meanwhile a
// warning naming the call (for example "FSM.Apply at index 42 has not
// returned for 5s; Shutdown waits for it") is logged every 5 seconds.
//
// Shutdown waits for calls into the LogStore or StableStore that are in
// flight, so that once it returns the stores are no longer in use and may
// be closed or reused, but only for 5 seconds: a store call that never
// returns cannot hang Shutdown. Such a call is abandoned; if it returns
// later, its goroutine exits without touching anything else. An
// application whose store may stall must not reuse it after Shutdown
// until its calls have returned.
func (r *Raft) Shutdown() Future {
	r.shutdownMu.Lock()
	defer r.shutdownMu.Unlock()
	select {
	case <-r.shutdownCh:
		return &shutdownFuture{raft: r}
	default:
	}
	r.handOffLeadership()
	r.stopping.Store(true)
	close(r.shutdownCh)
	r.pub.setState(Shutdown)
	r.observe(Shutdown)
	// Nothing may wait forever on stoppedCh, so someone must always
	// close it, whether or not the caller waits on the returned future.
	go r.waitStopped()
	go r.warnWhileStopping()
	return &shutdownFuture{raft: r}
}

// waitStopped waits until the node's goroutines have stopped, then closes
// the transport and marks the node stopped. Safe to call many times.
func (r *Raft) waitStopped() {
	r.routines.waitSettled()
	r.stopOnce.Do(func() {
		answerUnrestoredInstalls(r.fsmCh)
		if closer, ok := r.trans.(WithClose); ok {
			if err := closer.Close(); err != nil {
				r.logger.Warn("failed to close transport", "error", err)
			}
		}
		close(r.stoppedCh)
	})
}

// Snapshot takes a snapshot of the FSM now, whatever this node's role.
// It fails with ErrNothingNewToSnapshot, as the reference does, while the
// FSM has been given nothing since the node started: no command, barrier
// or configuration entry it receives (ConfigurationStore, BatchingFSM),
// and no installed or restored snapshot; the snapshot NewRaft restored and
// no-op entries do not count. Otherwise, even with nothing applied since
// the last snapshot, it takes another one and compacts the log again,
// which applications use after lowering TrailingLogs. Once Error returned nil, Open reads the snapshot.
func (r *Raft) Snapshot() SnapshotFuture {
	f := &userSnapshotFuture{}
	f.init(r.stoppedCh)
	select {
	case r.userSnapshotCh <- f:
	case <-r.shutdownCh:
		f.respond(ErrRaftShutdown)
	}
	return f
}

// Restore replaces the cluster's state with an external snapshot read from
// reader, described by meta, on the leader. It blocks until the snapshot is
// installed and committed, or timeout passed before the leader took the
// request. Entries in flight are answered with ErrAbortedByRestore.
//
// The restored state takes the index after everything the log holds, so
// every follower receives it as an InstallSnapshot. Restore returns nil once a
// no-op entry after it has committed and this node's FSM has restored the
// snapshot; until then reads wait, and so does another Restore. If the
// leader loses its leadership first, the restore may or may not commit; a
// server whose log starts from a restore that the next leader's log shows
// uncommitted stops (unconfirmed_snapshot.go) and must be wiped and added
// back. A copy that fails once its snapshot may be in the store (the
// sink's Close failed) ends this node's leadership; an FSM that fails to
// restore the committed snapshot stops this node, as a failed restore of
// an installed snapshot does. Errors: those of ApplyLog, and errors
// reading or storing the snapshot.
//
// Use it for disaster recovery on a stable cluster. Unlike the reference,
// no FSM restores the snapshot before that no-op commits (the leader's
// and every follower's FSM do so afterwards): no FSM, and no read, ever
// shows a restore that does not commit. If the leadership changes first,
// Restore answers an error; the logs of the servers that took the
// snapshot start from it, and those whose next leader never had it stop
// and must be wiped and added back (see the README's "Where we differ").
func (r *Raft) Restore(meta *SnapshotMeta, reader io.Reader, timeout time.Duration) error {
	metrics.IncrCounter([]string{"raft", "restore"}, 1)
	defer metrics.MeasureSince([]string{"raft", "restoreUserSnapshot"}, time.Now())
	timer, stop := enqueueTimer(timeout)
	defer stop()
	f := &userRestoreFuture{meta: meta, reader: reader}
	f.init(r.stoppedCh)
	select {
	case r.userRestoreCh <- f:
	case <-timer:
		return ErrEnqueueTimeout
	case <-r.shutdownCh:
		return ErrRaftShutdown
	}
	// The leader appends a no-op after the snapshot and answers once it
	// committed: only then does a majority hold the restored state
	// (unconfirmed_snapshot.go).
	return f.Error()
}

// State returns the node's current role.
func (r *Raft) State() RaftState { return r.pub.state() }

// LeaderCh returns a channel that receives true when this node becomes
// leader and false when it stops being leader. It holds only the newest
// value: a slow reader sees the current state but may miss transitions in
// between.
func (r *Raft) LeaderCh() <-chan bool { return r.leaderCh }

// Leader returns the current leader's address, or "" when none is known.
//
// Deprecated: use LeaderWithID.
func (r *Raft) Leader() ServerAddress {
	addr, _ := r.LeaderWithID()
	return addr
}

// LeaderWithID returns the current leader's address and ID, or empty
// values when none is known.
func (r *Raft) LeaderWithID() (ServerAddress, ServerID) {
	l := r.pub.leader()
	return l.addr, l.id
}

// String describes the node for logs.
func (r *Raft) String() string {
	return fmt.Sprintf("Node at %s [%v]", r.localAddr, r.State())
}

// LastContact returns when this node last heard from a leader, or the zero
// time if it never did.
func (r *Raft) LastContact() time.Time { return r.pub.lastContact() }

// CurrentTerm returns the node's current term.
func (r *Raft) CurrentTerm() uint64 { return r.pub.term.Load() }

// LastIndex returns the index of the last entry in the log, or of the last
// snapshot if that is newer.
func (r *Raft) LastIndex() uint64 {
	last, _ := r.pub.lastLog()
	snap, _ := r.pub.lastSnapshot()
	return max(last, snap)
}

// CommitIndex returns the highest index this node knows to be committed.
func (r *Raft) CommitIndex() uint64 { return r.pub.commitIndex.Load() }

// AppliedIndex returns the index of the last entry applied to the FSM.
func (r *Raft) AppliedIndex() uint64 { return r.pub.appliedIndex.Load() }

// LeadershipTransfer hands leadership to the most up-to-date voter. The
// leader brings the chosen server's log up to date, then tells it to
// campaign at once. Until the transfer finishes, other requests to this
// leader get ErrLeadershipTransferInProgress.
func (r *Raft) LeadershipTransfer() Future {
	if r.protocolVersion < 3 {
		return errorFuture{ErrUnsupportedProtocol}
	}
	return r.startLeadershipTransfer(nil, nil)
}

// LeadershipTransferToServer hands leadership to the given server, as
// LeadershipTransfer does.
func (r *Raft) LeadershipTransferToServer(id ServerID, address ServerAddress) Future {
	if r.protocolVersion < 3 {
		return errorFuture{ErrUnsupportedProtocol}
	}
	return r.startLeadershipTransfer(&id, &address)
}

// startLeadershipTransfer hands a transfer request to the run loop. Only
// one can wait at a time: a second gets ErrEnqueueTimeout at once.
func (r *Raft) startLeadershipTransfer(id *ServerID, address *ServerAddress) Future {
	f := &leadershipTransferFuture{id: id, address: address}
	f.init(r.stoppedCh)
	if id != nil && *id == r.localID {
		err := fmt.Errorf("cannot transfer leadership to itself")
		r.logger.Info(err.Error())
		f.respond(err)
		return f
	}
	select {
	case r.leadershipTransferCh <- f:
		return f
	case <-r.shutdownCh:
		return errorFuture{ErrRaftShutdown}
	default:
		return errorFuture{ErrEnqueueTimeout}
	}
}

// BootstrapCluster bootstraps a running node that has no state yet with
// configuration, in which this node must be a voter (else ErrNotVoter).
// Only a follower can be bootstrapped; other roles get ErrCantBootstrap,
// as does a node with existing state.
func (r *Raft) BootstrapCluster(configuration Configuration) Future {
	f := &bootstrapFuture{configuration: configuration}
	f.init(r.stoppedCh)
	select {
	case r.eventCh <- f:
		return f
	case <-r.shutdownCh:
		return errorFuture{ErrRaftShutdown}
	}
}

// ReloadConfig changes the reloadable settings of a running node. Every
// field of rc is applied, zero values included; if the result fails
// ValidateConfig nothing changes and the error is returned.
func (r *Raft) ReloadConfig(rc ReloadableConfig) error {
	r.confMu.Lock()
	defer r.confMu.Unlock()
	old := r.config()
	next := rc.apply(*old)
	if err := ValidateConfig(&next); err != nil {
		return err
	}
	r.conf.Store(&next)
	if next.HeartbeatTimeout < old.HeartbeatTimeout || next.ElectionTimeout != old.ElectionTimeout {
		notify(r.reloadCh)
	}
	return nil
}

// ReloadableConfig returns the current values of the reloadable settings.
func (r *Raft) ReloadableConfig() ReloadableConfig {
	var rc ReloadableConfig
	rc.fromConfig(*r.config())
	return rc
}

// Stats returns the node's internal figures, with the keys and formats of
// hashicorp/raft (stats_test.go checks them).
func (r *Raft) Stats() map[string]string {
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	lastLog, lastLogTerm := r.pub.lastLog()
	snapIndex, snapTerm := r.pub.lastSnapshot()
	cfg := r.pub.latestConfiguration()
	numPeers := 0
	if hasVote(cfg, r.localID) {
		numPeers = len(cfg.voters()) - 1
	}
	s := map[string]string{
		"state":                      r.State().String(),
		"term":                       u(r.CurrentTerm()),
		"last_log_index":             u(lastLog),
		"last_log_term":              u(lastLogTerm),
		"commit_index":               u(r.CommitIndex()),
		"applied_index":              u(r.AppliedIndex()),
		"fsm_pending":                u(uint64(len(r.fsmCh))),
		"last_snapshot_index":        u(snapIndex),
		"last_snapshot_term":         u(snapTerm),
		"protocol_version":           strconv.Itoa(int(r.protocolVersion)),
		"protocol_version_min":       strconv.Itoa(int(ProtocolVersionMin)),
		"protocol_version_max":       strconv.Itoa(int(ProtocolVersionMax)),
		"snapshot_version_min":       strconv.Itoa(int(SnapshotVersionMin)),
		"snapshot_version_max":       strconv.Itoa(int(SnapshotVersionMax)),
		"latest_configuration_index": "0",
		"latest_configuration":       fmt.Sprintf("%+v", cfg.Servers),
		"num_peers":                  strconv.Itoa(numPeers),
	}
	switch last := r.LastContact(); {
	case r.State() == Leader:
		s["last_contact"] = "0"
	case last.IsZero():
		s["last_contact"] = "never"
	default:
		s["last_contact"] = time.Since(last).String()
	}
	return s
}
