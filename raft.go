package raft

import (
	"fmt"
	"runtime"
	"time"

	"github.com/hashicorp/go-metrics"
)

// The run loop.
//
// One goroutine runs Raft.run for the life of the node and owns runState:
// nothing else reads or writes it. Everything reaches the loop as a message
// (an RPC, a user request carried by a future, a report from the log writer,
// the FSM goroutine or a replication goroutine) and leaves it as a message.
// The loop does not block on I/O, with two deliberate exceptions: the small
// StableStore writes of term and vote, which must be durable before any
// reply that depends on them, and Config.NotifyCh and blocking observers,
// whose contract is to wait.
//
// Roles share one select. Arms that only one role uses are switched on and
// off by setting their channel to nil, and requests that need a leader are
// refused in one place when this node is not one.

// runState is the protocol state. Owned by the run loop.
type runState struct {
	role        RaftState
	currentTerm uint64
	// votedTerm and votedFor are the last vote this node cast, as stored
	// under keyLastVoteTerm and keyLastVoteCand.
	votedTerm uint64
	votedFor  []byte
	leader    leaderInfo
	// lastContact is when the known leader was last heard from (a vote
	// granted counts too, as in the reference: it restarts the wait).
	lastContact time.Time

	// commitIndex is the highest index known committed. The invariants
	// that tie it to the fields below are in write_path_invariants.go.
	commitIndex uint64
	// log is the appended view of the log; writes tracks what is durable.
	log    memLog
	writes writeQueue
	// dispatched is the last index handed to the FSM goroutine, and
	// pendingFSM the next task, built but not yet taken. fsmQueue holds
	// snapshot restores that go to the FSM before any later entry.
	dispatched uint64
	pendingFSM *fsmTask
	fsmQueue   []*fsmTask
	// fsmStoreReads are the index ranges of the tasks handed to the FSM
	// goroutine that read their entries from the log store, in dispatch
	// order, kept until the FSM has applied them (storeReads); a delete
	// reaching into one waits until the FSM has applied what it reads.
	fsmStoreReads []indexRange
	// futures are the futures of entries this node appended as leader, in
	// index order, until the FSM goroutine takes them or they fail.
	futures []*logFuture
	// reads are confirmed ReadIndex requests, in index order, waiting for
	// the FSM to reach their index.
	reads []*readIndexFuture
	// freads are this node's ReadIndex requests to its leader, while it
	// follows (follower_read.go).
	freads followerReads
	// readBatch is reused by drainReadIndexCh (read_batch.go).
	readBatch []*readIndexFuture

	configs configurations

	lastSnapshotIndex uint64
	lastSnapshotTerm  uint64
	// compactedTo is the highest index a queued compaction deletes up to.
	compactedTo uint64
	// snapshotWaiters are Raft.Snapshot calls waiting for the compaction
	// their snapshot allowed (snapshot_compaction_wait.go).
	snapshotWaiters []snapshotWaiter
	// installing is the snapshot being received from the leader, if any.
	installing *pendingInstall
	// restoring is the user snapshot being restored on this leader, if
	// any; applies and membership changes wait until it ends.
	restoring *userRestore
	// heldRestore is the FSM's restore of an unconfirmed snapshot this
	// node adopted while it ran (installed, or a user restore on this
	// leader). It is queued once the snapshot is confirmed; until then
	// nothing more is handed to the FSM goroutine, which never holds a
	// state the cluster may not commit (unconfirmed_snapshot.go).
	heldRestore *fsmTask
	// unconfirmedSnapshot is the index of the newest snapshot while it is
	// not known to be committed (unconfirmed_snapshot.go), else 0.
	unconfirmedSnapshot uint64

	// load measures how busy the run loop is.
	load *loadMeter

	// timer drives the role's clock: the heartbeat timeout of a follower,
	// the election timeout of a candidate, the lease check of a leader.
	timer *time.Timer

	// Role-specific state; nil in other roles.
	candidate *candidateState
	lead      *leaderState
	// transferring is set by TimeoutNow: the next election skips pre-vote
	// and tells voters it is a leadership transfer.
	transferring bool
	// preVoteTermSeen is the highest term a pre-vote answer carried since
	// this node last heard from a leader (onVote, election.go).
	preVoteTermSeen uint64
	// logTroubleAt is when this node last saw a log write fail or stall,
	// zero once a write handed to the writer after that succeeded;
	// troubledWrite is the write the writer held at that moment. A node
	// with a failing or stalling disk holds back from campaigning for a
	// while, so it does not keep winning elections it cannot serve (the
	// campaign rule, election.go).
	logTroubleAt  time.Time
	troubledWrite *writeOp

	// hotStreak counts the steps served in a row by serveHotArm.
	hotStreak int
}

