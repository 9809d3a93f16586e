package raft

import (
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-metrics"
)

// leaderState is the state of a leader. Owned by the run loop, except the
// fields the replication goroutines read, which are atomics in shared.
type leaderState struct {
	// termStart is the index of this leader's first entry, its no-op: the
	// commit index moves only to entries from here on (§5.4.2).
	termStart uint64
	shared    *replicationShared
	repls     map[ServerID]*replicator
	// progressCh (capacity one) is poked by replication goroutines when a
	// match index, a contact time, a verification round or a newer term
	// changed; the run loop then reads their published figures.
	progressCh chan struct{}
	// ledger records the memory charge of the entries this leader
	// appended, for backpressure (backpressure.go).
	ledger byteLedger
	// match and indexes are reused by updateCommitIndex.
	match   map[ServerID]uint64
	indexes []uint64

	// retired are replicators of servers that left the configuration,
	// finishing the entry that told them so.
	retired []*replicator

	// verifyRound numbers VerifyLeader rounds; verifies are the futures
	// waiting on one, in round order.
	verifyRound uint64
	verifies    []pendingVerify
	// roundStarted is when the newest round started, on the monotonic
	// clock: how long a round takes bounds how long the run loop waits
	// after one for the readers it answered (read_intake.go, linger).
	roundStarted time.Time
	// roundDone is the newest round a quorum acknowledged, roundTook how
	// long it took, and roundAckers the voter followers that had
	// acknowledged it when it was seen done: the next round asks them
	// first (beginVerifyRound).
	roundDone   uint64
	roundTook   time.Duration
	roundAckers []*replicator
	// roundPartial is set while the newest round asked only some
	// followers; widenTimer then asks the others if it is still pending
	// after widenAfter (widenRound).
	roundPartial bool
	widenAfter   time.Duration
	widenTimer   *time.Timer
	// acked and ackedBuf are reused by checkVerifies.
	acked    map[ServerID]uint64
	ackedBuf []uint64

	// readsBeforeCommit are ReadIndex requests that arrived before this
	// leader committed an entry of its term; until then its commit index
	// may lag the cluster's.
	readsBeforeCommit []*readIndexFuture
	// heldVerifies are VerifyLeader requests held while this node's state
	// may not be committed (a user restore runs or waits for its no-op, or
	// its snapshot is unconfirmed: unconfirmed_snapshot.go).
	heldVerifies []*verifyFuture
	// restored is the Restore whose snapshot, at restoredAt, the log
	// starts from; once the no-op after it commits, the FSM restores it and
	// the Restore is answered.
	restored   *userRestoreFuture
	restoredAt uint64

	// configChange is the membership change in flight: appended, not yet
	// committed. At most one exists (Raft thesis §4.1).
	configChange *configurationChangeFuture
	// transfer is the leadership transfer in progress, if any.
	transfer *transferState
	// transferStarted is set when this leader starts a leadership
	// transfer, and ends its lease reads for the rest of its term
	// (lease.go).
	transferStarted bool
}

// pendingVerify is a VerifyLeader or a ReadIndex waiting for a quorum to
// acknowledge a heartbeat sent after its round started. Exactly one of
// future and read is set.
type pendingVerify struct {
	round  uint64
	future *verifyFuture
	read   *readIndexFuture
}

// answer completes the verification with err.
func (v pendingVerify) answer(err error) {
	if v.future != nil {
		v.future.respond(err)
	} else {
		v.read.respond(err)
	}
}

// replicationShared is what the leader publishes to its replication
// goroutines for one term of leadership.
type replicationShared struct {
	term        uint64
	lastIndex   atomic.Uint64
	commitIndex atomic.Uint64
	// verifyRound is the newest VerifyLeader round; heartbeats sent after
	// it was set acknowledge it.
	verifyRound atomic.Uint64
	// stopped is set, before the run loop changes the log in any way other
	// than appending, when this term of leadership ends. Replication reads
	// entries first and checks it after, so it never sends entries from a
	// log that has moved on.
	stopped atomic.Bool
	// transferring is set while a leadership transfer waits for its
	// target to catch up: every accepted request then wakes the run loop
	// (replicator.recordSuccess).
	transferring atomic.Bool
}

