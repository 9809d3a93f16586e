package raft

import "fmt"

// --- Snapshots the cluster may not have committed. ---
//
// A user restore (Raft.Restore, snapshot.go) puts the user's state at an
// index X of the leader's term T that no log holds: it is an entry of its
// own, and it is committed, like any entry of term T, only once an entry
// after it of the same term is (§5.4.2). Until then the leader's log, and
// the log of every follower that installed it, start from a snapshot the
// next leader may never have. Nothing else puts a state the cluster may
// not have committed in a node's store: a snapshot the leader sends
// covers only what it applied, so committed entries, and a node's own
// snapshots cover only what it applied.
//
// While the node runs, the FSM never holds such a state. The restore of a
// snapshot adopted while the node runs, at an index past its commit index, is held
// (st.heldRestore) until the snapshot is confirmed, and nothing is handed
// to the FSM goroutine behind it (nextFSMTask); confirmSnapshot queues it.
// Holding reads alone would not do: a read answered just before the FSM
// took the snapshot (a lease read, a ReadIndex whose caller reads the FSM
// a moment later) would show it, and if it never commits, that read saw
// a state no history has (soak seed 5874687319481849997). An install is
// therefore answered once stored, not once restored: the leader must hear
// of it to send the AppendEntries that confirms it.
//
// A snapshot loaded at start is restored at once (NewRaft, as the
// reference library does): no read was answered before it, and an
// application expects its FSM to hold its state when NewRaft returns. It
// may be a user restore the cluster never committed: its leader adopted
// it, lost the leadership before the no-op after it committed, and
// crashed. The FSM then holds that state until a leader shows it
// uncommitted: a leader's snapshot past it replaces it with the committed
// history (the FSM's last applied command may go back; nothing was applied
// on top of it, and no read was answered from it, see below), and a
// leader whose log conflicts with it stops the node (snapshotConflict,
// installBelowUnconfirmed). An application that reads its FSM directly,
// with no ReadIndex, VerifyLeader or lease first (a stale read), can see
// that state in between, as it can with the reference library
// (TestUnconfirmedSnapshot_RestartOnAnUncommittedRestoreTakesTheLeadersSnapshot,
// unconfirmed_snapshot_test.go).
//
// A node does not know whether a snapshot it installed (or loaded at
// start) came from a user restore, so every such snapshot is unconfirmed
// (st.unconfirmedSnapshot holds its index) until a leader shows it
// committed: a follower once an AppendEntries matched its log at or past
// the snapshot with a leader commit index at or past it (the leader then
// holds the same thing at X, and committed it), a leader once it committed
// an entry of its own term (termStart, which lies above the snapshot).
// Normal installs are confirmed by the leader's next AppendEntries (every
// replicator sends one at least every CommitTimeout).
//
// While a snapshot is unconfirmed:
//   - the FSM does not restore it, nor apply anything after it (above);
//   - the node writes no snapshot of its own FSM at or below it
//     (writeOwnSnapshot): it would be a state the cluster may not have;
//   - no read is answered (queueConfirmedRead holds it in st.reads, and a
//     leader holds VerifyLeader): it would show a state that may never
//     commit. Reads confirmed by a leader that never had X (a follower's
//     ReadIndex asked from the next leader) could otherwise be answered
//     by a state no quorum holds;
//   - an AppendEntries that lies wholly below the snapshot is refused: this
//     node holds nothing there that it can vouch for, and acknowledging
//     it would count towards a commit it does not hold;
//   - an AppendEntries whose entry at the snapshot's index (or whose
//     previous entry there) has another term shows the snapshot was never
//     committed. The log cannot be cleared from there: the FSM already
//     holds the snapshot, and applying the leader's entries on top of it
//     would diverge. The node stops (r.fatal) and must be wiped and added
//     back. No normal run stops this way: a committed snapshot never
//     conflicts with a later leader's log (leader completeness). (The
//     FSM did not take the snapshot, but the log was cleared for it: the
//     node has nothing left to roll back to.) The same
//     holds for an AppendEntries below the snapshot carrying a term above
//     the snapshot's (a log holding the snapshot has no such entry before
//     it), and for an InstallSnapshot below it or at its index with
//     another term (installBelowUnconfirmed): adopting that snapshot would
//     leave an FSM that applied past it;
//   - a conflict hint never sends the leader below the snapshot
//     (conflictHint, rpc.go): it must compare its log with this node's
//     at the snapshot's index.
//
// The leader that ran the restore keeps it unconfirmed until the no-op it
// appends after X commits: its termStart moves to X+1 when the restore
// starts, so its commit index, its reads, leases, follower read indexes
// (leader.go, lease.go) wait for it, VerifyLeader and leadership transfers
// are held; once the no-op commits the FSM restores the snapshot, and
// Restore answers nil only then (fsm.go). If it loses the leadership
// first, the restore may still commit (a follower that installed it may
// win the next election, or this node again): it goes on as a follower
// whose snapshot is unconfirmed, as above. Stopping it at once would be
// no safer, and could leave a cluster without a quorum (two voters that
// both hold the restore, one of them stopped).
//
// Snapshots the node never adopted. The store may hold one: a user
// snapshot copied as the leadership ended, or whose sink's Close failed
// after it landed; a received one whose sink closed as the term ended.
// Such a stray may be a user restore the cluster never commits, and if it
// looked adopted after a restart, the node would apply the cluster's
// entries on top of it. Two rules keep it apart: a leader whose failed
// Restore may have left its snapshot at (X, T) steps down before it can
// append an entry of term T at X (failUserRestore, snapshot.go), so a
// later entry at X has another term; and restoreSnapshotOnStart loads
// only a snapshot that fits the log (strayOnStart). A stray past the end
// of the log is loaded, unconfirmed, and a conflict stops the node as
// above. A leader sends only the snapshot it adopted (ownSnapshot,
// replication.go).