// writeFailureCooldown is how many election timeouts a node whose log
// write failed or stalled waits before it campaigns again, unless a later
// write succeeds first.
const writeFailureCooldown = 10

// run is the run loop goroutine.
func (r *Raft) run() {
	r.st.timer = r.clock.newTimer(randomDuration(r.config().HeartbeatTimeout))
	r.st.load = newLoadMeter(keyRunLoopLoad)
	defer r.st.timer.Stop()
	defer r.exitRunLoop()
	r.logger.Info("starting as follower", "term", r.st.currentTerm, "last-index", r.st.log.lastIndex)
	metrics.IncrCounter([]string{"raft", "state", "follower"}, 1)
	hooks := r.config().hooks
	for r.serveOne() {
		if len(r.st.snapshotWaiters) > 0 {
			r.releaseSnapshotWaiters()
		}
		r.publishLease()
		if hooks != nil && hooks.afterStep != nil {
			hooks.afterStep(r)
		}
		r.afterStep()
	}
}

// serveOne waits for and handles one event. It returns false once the node
// is shutting down.
func (r *Raft) serveOne() bool {
	// Shutdown before anything else: select picks at random among ready
	// cases, and a run loop that went on serving queued requests after
	// Shutdown could call the stores again after Shutdown returned (it
	// returns while this goroutine is still inside a store call).
	select {
	case <-r.shutdownCh:
		return false
	default:
	}
	// Heartbeats next: a heartbeat waiting behind other work could make
	// this node believe its leader is gone.
	select {
	case rpc := <-r.heartbeatCh:
		r.processRPC(rpc, true)
		return true
	default:
	}

	var writeCh, compactCh chan *writeOp
	var fsmProgressCh <-chan struct{}
	nextWrite, writePos, waitFSM := r.nextWrite()
	if nextWrite != nil {
		writeCh = r.writeCh
	}
	nextCompaction, compactPos, compactionWaitsFSM := r.nextCompaction()
	if nextCompaction != nil {
		compactCh = r.compactCh
	}
	if waitFSM || compactionWaitsFSM {
		fsmProgressCh = r.fsmProgressCh
	}
	var fsmCh chan *fsmTask
	nextFSM := r.nextFSMTask()
	if nextFSM != nil {
		fsmCh = r.fsmCh
	}
	var votesCh <-chan voteResult
	if r.st.candidate != nil {
		votesCh = r.st.candidate.results
	}
	var progressCh <-chan struct{}
	var transferTimer <-chan time.Time
	if r.st.lead != nil {
		progressCh = r.st.lead.progressCh
		if t := r.st.lead.transfer; t != nil {
			transferTimer = t.timer.C
		}
	}
	// Requests that must wait while a user restore runs stay in their
	// channels until it ends. So do entries a leader cannot take until its
	// disk or its FSM catches up (backpressure.go); the log writer's
	// reports wake the loop, and so does the FSM's progress.
	applyCh, restoreCh, transferCh := r.applyCh, r.userRestoreCh, r.leadershipTransferCh
	if r.st.restoring != nil {
		applyCh, restoreCh = nil, nil
	} else if r.st.lead != nil && r.leaderFull(0) {
		applyCh, fsmProgressCh = nil, r.fsmProgressCh
	}
	if r.st.restoring != nil || (r.st.lead != nil && r.st.lead.restored != nil) {
		// A transfer would end the leadership before the restore
		// commits, which stops this node (unconfirmed_snapshot.go).
		// Another restore waits too: lead.restored holds one Restore.
		transferCh, restoreCh = nil, nil
	}
	if restoreCh != nil && r.pub.appliedIndex.Load() < r.st.lastSnapshotIndex {
		// The FSM has yet to restore the last Restore's snapshot, which
		// it does once the no-op after it commits: another one written
		// into the store now could make the store reap the snapshot the
		// FSM is about to open. The FSM's progress wakes the loop.
		restoreCh, fsmProgressCh = nil, r.fsmProgressCh
	}

	// The hot arms first, each tried alone, then once more after letting
	// the goroutines this step woke run (hot_arms.go); the full select
	// below serves everything else, and every hotArmStreak steps it runs
	// even when a hot arm is ready, so that no arm waits behind them.
	if r.st.hotStreak < hotArmStreak {
		if r.serveHotArm(writeCh, nextWrite, writePos, fsmCh, nextFSM, progressCh, applyCh, false) {
			r.st.hotStreak++
			return true
		}
		// The yield counts as idle time, like the wait.
		r.st.load.waiting()
		runtime.Gosched()
		select {
		case <-r.shutdownCh:
			return false
		default:
		}
		if r.serveHotArm(writeCh, nextWrite, writePos, fsmCh, nextFSM, progressCh, applyCh, true) {
			r.st.hotStreak++
			return true
		}
	}
	r.st.hotStreak = 0

	// The wait below is the run loop's idle time; every arm starts work.
	r.st.load.waiting()
	select {
	case <-r.shutdownCh:
		return false
	case rpc := <-r.heartbeatCh:
		r.st.load.working()
		r.processRPC(rpc, true)
	case rpc := <-r.rpcCh:
		r.st.load.working()
		r.processRPC(rpc, false)
	case <-r.st.timer.C:
		r.st.load.working()
		r.onTimer()
	case v := <-votesCh:
		r.st.load.working()
		r.onVote(v)
	case writeCh <- nextWrite:
		r.st.load.working()
		r.st.writes.handedOff(writePos, time.Now())
	case res := <-r.writeDoneCh:
		r.st.load.working()
		r.onWriteDoneArm(res)
	case compactCh <- nextCompaction:
		r.st.load.working()
		r.st.writes.compactionHandedOff(compactPos)
	case <-fsmProgressCh:
		// The FSM applied more: the next write, or the next request held
		// back by backpressure, may go now.
	case fsmCh <- nextFSM:
		r.st.load.working()
		r.onFSMDispatched(nextFSM)
	case <-progressCh:
		r.st.load.working()
		r.onProgressArm()
	case f := <-applyCh:
		r.st.load.working()
		r.onApply(f)
	case f := <-r.verifyCh:
		r.st.load.working()
		r.onVerifies(r.drainVerifyCh(f))
	case f := <-r.readIndexCh:
		r.st.load.working()
		batch := r.drainReadIndexCh(f)
		r.onLocalReadIndexes(batch)
		clear(batch)
	case <-r.intake.wakeCh:
		r.st.load.working()
		r.onReadIntake()
	case res := <-r.followerReadDoneCh:
		r.st.load.working()
		r.onFollowerReadDone(res)
	case f := <-r.configChangeChIfReady():
		r.st.load.working()
		r.onConfigChange(f)
	case f := <-restoreCh:
		r.st.load.working()
		r.onUserRestore(f)
	case f := <-transferCh:
		r.st.load.working()
		r.onLeadershipTransfer(f)
	case <-transferTimer:
		r.st.load.working()
		r.onTransferTimeout()
	case ev := <-r.eventCh:
		r.st.load.working()
		r.onEvent(ev)
	case <-r.reloadCh:
		r.st.load.working()
		r.onReload()
	}
	return true
}