// becomeLeader takes over as leader for the current term.
func (r *Raft) becomeLeader() {
	r.st.candidate = nil
	r.setRole(Leader)
	r.setLeader(leaderInfo{addr: r.localAddr, id: r.localID})
	r.logger.Info("entering leader state", "leader", r, "term", r.st.currentTerm)
	metrics.IncrCounter([]string{"raft", "state", "leader"}, 1)

	lead := &leaderState{
		termStart:  r.st.log.lastIndex + 1,
		shared:     &replicationShared{term: r.st.currentTerm},
		repls:      make(map[ServerID]*replicator),
		progressCh: make(chan struct{}, 1),
		match:      make(map[ServerID]uint64),
	}
	lead.shared.lastIndex.Store(r.st.log.lastIndex)
	lead.shared.commitIndex.Store(r.st.commitIndex)
	r.st.lead = lead
	r.startStopReplication()

	replaceBool(r.leaderCh, true)
	r.notifyLeadership(true)

	// A new leader's first entry, a no-op of its own term, commits every
	// entry earlier leaders left uncommitted (§5.4.2, §8).
	noop := &logFuture{log: Log{Type: LogNoop}}
	noop.init(r.stoppedCh)
	r.appendAsLeader([]*logFuture{noop})
	r.resetTimer(r.config().LeaderLeaseTimeout)
}

// notifyLeadership sends v on Config.NotifyCh, waiting for the reader as
// the contract says, but never past shutdown.
func (r *Raft) notifyLeadership(v bool) {
	ch := r.config().NotifyCh
	if ch == nil {
		return
	}
	select {
	case ch <- v:
	case <-r.shutdownCh:
	}
}

// stopLeading ends this node's leadership, after the new role has been
// published: the step-down reset (write_path_invariants.go). Replication
// stops, and every request it held fails: entries in flight that are not
// yet committed with err, pending verifications with verifyErr, and a user
// restore in progress with err.
func (r *Raft) stopLeading(err, verifyErr error) {
	r.revokeLease()
	lead := r.st.lead
	r.st.lead = nil
	lead.shared.stopped.Store(true)
	for _, repl := range lead.repls {
		repl.stop()
	}
	for _, repl := range lead.retired {
		repl.stop()
	}
	if t := lead.transfer; t != nil {
		// Losing leadership is what a transfer is for, whoever won.
		t.timer.Stop()
		r.logger.Debug("lost leadership during transfer (expected)")
		t.future.respond(nil)
	}
	if f := lead.configChange; f != nil {
		f.respond(err)
	}
	if lead.widenTimer != nil {
		lead.widenTimer.Stop()
	}
	for _, v := range lead.verifies {
		v.answer(verifyErr)
	}
	for _, f := range lead.readsBeforeCommit {
		f.respond(verifyErr)
	}
	for _, f := range lead.heldVerifies {
		f.respond(verifyErr)
	}
	// The run loop no longer comes back to the intake for this
	// leadership's rounds (read_intake.go).
	r.settleReadIntake()
	r.endUserRestore(err)
	if f := lead.restored; f != nil {
		// The log holds the user's snapshot, and the no-op after it has
		// not committed: the next leader may or may not have it. The
		// snapshot stays unconfirmed, as one a follower installed
		// (unconfirmed_snapshot.go): the FSM's restore and reads wait
		// until a leader shows it committed, and a leader whose log
		// conflicts with it stops this node.
		r.logger.Warn("leadership ended before the user snapshot restore committed; it stays unconfirmed",
			"index", lead.restoredAt, "commit-index", r.st.commitIndex)
		f.respond(err)
	}
	// Entries above the commit index may or may not commit under a later
	// leader; their outcome is unknown here. Committed ones keep their
	// futures: the FSM goroutine still answers them.
	kept := r.st.futures[:0]
	for _, f := range r.st.futures {
		if f.log.Index > r.st.commitIndex {
			f.respond(err)
			continue
		}
		kept = append(kept, f)
	}
	clear(r.st.futures[len(kept):])
	r.st.futures = kept
	r.notifyLeadership(false)
}

