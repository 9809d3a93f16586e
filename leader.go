package raft

import (
	"fmt"
	"sync/atomic"
	"time"

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
	// match is reused by updateCommitIndex.
	match map[ServerID]uint64

	// verifyRound numbers VerifyLeader rounds; verifies are the futures
	// waiting on one, in round order.
	verifyRound uint64
	verifies    []pendingVerify
}

// pendingVerify is a VerifyLeader waiting for a quorum to acknowledge a
// heartbeat sent after its round started.
type pendingVerify struct {
	round  uint64
	future *verifyFuture
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
	// higherTerm is the newest term any follower answered with, when newer
	// than term.
	higherTerm atomic.Uint64
	// stopped is set, before the run loop changes the log in any way other
	// than appending, when this term of leadership ends. Replication reads
	// entries first and checks it after, so it never sends entries from a
	// log that has moved on.
	stopped atomic.Bool
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

// stopLeading ends this node's leadership: replication stops, and every
// request it held fails: entries in flight that are not yet committed with
// err, pending verifications with verifyErr.
func (r *Raft) stopLeading(err, verifyErr error) {
	lead := r.st.lead
	r.st.lead = nil
	lead.shared.stopped.Store(true)
	for _, repl := range lead.repls {
		repl.stop()
	}
	for _, v := range lead.verifies {
		v.future.respond(verifyErr)
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
	r.failConfigChangeLocked(err)
	replaceBool(r.leaderCh, false)
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
		repl.stop()
		delete(lead.repls, id)
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
	if err := r.leaderRefusal(); err != nil {
		first.respond(err)
		return
	}
	batch := []*logFuture{first}
	maxBatch := r.config().MaxAppendEntries
drain:
	for len(batch) < maxBatch {
		select {
		case f := <-r.applyCh:
			batch = append(batch, f)
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
	}
	return nil
}

// appendAsLeader assigns indexes to a batch of entries, appends them to the
// log and hands them at once to the log writer and to every replication
// goroutine (design.md, the write path).
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
	lead := r.st.lead
	lead.shared.lastIndex.Store(index)
	for _, repl := range lead.repls {
		repl.trigger()
	}
	metrics.SetGauge([]string{"raft", "leader", "dispatchNumLogs"}, float32(len(batch)))
	metrics.MeasureSince([]string{"raft", "leader", "dispatchLog"}, start)
}

// onReplicationProgress reacts to replication goroutines' news.
func (r *Raft) onReplicationProgress() {
	lead := r.st.lead
	if t := lead.shared.higherTerm.Load(); t > r.st.currentTerm {
		r.logger.Warn("a follower is in a newer term, stepping down", "term", t)
		r.becomeFollower(t)
		return
	}
	r.checkVerifies()
	r.updateCommitIndex()
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
	q := quorumMatchIndex(r.st.configs.latest.voters(), lead.match)
	next := nextCommitIndex(r.st.commitIndex, q, lead.termStart)
	if next == r.st.commitIndex {
		return
	}
	metrics.SetGauge([]string{"raft", "commitNumLogs"}, float32(next-r.st.commitIndex))
	r.setCommitIndex(next)
	lead.shared.commitIndex.Store(next)
	for _, f := range r.st.futures {
		if f.log.Index > next {
			break
		}
		metrics.MeasureSince([]string{"raft", "commitTime"}, f.dispatched)
	}
}

// checkLeaderLease steps down when a quorum of voters has not been heard
// from within LeaderLeaseTimeout, or when the log writer has been stuck
// past LogWriteStallTimeout, and arms the next check.
func (r *Raft) checkLeaderLease() {
	conf := r.config()
	lease := conf.LeaderLeaseTimeout
	now := time.Now()
	if stall := conf.LogWriteStallTimeout; stall > 0 {
		if d := r.st.writes.stalledFor(now); d > stall {
			r.logger.Error("stepping down: the log store has not finished a write", "waited", d)
			r.becomeFollower(r.st.currentTerm)
			return
		}
	}
	contacted, oldest := 0, time.Duration(0)
	voters := r.st.configs.latest.voters()
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

// onVerify starts a VerifyLeader round: every heartbeat goroutine sends a
// heartbeat now, and the round completes once a quorum acknowledged one.
func (r *Raft) onVerify(f *verifyFuture) {
	lead := r.st.lead
	if lead == nil {
		f.respond(ErrNotLeader)
		return
	}
	lead.verifyRound++
	lead.shared.verifyRound.Store(lead.verifyRound)
	lead.verifies = append(lead.verifies, pendingVerify{round: lead.verifyRound, future: f})
	for _, repl := range lead.repls {
		repl.pokeHeartbeat()
	}
	r.checkVerifies()
}

// checkVerifies answers the verification rounds a quorum acknowledged.
func (r *Raft) checkVerifies() {
	lead := r.st.lead
	if len(lead.verifies) == 0 {
		return
	}
	voters := r.st.configs.latest.voters()
	acked := make(map[ServerID]uint64, len(voters))
	acked[r.localID] = lead.verifyRound
	for id, repl := range lead.repls {
		acked[id] = repl.verified.Load()
	}
	done := quorumMatchIndex(voters, acked)
	n := 0
	for _, v := range lead.verifies {
		if v.round > done {
			break
		}
		v.future.respond(nil)
		n++
	}
	lead.verifies = append(lead.verifies[:0], lead.verifies[n:]...)
}

// onConfigChange takes a membership change request.
func (r *Raft) onConfigChange(f *configurationChangeFuture) {
	f.respond(ErrNotImplementedYet)
}

// failConfigChangeLocked answers a membership change in flight with err.
func (r *Raft) failConfigChangeLocked(err error) {}

// onConfigurationCommitted reacts to the latest configuration committing.
func (r *Raft) onConfigurationCommitted() {}

// onLeadershipTransfer takes a leadership transfer request.
func (r *Raft) onLeadershipTransfer(f *leadershipTransferFuture) {
	f.respond(ErrNotImplementedYet)
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