// exitRunLoop answers everything the run loop still holds when the node
// shuts down.
func (r *Raft) exitRunLoop() {
	if ur := r.st.restoring; ur != nil {
		// Answered here, before stopLeading would take it for a lost
		// leadership.
		r.st.restoring = nil
		ur.abandoned.Store(true)
		ur.future.respond(ErrRaftShutdown)
	}
	if lead := r.st.lead; lead != nil && lead.restored != nil {
		lead.restored.respond(ErrRaftShutdown)
		lead.restored, lead.restoredAt = nil, 0
	}
	if r.st.lead != nil {
		replaceBool(r.leaderCh, false)
		r.stopLeading(ErrLeadershipLost, ErrLeadershipLost)
	}
	r.st.candidate = nil
	for _, f := range r.st.futures {
		f.respond(ErrRaftShutdown)
	}
	r.st.futures = nil
	if r.st.pendingFSM != nil {
		for _, f := range r.st.pendingFSM.futures {
			f.respond(ErrRaftShutdown)
		}
	}
	for _, t := range append([]*fsmTask{r.st.pendingFSM}, r.st.fsmQueue...) {
		if t != nil && t.answer != nil {
			t.answer.respond(ErrRaftShutdown)
		}
	}
	// A snapshot being received is answered by its own goroutine. The
	// writer may have sent the in-flight op's replies already.
	refuse := func(replies []pendingReply) {
		for _, rep := range replies {
			rep.resp.Success = false
			rep.rpc.Respond(rep.resp, ErrRaftShutdown)
		}
	}
	for _, op := range append(r.st.writes.queued, r.st.writes.inflight, r.st.writes.onDeck) {
		if op == nil {
			continue
		}
		if op.claimReplies() {
			refuse(op.replies)
		}
		refuse(op.lateReplies)
	}
	// Requests buffered in channels were never taken; their futures fall
	// back to ErrRaftShutdown once the node has stopped (deferError).
}