// startStopReplication makes the set of replication goroutines match the
// latest configuration.
func (r *Raft) startStopReplication() {
	lead := r.st.lead
	want := make(map[ServerID]Server)
	for _, s := range r.st.configs.latest.Servers {
		if s.ID != r.localID {
			want[s.ID] = s
		}
	}
	for id, repl := range lead.repls {
		if s, ok := want[id]; ok && s.Address == repl.peer.Address {
			continue
		}
		delete(lead.repls, id)
		if _, stays := want[id]; stays {
			// Same server, new address: start over there.
			repl.stop()
		} else {
			// Send it the entry that removed it, so it knows, then stop.
			repl.retire(r.st.log.lastIndex)
			lead.retired = append(lead.retired, repl)
		}
		r.observe(PeerObservation{Removed: true, Peer: repl.peer})
	}
	for id, s := range want {
		if _, ok := lead.repls[id]; ok {
			continue
		}
		repl := newReplicator(r, lead, s)
		lead.repls[id] = repl
		repl.start()
		r.observe(PeerObservation{Peer: s})
	}
	metrics.SetGauge([]string{"raft", "peers"}, float32(len(r.st.configs.latest.Servers)))
}

// onApply takes Apply and Barrier requests: the leader drains up to
// MaxAppendEntries of them at once and appends them as one batch (group
// commit).
func (r *Raft) onApply(first *logFuture) {
	var now lazyNow
	if !first.take(&now) {
		return
	}
	if err := r.leaderRefusal(); err != nil {
		first.respond(err)
		return
	}
	batch := []*logFuture{first}
	pending := entryMemoryBytes(&first.log)
	maxBatch := r.config().MaxAppendEntries
drain:
	for len(batch) < maxBatch && !r.leaderFull(pending) {
		select {
		case f := <-r.applyCh:
			if !f.take(&now) {
				continue
			}
			batch = append(batch, f)
			pending += entryMemoryBytes(&f.log)
		default:
			break drain
		}
	}
	r.appendAsLeader(batch)
}

// leaderRefusal returns why a request that needs the leader is refused, or
// nil on a leader that can take it.
func (r *Raft) leaderRefusal() error {
	switch {
	case r.st.lead == nil:
		return ErrNotLeader
	case r.st.writes.broken:
		return ErrNotLeader
	case r.st.lead.transfer != nil:
		return ErrLeadershipTransferInProgress
	}
	return nil
}

// appendAsLeader assigns indexes to a batch of entries, appends them to the
// log and hands them at once to the log writer and to every replication
// goroutine (ARCHITECTURE.md, the write path).
func (r *Raft) appendAsLeader(batch []*logFuture) {
	start := time.Now()
	term := r.st.currentTerm
	index := r.st.log.lastIndex
	entries := make([]*Log, len(batch))
	for i, f := range batch {
		index++
		f.log.Index = index
		f.log.Term = term
		f.log.AppendedAt = start
		f.dispatched = start
		entries[i] = &f.log
	}
	r.st.futures = append(r.st.futures, batch...)
	r.appendToLog(entries, 0, 0)
	// The write first, the replicators last: the goroutine woken last
	// runs first once the run loop waits, and on the way to a commit the
	// round trip to the followers is the longer leg.
	r.handOffWrite()
	lead := r.st.lead
	lead.ledger.add(entries)
	lead.shared.lastIndex.Store(index)
	for _, repl := range lead.repls {
		repl.trigger()
	}
	metrics.SetGauge(keyDispatchNumLogs, float32(len(batch)))
	metrics.MeasureSince(keyDispatchLog, start)
}