// markUnconfirmed records that the newest snapshot, at index, is not yet
// known to be committed.
func (r *Raft) markUnconfirmed(index uint64) {
	r.st.unconfirmedSnapshot = index
	r.pub.unconfirmed.Store(index)
}

// unconfirmed returns the index of the newest snapshot while it is not
// known to be committed, else 0.
func (r *Raft) unconfirmed() uint64 {
	if x := r.st.unconfirmedSnapshot; x != 0 && x == r.st.lastSnapshotIndex {
		return x
	}
	return 0
}

// readsHeld reports whether reads must wait: a user restore runs or waits
// for its no-op, or the newest snapshot is unconfirmed (a snapshot loaded
// at start is in the FSM already).
func (r *Raft) readsHeld() bool {
	if r.st.restoring != nil || r.unconfirmed() != 0 {
		return true
	}
	return r.st.lead != nil && r.st.lead.restored != nil
}

// confirmSnapshot ends the unconfirmed state: the FSM's restore held
// until now is queued, and the held reads go behind it.
func (r *Raft) confirmSnapshot() {
	if r.st.unconfirmedSnapshot == 0 {
		return
	}
	r.st.unconfirmedSnapshot = 0
	r.pub.unconfirmed.Store(0)
	if t := r.st.heldRestore; t != nil {
		r.st.heldRestore = nil
		r.st.fsmQueue = append(r.st.fsmQueue, t)
	}
	r.releaseHeldReads()
}

// releaseHeldReads hands the reads held while a snapshot was unconfirmed
// or a user restore ran to the FSM path, once nothing holds them anymore:
// those at or below dispatched join a marker behind everything queued;
// the others wait in st.reads for the entry task that reaches them. On a
// leader, held VerifyLeader requests start their round.
func (r *Raft) releaseHeldReads() {
	if r.readsHeld() {
		return
	}
	n := 0
	for n < len(r.st.reads) && r.st.reads[n].index <= r.st.dispatched {
		n++
	}
	if n > 0 {
		m := r.readMarker()
		m.reads = append(m.reads, r.st.reads[:n]...)
		clear(r.st.reads[:n])
		r.st.reads = r.st.reads[n:]
	}
	if lead := r.st.lead; lead != nil && len(lead.heldVerifies) > 0 {
		held := lead.heldVerifies
		lead.heldVerifies = nil
		r.onVerifies(held)
	}
}

// confirmAsLeader runs when a leader's commit index moved: once it
// committed an entry of its own term, its snapshot is committed, and so is
// the user restore it ran in this term.
func (r *Raft) confirmAsLeader() {
	lead := r.st.lead
	if lead == nil || r.st.commitIndex < lead.termStart {
		return
	}
	if f := lead.restored; f != nil {
		lead.restored, lead.restoredAt = nil, 0
		r.logger.Info("user snapshot restore committed", "index", r.st.lastSnapshotIndex, "commit-index", r.st.commitIndex)
		if t := r.st.heldRestore; t != nil && t.to == r.st.lastSnapshotIndex {
			// Restore answers once the FSM holds the committed state.
			t.userRestore = f
		} else {
			f.respond(nil)
		}
	}
	r.confirmSnapshot()
	r.releaseHeldReads()
}