// onTimer handles the role's timer.
func (r *Raft) onTimer() {
	switch r.st.role {
	case Follower:
		r.onHeartbeatTimeout()
	case Candidate:
		if !r.mayCampaign() {
			r.becomeFollower(r.st.currentTerm)
			return
		}
		r.logger.Warn("election timed out, starting a new one", "term", r.st.currentTerm)
		r.becomeCandidate()
	case Leader:
		r.checkLeaderLease()
	}
}

// resetTimer arms the role's timer.
func (r *Raft) resetTimer(d time.Duration) {
	r.clock.resetTimer(r.st.timer, d)
}

// onHeartbeatTimeout starts an election if the leader has been silent for
// a whole heartbeat timeout and this node may campaign.
func (r *Raft) onHeartbeatTimeout() {
	timeout := r.config().HeartbeatTimeout
	r.resetTimer(randomDuration(timeout))
	if r.clock.now().Sub(r.st.lastContact) < timeout {
		return
	}
	lastLeader := r.st.leader
	r.setLeader(leaderInfo{})
	if !r.mayCampaign() {
		return
	}
	metrics.IncrCounter([]string{"raft", "transition", "heartbeat_timeout"}, 1)
	r.logger.Warn("heartbeat timeout reached, starting election",
		"last-leader-addr", lastLeader.addr, "last-leader-id", lastLeader.id)
	r.becomeCandidate()
}

// onReload applies a reloaded configuration to the running timers.
func (r *Raft) onReload() {
	conf := r.config()
	switch r.st.role {
	case Follower:
		r.resetTimer(randomDuration(conf.HeartbeatTimeout))
	case Candidate:
		r.resetTimer(randomDuration(conf.ElectionTimeout))
	}
}

// --- Transitions. Each role change goes through exactly one of these. ---