// onReplicationProgress reacts to replication goroutines' news.
func (r *Raft) onReplicationProgress() {
	if t := r.newestMemberTerm(); t > r.st.currentTerm {
		r.logger.Warn("a follower is in a newer term, stepping down", "term", t)
		r.becomeFollower(t)
		return
	}
	answered := r.checkVerifies()
	r.widenRound()
	if r.intake.collecting {
		// A round may have ended: the ReadIndex calls that arrived
		// meanwhile start the next one, with the calls of the readers
		// it answered when they come back soon enough (read_intake.go).
		r.afterRound(answered)
	}
	r.updateCommitIndex()
	if r.st.lead != nil {
		r.checkTransfer()
	}
}

// newestMemberTerm returns the newest term a server of the latest
// configuration answered this leader with. Servers that left it are not
// counted: a removed server that missed its removal may have raised its
// term while cut off, and must not depose a leader that has a quorum.
func (r *Raft) newestMemberTerm() uint64 {
	var t uint64
	for _, repl := range r.st.lead.repls {
		t = max(t, repl.higherTerm.Load())
	}
	return t
}

// updateCommitIndex moves the commit index to what a majority of voters
// hold, counting this leader's durable index as its own match index.
func (r *Raft) updateCommitIndex() {
	lead := r.st.lead
	clear(lead.match)
	lead.match[r.localID] = r.st.writes.durable
	for id, repl := range lead.repls {
		lead.match[id] = repl.match.Load()
	}
	q := quorumMatchIndexInto(lead.indexes[:0], r.st.configs.latestVoters, lead.match)
	next := nextCommitIndex(r.st.commitIndex, q, lead.termStart)
	if next == r.st.commitIndex {
		return
	}
	metrics.SetGauge(keyCommitNumLogs, float32(next-r.st.commitIndex))
	r.setCommitIndex(next)
	if r.st.lead != lead {
		// Committing a configuration without this node ended its
		// leadership.
		return
	}
	lead.shared.commitIndex.Store(next)
	r.confirmAsLeader()
	r.startDeferredReads()
	for _, f := range r.st.futures {
		if f.log.Index > next {
			break
		}
		metrics.MeasureSince(keyCommitTime, f.dispatched)
	}
}

// checkLeaderLease steps down when a quorum of voters has not been heard
// from within LeaderLeaseTimeout, or when the log writer has been stuck
// past LogWriteStallTimeout, and arms the next check.
func (r *Raft) checkLeaderLease() {
	conf := r.config()
	lease := conf.LeaderLeaseTimeout
	if now := time.Now(); r.noteStall(now) {
		// The stall also starts the cool-down of the campaign rule
		// (election.go), so this server does not win the next election.
		r.logger.Error("stepping down: the log store has not finished a write", "waited", r.st.writes.stalledFor(now))
		r.becomeFollower(r.st.currentTerm)
		return
	}
	now := r.clock.now()
	contacted, oldest := 0, time.Duration(0)
	voters := r.st.configs.latestVoters
	for _, id := range voters {
		if id == r.localID {
			contacted++
			continue
		}
		repl, ok := r.st.lead.repls[id]
		if !ok {
			continue
		}
		since := now.Sub(repl.contact())
		if since <= lease {
			contacted++
			oldest = max(oldest, since)
		} else {
			r.logger.Debug("failed to contact follower", "server-id", id, "time", since)
		}
		metrics.AddSample([]string{"raft", "leader", "lastContact"}, float32(since/time.Millisecond))
	}
	if contacted < quorumSize(len(voters)) {
		r.logger.Warn("failed to contact a quorum of voters, stepping down")
		metrics.IncrCounter([]string{"raft", "transition", "leader_lease_timeout"}, 1)
		r.becomeFollower(r.st.currentTerm)
		return
	}
	next := lease - oldest
	if next < lease/10 {
		next = lease / 10
	}
	r.resetTimer(next)
}