// errUncommittedRestore is why a node stops whose log starts from a
// snapshot the cluster did not commit.
func errUncommittedRestore(index, term uint64, why string) error {
	return fmt.Errorf("this server's log starts from the snapshot at index %d (term %d), which the cluster did not commit: %s; "+
		"its log no longer matches the cluster's: wipe its data and add it back", index, term, why)
}

// snapshotConflict checks an AppendEntries against an unconfirmed
// snapshot, before it is otherwise processed. It returns refuse true when
// the request must be refused (the caller answers with resp as it is, the
// hint LastLog set), and stop true when the node stopped.
func (r *Raft) snapshotConflict(a *AppendEntriesRequest, resp *AppendEntriesResponse) (refuse, stop bool) {
	x := r.unconfirmed()
	if x == 0 {
		return false, false
	}
	term := r.st.lastSnapshotTerm
	leaderTerm, conflict := uint64(0), false
	if a.PrevLogEntry == x && a.PrevLogTerm != term {
		leaderTerm, conflict = a.PrevLogTerm, true
	}
	if a.PrevLogEntry < x {
		if i := x - a.PrevLogEntry; i <= uint64(len(a.Entries)) {
			if e := a.Entries[i-1]; e.Term != term {
				leaderTerm, conflict = e.Term, true
			}
		}
		// Every entry of a log that holds the snapshot's index with its
		// term has a term no higher below it; a leader entry below the
		// index with a higher term shows its log does not.
		if !conflict && a.PrevLogTerm > term {
			leaderTerm, conflict = a.PrevLogTerm, true
		}
		for _, e := range a.Entries {
			if !conflict && e.Index < x && e.Term > term {
				leaderTerm, conflict = e.Term, true
			}
		}
	}
	if conflict {
		err := errUncommittedRestore(x, term, fmt.Sprintf("the leader %s of term %d holds an entry of term %d there", r.st.leader.id, a.Term, leaderTerm))
		r.logger.Error("snapshot conflicts with the leader's log", "index", x, "term", term, "leader-term", leaderTerm, "error", err)
		r.fatal(err)
		return true, true
	}
	if a.PrevLogEntry+uint64(len(a.Entries)) < x {
		// Nothing this node holds below its snapshot can be vouched for
		// until the snapshot is: retry from just past it.
		r.logger.Warn("refusing entries below an unconfirmed snapshot", "snapshot-index", x,
			"prev-index", a.PrevLogEntry, "entries", len(a.Entries))
		resp.LastLog = x
		return true, false
	}
	return false, false
}

// confirmFromLeader confirms an unconfirmed snapshot once an accepted
// AppendEntries matched this node's log at or past it and the leader's
// commit index covers it.
func (r *Raft) confirmFromLeader(a *AppendEntriesRequest) {
	x := r.unconfirmed()
	if x == 0 {
		return
	}
	last := a.PrevLogEntry + uint64(len(a.Entries))
	if last >= x && min(a.LeaderCommitIndex, last) >= x {
		r.confirmSnapshot()
	}
}

// installBelowUnconfirmed checks a leader's InstallSnapshot against an
// unconfirmed snapshot at X. A leader whose log holds X with this node's
// term never sends a snapshot below it: its replication reaches this node
// at X or past it first (a refused request below X is answered with X as
// the hint). So a snapshot below X, or at X with another term, shows that
// X is not in the leader's log: it never committed, and this node's log
// was cleared for a state the cluster does not have (its FSM never took
// it, or took it at start from the store). Rolling back is not done: the
// node stops, as on a conflicting AppendEntries (snapshotConflict). It returns the error it stopped with,
// or nil.
func (r *Raft) installBelowUnconfirmed(req *InstallSnapshotRequest) error {
	x := r.unconfirmed()
	if x == 0 || req.LastLogIndex > x || (req.LastLogIndex == x && req.LastLogTerm == r.st.lastSnapshotTerm) {
		return nil
	}
	err := errUncommittedRestore(x, r.st.lastSnapshotTerm, fmt.Sprintf("the leader %s of term %d sent a snapshot at index %d (term %d)",
		r.st.leader.id, req.Term, req.LastLogIndex, req.LastLogTerm))
	r.logger.Error("a leader's snapshot conflicts with this node's unconfirmed snapshot", "index", x,
		"leader-snapshot-index", req.LastLogIndex, "error", err)
	r.fatal(err)
	return err
}