// setTerm moves to a newer term, persisting it first. A failed write of
// the term leaves the node unable to keep its promises, so it shuts down.
func (r *Raft) setTerm(term uint64) error {
	if term <= r.st.currentTerm {
		return nil
	}
	if err := r.stable.SetUint64(keyCurrentTerm, term); err != nil {
		err = fmt.Errorf("persisting current term %d: %w", term, err)
		r.fatal(err)
		return err
	}
	r.st.currentTerm = term
	r.pub.term.Store(term)
	if in := r.st.installing; in != nil {
		in.stale.Store(true)
	}
	// A leader leads one term: in a newer one, none is known yet.
	r.setLeader(leaderInfo{})
	return nil
}

// becomeFollower makes this node a follower in term (at least the current
// one), with no known leader; the caller sets the leader if it knows it.
func (r *Raft) becomeFollower(term uint64) error {
	// Lease reads end before anything else changes (lease_view.go).
	r.revokeLease()
	// A leader deposed by a newer term answers pending verifications with
	// ErrNotLeader: it knows for sure it is no longer the leader.
	verifyErr := ErrLeadershipLost
	if term > r.st.currentTerm {
		verifyErr = ErrNotLeader
	}
	if err := r.setTerm(term); err != nil {
		return err
	}
	if r.st.role == Follower {
		return nil
	}
	// The new role is published before anything the old one held is
	// answered, so a caller woken by an answer sees the node's new role.
	r.setRole(Follower)
	if r.st.lead != nil {
		r.stopLeading(ErrLeadershipLost, verifyErr)
	}
	r.st.candidate = nil
	r.st.transferring = false
	r.resetTimer(randomDuration(r.config().HeartbeatTimeout))
	r.logger.Info("entering follower state", "term", r.st.currentTerm)
	metrics.IncrCounter([]string{"raft", "state", "follower"}, 1)
	return nil
}

// setRole records a role change and tells observers. Any role change
// forgets the known leader.
func (r *Raft) setRole(role RaftState) {
	r.setLeader(leaderInfo{})
	old := r.st.role
	if old == Leader && role != Leader {
		// LeaderCh says false no later than State says not Leader.
		replaceBool(r.leaderCh, false)
	}
	r.st.role = role
	r.pub.setState(role)
	if old != role {
		r.observe(role)
	}
}

// setLeader records the known leader and tells observers when it changes.
func (r *Raft) setLeader(l leaderInfo) {
	if l.addr != "" {
		r.st.preVoteTermSeen = 0
	}
	if r.st.leader == l {
		return
	}
	r.st.leader = l
	// A copy, so that l itself does not escape: this runs on every
	// AppendEntries and most calls return above.
	published := l
	r.pub.leaderV.Store(&published)
	r.observe(LeaderObservation{Leader: l.addr, LeaderAddr: l.addr, LeaderID: l.id})
}

// setLastContact records that the leader was heard from.
func (r *Raft) setLastContact(now time.Time) {
	r.st.lastContact = now
	r.pub.setLastContact(now)
}

// fatal logs an error the node cannot recover from and shuts it down. A
// store call cut off by a shutdown already under way is logged, but not as
// an error (logFailure).
func (r *Raft) fatal(err error) {
	r.failed.Store(true)
	r.logFailure("shutting down after an unrecoverable error", err)
	go r.Shutdown()
}

// --- Log bookkeeping shared by every role. ---

// termAt returns the term of the entry at index in the appended view.
func (r *Raft) termAt(index uint64) (uint64, error) {
	if index == 0 {
		return 0, nil
	}
	if index > r.st.log.lastIndex {
		return 0, ErrLogNotFound
	}
	if t, ok := r.st.log.term(index); ok {
		return t, nil
	}
	if index == r.st.lastSnapshotIndex {
		return r.st.lastSnapshotTerm, nil
	}
	var l Log
	if err := r.logs.GetLog(index, &l); err != nil {
		return 0, fmt.Errorf("reading log entry %d: %w", index, err)
	}
	return l.Term, nil
}