// onVerifies starts one VerifyLeader round for calls that arrived
// together (drainVerifyCh).
func (r *Raft) onVerifies(batch []*verifyFuture) {
	lead := r.st.lead
	if lead == nil {
		for _, f := range batch {
			f.respond(ErrNotLeader)
		}
		return
	}
	if r.readsHeld() {
		lead.heldVerifies = append(lead.heldVerifies, batch...)
		return
	}
	round := r.beginVerifyRound()
	for _, f := range batch {
		lead.verifies = append(lead.verifies, pendingVerify{round: round, future: f})
	}
	r.checkVerifies()
}

// beginVerifyRound starts a verification round and returns its number:
// heartbeat goroutines send a heartbeat now, and the round completes once
// a quorum of voters acknowledged one sent after it started (any
// heartbeat: one a goroutine sends on its own schedule counts as well).
// The caller adds the requests the round serves to lead.verifies and then
// calls checkVerifies.
//
// A round needs only a quorum, so it asks only the voter followers that
// had acknowledged the previous round when the leader saw it done, when
// with this leader they make a quorum: in a cluster of three, usually the
// faster follower alone, and the other's heartbeat, which the round would
// leave unused, is not sent. If the round is still pending after twice as
// long as the previous one took (within [minRoundWiden, a tenth of
// HeartbeatTimeout]), the others are asked too (widenRound), so a
// follower that fails or slows down costs one slow round, not a stuck
// one, and the next round asks whoever answered.
func (r *Raft) beginVerifyRound() uint64 {
	lead := r.st.lead
	lead.verifyRound++
	lead.roundStarted = time.Now()
	lead.shared.verifyRound.Store(lead.verifyRound)
	if !r.pokeRoundQuorum() {
		lead.roundPartial = false
		for _, repl := range lead.repls {
			repl.pokeHeartbeat()
		}
		return lead.verifyRound
	}
	lead.roundPartial = true
	lead.widenAfter = min(max(2*lead.roundTook, minRoundWiden), r.config().HeartbeatTimeout/10)
	if lead.widenTimer == nil {
		progressCh := lead.progressCh
		lead.widenTimer = time.AfterFunc(lead.widenAfter, func() { notify(progressCh) })
	} else {
		lead.widenTimer.Reset(lead.widenAfter)
	}
	return lead.verifyRound
}

// minRoundWiden is the shortest wait before a round that asked only some
// followers asks the others.
const minRoundWiden = 200 * time.Microsecond

// pokeRoundQuorum asks for a heartbeat from the voter followers that
// acknowledged the newest round done, if with this leader they make a
// quorum, and reports whether it did.
func (r *Raft) pokeRoundQuorum() bool {
	lead := r.st.lead
	if lead.roundDone == 0 {
		return false
	}
	voters := r.st.configs.latestVoters
	var ready int
	for _, id := range voters {
		if id == r.localID {
			ready++
		} else if repl := lead.repls[id]; repl != nil && slices.Contains(lead.roundAckers, repl) {
			// Still a voter, and still replicated to by the same
			// replicator: the configuration may have changed since.
			ready++
		}
	}
	if ready < quorumSize(len(voters)) {
		return false
	}
	for _, repl := range lead.roundAckers {
		repl.pokeHeartbeat()
	}
	return true
}

// widenRound asks every follower for a heartbeat when the pending round
// asked only some and has waited for them long enough.
func (r *Raft) widenRound() {
	lead := r.st.lead
	if !lead.roundPartial || len(lead.verifies) == 0 || time.Since(lead.roundStarted) < lead.widenAfter {
		return
	}
	lead.roundPartial = false
	for _, repl := range lead.repls {
		repl.pokeHeartbeat()
	}
}

// onReadIndex takes one ReadIndex request (Raft thesis §6.4).
func (r *Raft) onReadIndex(f *readIndexFuture) {
	r.onReadIndexes([]*readIndexFuture{f})
}

// onReadIndexes takes ReadIndex requests that arrived together: those a
// lease answers (lease.go) go to the FSM path at once, and the others
// share one verification round, which records the commit index for all of
// them. batch is only borrowed.
func (r *Raft) onReadIndexes(batch []*readIndexFuture) {
	lead := r.st.lead
	if lead == nil {
		for _, f := range batch {
			f.respond(ErrNotLeader)
		}
		return
	}
	leased := r.readFromLease(batch)
	var round uint64
	for _, f := range batch {
		switch {
		case leased && f.lease:
		case r.st.commitIndex < lead.termStart:
			lead.readsBeforeCommit = append(lead.readsBeforeCommit, f)
		default:
			if round == 0 {
				round = r.beginVerifyRound()
			}
			f.index = r.st.commitIndex
			lead.verifies = append(lead.verifies, pendingVerify{round: round, read: f})
		}
	}
	if round != 0 {
		r.checkVerifies()
	}
}

// startDeferredReads starts the reads that waited for this leader's first
// commit.
func (r *Raft) startDeferredReads() {
	lead := r.st.lead
	if len(lead.readsBeforeCommit) == 0 || r.st.commitIndex < lead.termStart {
		return
	}
	reads := lead.readsBeforeCommit
	lead.readsBeforeCommit = nil
	r.onReadIndexes(reads)
}

// readConfirmed hands a confirmed read to the FSM path: it is answered once
// the FSM goroutine has applied its index. It reports whether a read made
// on this node was answered at once.
func (r *Raft) readConfirmed(f *readIndexFuture) bool {
	if f.remote {
		f.respond(nil)
		return false
	}
	return r.queueConfirmedRead(f)
}

// checkVerifies answers the verification rounds a quorum acknowledged, and
// returns how many ReadIndex calls made on this node it answered at once.
func (r *Raft) checkVerifies() (answered int) {
	lead := r.st.lead
	if len(lead.verifies) == 0 {
		return 0
	}
	voters := r.st.configs.latestVoters
	if lead.acked == nil {
		lead.acked = make(map[ServerID]uint64, len(voters))
	}
	acked := lead.acked
	clear(acked)
	acked[r.localID] = lead.verifyRound
	for id, repl := range lead.repls {
		acked[id] = repl.verified.Load()
	}
	lead.ackedBuf = slices.Grow(lead.ackedBuf[:0], len(voters))
	done := quorumMatchIndexInto(lead.ackedBuf, voters, acked)
	if done > lead.roundDone {
		if done == lead.verifyRound {
			lead.roundTook = time.Since(lead.roundStarted)
		}
		lead.roundDone = done
		clear(lead.roundAckers)
		lead.roundAckers = lead.roundAckers[:0]
		for _, id := range voters {
			if repl := lead.repls[id]; repl != nil && acked[id] >= done {
				lead.roundAckers = append(lead.roundAckers, repl)
			}
		}
	}
	n := 0
	for _, v := range lead.verifies {
		if v.round > done {
			break
		}
		if v.read != nil {
			if r.readConfirmed(v.read) {
				answered += v.read.callers()
			}
		} else {
			v.future.respond(nil)
		}
		n++
	}
	lead.verifies = append(lead.verifies[:0], lead.verifies[n:]...)
	return answered
}

// configChangeChIfReady returns the channel of membership change requests
// when this node can take one now, else nil so requests wait in it: a
// leader takes one change at a time, only once the previous configuration
// has committed and it has committed an entry of its own term (Raft thesis
// §4.1; the latter closes the single-server-change bug described in the
// thesis errata). Non-leaders refuse requests at once.
func (r *Raft) configChangeChIfReady() chan *configurationChangeFuture {
	lead := r.st.lead
	if lead == nil {
		return r.configChangeCh
	}
	if r.st.restoring != nil || lead.configChange != nil || !r.st.configs.stable() || r.st.commitIndex < lead.termStart {
		return nil
	}
	return r.configChangeCh
}