// appendToLog adds entries to the appended view and queues their write,
// after deleting the view from deleteFrom onwards when it is not 0.
// Configuration entries take effect here, as soon as they are appended
// (Raft thesis §4.1).
func (r *Raft) appendToLog(entries []*Log, deleteFrom uint64, prevTerm uint64) {
	op := &writeOp{}
	if deleteFrom > 0 {
		oldLast := r.st.log.lastIndex
		r.st.log.truncate(deleteFrom, prevTerm)
		op.deleteFrom, op.deleteTo = deleteFrom, oldLast
		if deleteFrom <= r.st.configs.latestIndex {
			r.setLatestConfiguration(r.st.configs.committed, r.st.configs.committedIndex)
		}
	}
	r.st.log.append(entries)
	for _, e := range entries {
		r.applyConfigurationEntry(e)
	}
	op.entries = entries
	op.last = r.st.log.lastIndex
	if r.RestoreCommittedLogs {
		op.commitIndex = r.st.commitIndex
	}
	r.queueWrite(op)
	r.pub.setLastLog(r.st.log.last())
}

// applyConfigurationEntry makes a configuration entry the latest
// configuration. Entries reaching it were checked when they arrived.
func (r *Raft) applyConfigurationEntry(e *Log) {
	var c Configuration
	var err error
	switch e.Type {
	case LogConfiguration:
		c, err = decodeConfiguration(e.Data)
	case LogAddPeerDeprecated, LogRemovePeerDeprecated:
		c, err = decodePeers(e.Data, r.trans)
	default:
		return
	}
	if err != nil {
		// checkIncomingEntries refuses such entries before they are
		// appended; one from the local store means corrupted state.
		r.logger.Error("ignoring undecodable configuration entry", "index", e.Index, "error", err)
		return
	}
	r.st.configs.committed = r.st.configs.latest
	r.st.configs.committedIndex = r.st.configs.latestIndex
	r.setLatestConfiguration(c, e.Index)
}

// setLatestConfiguration records and publishes the latest configuration.
func (r *Raft) setLatestConfiguration(c Configuration, index uint64) {
	r.st.configs.latest = c
	r.st.configs.latestIndex = index
	r.st.configs.latestVoters = c.voters()
	r.pub.setLatestConfiguration(c)
}

// setCommitIndex advances the commit index.
func (r *Raft) setCommitIndex(index uint64) {
	if index <= r.st.commitIndex {
		return
	}
	r.st.commitIndex = index
	r.pub.commitIndex.Store(index)
	if r.st.configs.latestIndex <= index && !r.st.configs.stable() {
		r.st.configs.committed = r.st.configs.latest
		r.st.configs.committedIndex = r.st.configs.latestIndex
		r.onConfigurationCommitted()
	}
}

// onWriteDone handles the log writer's report on an op.
func (r *Raft) onWriteDone(res writeResult) {
	if res.op.resync {
		r.onResync(res)
		return
	}
	if res.op != r.st.writes.inflight {
		// An op that was on deck behind a failed write, dropped with it
		// and skipped by the writer (errWriteSkipped).
		return
	}
	if res.err != nil {
		r.onWriteFailed(res.err)
		return
	}
	op := r.st.writes.completed()
	r.noteWriteSucceeded(op)
	op.answerDurable() // the writer has, unless it is a resync
	for _, rep := range op.lateReplies {
		rep.rpc.Respond(rep.resp, nil)
	}
	r.trimMemLog()
	if r.st.lead != nil {
		r.updateCommitIndex()
	}
}