// onConfigChange appends a membership change. The new configuration takes
// effect at once; the request is answered when it commits.
func (r *Raft) onConfigChange(f *configurationChangeFuture) {
	if err := r.leaderRefusal(); err != nil {
		f.respond(err)
		return
	}
	next, err := nextConfiguration(r.st.configs.latest, r.st.configs.latestIndex, f.req)
	if err != nil {
		f.respond(err)
		return
	}
	r.logger.Info("updating configuration",
		"command", f.req.command, "server-id", f.req.serverID, "server-addr", f.req.serverAddress,
		"servers", hclog.Fmt("%+v", next.Servers))
	entry := &logFuture{log: Log{Type: LogConfiguration, Data: EncodeConfiguration(next)}}
	if r.protocolVersion < 2 {
		entry.log = Log{Type: LogRemovePeerDeprecated, Data: encodePeers(next, r.trans)}
	}
	entry.init(r.stoppedCh)
	r.appendAsLeader([]*logFuture{entry})
	f.index = entry.log.Index
	r.st.lead.configChange = f
	r.startStopReplication()
}

// onConfigurationCommitted reacts to the latest configuration committing:
// the change that made it is answered, and a leader that is no longer a
// voter steps down (and shuts down if ShutdownOnRemove is set).
func (r *Raft) onConfigurationCommitted() {
	lead := r.st.lead
	if lead == nil {
		return
	}
	if f := lead.configChange; f != nil && f.index <= r.st.configs.committedIndex {
		lead.configChange = nil
		f.respond(nil)
	}
	if hasVote(r.st.configs.committed, r.localID) {
		return
	}
	if r.config().ShutdownOnRemove {
		r.logger.Info("removed ourself, shutting down")
		r.becomeFollower(r.st.currentTerm)
		go r.Shutdown()
		return
	}
	r.logger.Info("removed ourself, transitioning to follower")
	r.becomeFollower(r.st.currentTerm)
}

// --- Leadership transfer (Raft thesis §3.10). ---

// transferState is a leadership transfer in progress. Owned by the run
// loop.
type transferState struct {
	future *leadershipTransferFuture
	target *replicator
	// addr is where TimeoutNow goes: the address the caller gave, or the
	// target's address in the configuration.
	addr ServerAddress
	// timer bounds each stage: bringing the target up to date and sending
	// TimeoutNow, then losing leadership to it.
	timer *time.Timer
	// sending and sent say where TimeoutNow is.
	sending, sent bool
}

// transferResult reports the TimeoutNow of one transfer.
type transferResult struct {
	transfer *transferState
	err      error
}

// onLeadershipTransfer starts a transfer: the target is brought up to
// date, then told to campaign at once. Meanwhile other requests get
// ErrLeadershipTransferInProgress.
func (r *Raft) onLeadershipTransfer(f *leadershipTransferFuture) {
	lead := r.st.lead
	if lead == nil {
		f.respond(ErrNotLeader)
		return
	}
	if lead.transfer != nil {
		f.respond(ErrLeadershipTransferInProgress)
		return
	}
	var repl *replicator
	if f.id == nil {
		repl = r.mostUpToDateVoter()
		if repl == nil {
			f.respond(fmt.Errorf("cannot find peer"))
			return
		}
	} else if repl = lead.repls[*f.id]; repl == nil {
		f.respond(fmt.Errorf("cannot find replication state for %v", *f.id))
		return
	} else if !hasVote(r.st.configs.latest, *f.id) {
		r.logger.Warn("refusing a leadership transfer to a non-voter", "id", *f.id)
		f.respond(ErrLeadershipTransferToNonVoter)
		return
	}
	addr := repl.peer.Address
	if f.address != nil {
		addr = *f.address
	}
	r.logger.Info("starting leadership transfer", "id", repl.peer.ID, "address", addr)
	r.revokeLease()
	lead.transferStarted = true
	lead.transfer = &transferState{future: f, target: repl, addr: addr, timer: time.NewTimer(r.config().ElectionTimeout)}
	lead.shared.transferring.Store(true)
	repl.trigger()
	r.checkTransfer()
}