// onWriteFailed handles a failed log write, the first half of the
// failed-write reset (write_path_invariants.go): nothing in it or after it
// may be acknowledged, a leader or candidate steps down, and the view of the log is
// read back from the store by a resync op.
func (r *Raft) onWriteFailed(err error) {
	r.logger.Error("failed to write to the log store", "error", err)
	r.noteLogTrouble(time.Now())
	// A suffix that a dropped op was to delete may still be in the store.
	// It conflicts with the leader's log, and the commit index may already
	// cover its indexes, so the resync deletes it again before reading the
	// log back: it must never reappear in this node's view. A compaction a
	// dropped op carried is still owed too (compactedTo counts it): the
	// resync runs it, after the FSM has read what it deletes.
	resync := &writeOp{resync: true}
	for _, op := range r.st.writes.fail() {
		if op.deleteFrom > 0 && (resync.deleteFrom == 0 || op.deleteFrom < resync.deleteFrom) {
			resync.deleteFrom = op.deleteFrom
		}
		resync.deleteTo = max(resync.deleteTo, op.deleteTo, op.last)
		resync.compactTo = max(resync.compactTo, op.compactTo)
		resync.waitApplied = max(resync.waitApplied, op.waitApplied)
		replies := op.lateReplies
		if op.claimReplies() {
			replies = append(op.replies, replies...)
		}
		for _, rep := range replies {
			rep.resp.Success = false
			rep.rpc.Respond(rep.resp, nil)
		}
	}
	// A candidate's vote requests claimed entries that are now lost: it
	// must not win with them. A leader cannot serve without its log.
	if r.st.role != Follower {
		r.logger.Error("stepping down: this server cannot store its log", "role", r.st.role)
		r.becomeFollower(r.st.currentTerm)
	}
	r.st.writes.enqueue(resync)
}

// onResync adopts the end of the log as the store reports it after a
// failed write: the second half of the failed-write reset.
func (r *Raft) onResync(res writeResult) {
	w := &r.st.writes
	w.inflight = nil
	if res.err != nil {
		r.fatal(fmt.Errorf("reading the log back after a failed write: %w", res.err))
		return
	}
	if res.compactErr != nil {
		r.logger.Error("compacting the log after a failed write", "error", res.compactErr)
	} else {
		w.compacted = max(w.compacted, res.op.compactTo)
	}
	// compactedTo counts only compactions done or still queued, so that
	// the next snapshot queues again one that failed (invariant I6).
	r.recountCompaction()
	// The store was read before the ops queued after the resync ran. While
	// the log is broken only a snapshot adopted meanwhile queues any: its
	// delete of the whole log, or a compaction. The view is the store as
	// they will leave it, or an adopted snapshot would be undone and the
	// view would claim entries the store no longer holds.
	last, lastTerm := res.lastIndex, res.lastTerm
	durable := last
	for _, op := range w.queued {
		if op.deleteFrom > 0 && op.deleteFrom <= last {
			last, lastTerm = op.deleteFrom-1, 0
			durable = min(durable, last)
		}
		if n := len(op.entries); n > 0 {
			last, lastTerm = op.last, op.entries[n-1].Term
		}
	}
	// The log continues from the newest snapshot when the store holds
	// nothing after it (compaction may have emptied it), as on start.
	if r.st.lastSnapshotIndex >= last {
		last, lastTerm = r.st.lastSnapshotIndex, r.st.lastSnapshotTerm
	}
	if lastTerm == 0 && last > 0 {
		// Only a suffix truncation could leave this, and none is queued
		// while the log is broken.
		r.fatal(fmt.Errorf("resynchronising the log: the term of entry %d is unknown", last))
		return
	}
	r.st.log.reset(last, lastTerm)
	w.durable = max(durable, w.floor)
	w.broken = false
	if r.st.configs.latestIndex > last {
		r.setLatestConfiguration(r.st.configs.committed, r.st.configs.committedIndex)
	}
	r.pub.setLastLog(last, lastTerm)
	r.logger.Info("log view resynchronised with the store", "last-index", last)
}

// trimMemLog lets go of entries that are durable and already with the FSM,
// and of the oldest durable ones the FSM has yet to take while, with those
// in the FSM's tasks, they are charged more than MaxUnappliedMemoryBytes:
// the FSM goroutine then reads them from the log store (backpressure.go).
func (r *Raft) trimMemLog() {
	durable := r.st.writes.durable
	r.st.log.trim(min(durable, r.st.dispatched))
	r.st.log.trimToBudget(durable, r.config().maxUnappliedMemoryBytes()-r.fsmHeld.Load())
}