// mostUpToDateVoter returns the replicator of the voter that holds the
// most of the log, or nil.
func (r *Raft) mostUpToDateVoter() *replicator {
	var best *replicator
	for _, s := range r.st.configs.latest.Servers {
		repl, ok := r.st.lead.repls[s.ID]
		if !ok || s.Suffrage != Voter {
			continue
		}
		if best == nil || repl.match.Load() > best.match.Load() {
			best = repl
		}
	}
	return best
}

// checkTransfer sends TimeoutNow once the target holds the whole log.
func (r *Raft) checkTransfer() {
	lead := r.st.lead
	t := lead.transfer
	if t == nil || t.sending || t.sent || t.target.match.Load() < r.st.log.lastIndex {
		return
	}
	t.sending = true
	id, addr := t.target.peer.ID, t.addr
	req := &TimeoutNowRequest{RPCHeader: r.rpcHeader()}
	r.routines.goFunc(func() {
		err := r.trans.TimeoutNow(id, addr, req, &TimeoutNowResponse{})
		if err != nil {
			err = fmt.Errorf("failed to make TimeoutNow RPC to %v: %v", id, err)
		}
		select {
		case r.eventCh <- transferResult{transfer: t, err: err}:
		case <-r.shutdownCh:
		}
	})
}

// onTransferDone handles the answer to a transfer's TimeoutNow. A late
// answer, for a transfer that already ended, is dropped: it says nothing
// about the transfer in progress now, if any.
func (r *Raft) onTransferDone(res transferResult) {
	lead := r.st.lead
	if lead == nil || lead.transfer == nil || lead.transfer != res.transfer {
		return
	}
	t := lead.transfer
	if res.err != nil {
		r.logger.Debug(res.err.Error())
		r.endTransfer(res.err)
		return
	}
	// The target campaigns now; give it an election's time to win.
	t.sending, t.sent = false, true
	t.timer.Reset(r.config().ElectionTimeout)
}

// onTransferTimeout ends a transfer that did not finish in time.
func (r *Raft) onTransferTimeout() {
	err := fmt.Errorf("leadership transfer timeout")
	r.logger.Debug(err.Error())
	r.endTransfer(err)
}

// endTransfer answers the transfer in progress with err and lets this
// leader take requests again.
func (r *Raft) endTransfer(err error) {
	t := r.st.lead.transfer
	r.st.lead.transfer = nil
	r.st.lead.shared.transferring.Store(false)
	t.timer.Stop()
	t.future.respond(err)
}

// liveBootstrap bootstraps a running follower that has no state.
func (r *Raft) liveBootstrap(configuration Configuration) error {
	if r.st.role != Follower {
		return ErrCantBootstrap
	}
	if !hasVote(configuration, r.localID) {
		return ErrNotVoter
	}
	conf := *r.config()
	if err := BootstrapCluster(&conf, r.logs.LogStore, r.stable.StableStore, r.snapshots, r.trans, configuration); err != nil {
		return err
	}
	var entry Log
	if err := r.logs.GetLog(1, &entry); err != nil {
		return fmt.Errorf("reading the bootstrap entry back: %w", err)
	}
	r.st.currentTerm = 1
	r.pub.term.Store(1)
	r.st.log.reset(entry.Index, entry.Term)
	r.st.writes.durable = entry.Index
	r.pub.setLastLog(entry.Index, entry.Term)
	r.applyConfigurationEntry(&entry)
	return nil
}
