package raft

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-metrics"
)

// Elections (Raft paper §5.2), with the pre-vote round of the Raft thesis
// §9.6: before raising its term, a candidate asks whether it could win.
// A server cut off from the cluster therefore keeps its term while away,
// and its return does not depose a healthy leader.

// voteTally counts the answers of one round of voting. It is a plain value
// with no I/O, tested on its own.
type voteTally struct {
	voters  map[ServerID]bool
	granted map[ServerID]bool
	refused map[ServerID]bool
}

func newVoteTally(voters []ServerID) voteTally {
	t := voteTally{
		voters:  make(map[ServerID]bool, len(voters)),
		granted: make(map[ServerID]bool),
		refused: make(map[ServerID]bool),
	}
	for _, id := range voters {
		t.voters[id] = true
	}
	return t
}

// record counts one voter's answer; answers from non-voters and repeated
// answers do not count.
func (t *voteTally) record(id ServerID, granted bool) {
	if !t.voters[id] || t.granted[id] || t.refused[id] {
		return
	}
	if granted {
		t.granted[id] = true
	} else {
		t.refused[id] = true
	}
}

// won reports whether a majority granted its vote.
func (t *voteTally) won() bool { return len(t.granted) >= quorumSize(len(t.voters)) }

// lost reports whether enough voters refused that a majority is out of
// reach.
func (t *voteTally) lost() bool {
	return len(t.refused) > len(t.voters)-quorumSize(len(t.voters))
}

// candidateState is the state of a candidate. Owned by the run loop.
type candidateState struct {
	// preVote is true during the pre-vote round.
	preVote bool
	// term is the term being campaigned for: the current term plus one in
	// the pre-vote round, the current term in the election proper.
	term  uint64
	tally voteTally
	// results receives the answers of this round only; a later round has a
	// channel of its own, so late answers are never miscounted.
	results chan voteResult
}

// voteResult is one voter's answer.
type voteResult struct {
	from    ServerID
	term    uint64
	granted bool
}

// The campaign rule: the one place that decides whether this server may
// start a pre-vote or vote round, whatever asks it to (its heartbeat or
// election timer, or a leader's TimeoutNow), and again whether it may take
// the leadership once a round is won (a write may have begun to stall
// after the round started).
//
// A server campaigns only as a voter: of its latest configuration, or,
// while that one is not committed, of the committed one it replaces (never
// a server that is a non-voter or absent in both, nor one with no
// configuration). The second case is a server whose own removal it holds
// but has not seen committed: its log may be the only one that can win an
// election, and it must lead long enough to commit the change that
// removes it and then step down (Raft.onConfigurationCommitted); refusing
// would leave a cluster whose every configuration has a live quorum
// without a leader for good
// (TestMembership_ServerRemovedByAnUncommittedChangeStillCampaigns). It
// counts only the votes of its latest configuration's voters (voteTally),
// and servers that no longer hold it refuse it before they look at its
// term (Raft.requestVote). Once it knows the change committed it stops
// campaigning: a retiring replicator keeps writing to a removed server
// until it has told it so (replicator.retired). And a server campaigns
// only with a log it can serve: not while a failed write is being read back
// from the store (its log's end is then unknown), not while one write has
// been with the log writer for longer than Config.LogWriteStallTimeout, and
// not within writeFailureCooldown election timeouts after it last saw
// either, unless a write handed to the writer since then has succeeded.
//
// Its vote requests then claim only entries that are durable or still
// being written: a write that fails ends the candidacy at once
// (Raft.onWriteFailed), so no round goes on claiming entries its log lost.
// A server whose earlier leadership ended gets no help from it: voters
// that still believe it leads refuse its pre-votes (Raft.requestPreVote).

// campaignRefusal returns why this server may not start a round of
// campaigning now, or "" if it may. loud says whether the reason is worth
// a warning (a disk in trouble) rather than a debug line (a non-voter).
func (r *Raft) campaignRefusal(now time.Time) (reason string, loud bool) {
	switch {
	case r.st.configs.latestIndex == 0:
		return "no known peers", false
	case !hasVote(r.st.configs.latest, r.localID) &&
		(r.st.configs.stable() || !hasVote(r.st.configs.committed, r.localID)):
		return "not a voter in the latest configuration", false
	case r.st.writes.broken:
		return "the log is being read back after a failed write", true
	case r.noteStall(now):
		return "the log writer has not finished a write within LogWriteStallTimeout", true
	case !r.st.logTroubleAt.IsZero() &&
		now.Sub(r.st.logTroubleAt) < writeFailureCooldown*r.config().ElectionTimeout:
		return fmt.Sprintf("the log store failed or stalled recently (at %s)", r.st.logTroubleAt.Format(time.RFC3339Nano)), true
	}
	return "", false
}

// mayCampaign applies the campaign rule and logs a refusal.
func (r *Raft) mayCampaign() bool {
	reason, loud := r.campaignRefusal(time.Now())
	switch {
	case reason == "":
		return true
	case loud:
		r.logger.Warn("not starting an election", "reason", reason)
	default:
		r.logger.Debug("not starting an election", "reason", reason)
	}
	return false
}

// noteStall reports whether the log writer has held one write for longer
// than LogWriteStallTimeout, and if so records the trouble, which starts
// the cool-down.
func (r *Raft) noteStall(now time.Time) bool {
	stall := r.config().LogWriteStallTimeout
	if stall <= 0 || r.st.writes.stalledFor(now) <= stall {
		return false
	}
	r.noteLogTrouble(now)
	return true
}

// noteLogTrouble records that the log writer failed or stalled now. The
// write it holds, if any, is the troubled one: its own completion does not
// end the cool-down.
func (r *Raft) noteLogTrouble(now time.Time) {
	r.st.logTroubleAt = now
	r.st.troubledWrite = r.st.writes.inflight
}

// noteWriteSucceeded ends the cool-down when op, a write that succeeded,
// was handed to the writer after the trouble was seen.
func (r *Raft) noteWriteSucceeded(op *writeOp) {
	if op == r.st.troubledWrite {
		r.st.troubledWrite = nil
		return
	}
	if len(op.entries) > 0 {
		r.st.logTroubleAt = time.Time{}
		r.st.troubledWrite = nil
	}
}

// Leader stickiness (Raft thesis §4.2.3): a server that hears from a
// leader refuses vote and pre-vote requests without looking at their term,
// so a server that cannot see that leader cannot raise this server's term
// and, through its next answer to the leader, depose a leader that has a
// quorum. The reference refuses while it knows a leader; this server also
// counts its own start as contact with a leader for the startup hold
// (vote_hold.go: at least a heartbeat timeout, the least time its own
// heartbeat timer waits before it campaigns). A server restarting behind a
// membership change may still count a removed server as a voter and cannot
// refuse it as a non-member; by the end of the hold it has normally heard from the leader,
// whose heartbeats keep the refusal going until it has caught up and
// learned of the removal. No server's first heartbeat timer fires within a
// heartbeat timeout of its start, so servers starting together are all
// past their hold when the first of them campaigns.

// stickyRefusal returns why this server refuses a vote (or, with preVote,
// a pre-vote) request from candidate before looking at its term, or "" if
// it does not. A vote request marked as a leadership transfer is exempt:
// the leader itself asked for it.
func (r *Raft) stickyRefusal(candidate ServerAddress, preVote, transfer bool) string {
	now := r.clock.now()
	if transfer && !preVote {
		return ""
	}
	// While this node follows a leader it refuses every pre-vote, the
	// leader's own included: a leader that asks has stepped down (a stalled
	// disk, a lost quorum), and its earlier leadership must not earn it the
	// next election. Once this node's heartbeat timeout forgets the
	// leader, that server competes like any other.
	if l := r.st.leader; l.addr != "" && (preVote || l.addr != candidate) {
		return fmt.Sprintf("a leader is known (%s, %s)", l.id, l.addr)
	}
	if since, hold := now.Sub(r.startedAt), r.startHold(); since < hold {
		return fmt.Sprintf("started %s ago, within the startup hold (%s): a leader may not have been heard from yet",
			since, hold)
	}
	return ""
}

// becomeCandidate starts a new round of campaigning: a pre-vote round, or
// straight to an election when pre-vote is off or a leader asked this node
// to take over. Callers have checked the campaign rule (mayCampaign).
func (r *Raft) becomeCandidate() {
	r.setRole(Candidate)
	if r.st.lead != nil {
		r.stopLeading(ErrLeadershipLost, ErrLeadershipLost)
	}
	metrics.IncrCounter([]string{"raft", "state", "candidate"}, 1)
	r.resetTimer(randomDuration(r.config().ElectionTimeout))
	if r.preVote && !r.st.transferring {
		r.startPreVote()
	} else {
		r.startElection(r.st.currentTerm + 1)
	}
}

// startPreVote asks every voter whether it would vote for this node in the
// next term, without changing any term. The next term is the one after the
// current term, or after a higher term an earlier round's answers carried
// (see onVote).
func (r *Raft) startPreVote() {
	lastIndex, lastTerm := r.st.log.last()
	req := &RequestPreVoteRequest{
		RPCHeader:    r.rpcHeader(),
		Term:         max(r.st.currentTerm, r.st.preVoteTermSeen) + 1,
		LastLogIndex: lastIndex,
		LastLogTerm:  lastTerm,
	}
	c := r.newRound(true, req.Term)
	r.logger.Info("entering pre-vote", "node", r, "term", req.Term)
	trans := r.trans.(WithPreVote)
	r.askVoters(c, func(peer Server) voteResult {
		defer metrics.MeasureSince([]string{"raft", "candidate", "preElectSelf"}, time.Now())
		var resp RequestPreVoteResponse
		err := trans.RequestPreVote(peer.ID, peer.Address, req, &resp)
		switch {
		case err != nil && strings.Contains(err.Error(), errUnexpectedCommand):
			// A peer that predates pre-vote: let it decide in the
			// election proper.
			r.logger.Debug("peer does not support pre-vote, counting it as granted", "peer", peer.ID)
			return voteResult{from: peer.ID, term: req.Term, granted: true}
		case err != nil:
			r.logger.Debug("pre-vote request failed", "peer", peer.ID, "error", err)
			return voteResult{from: peer.ID, term: req.Term}
		}
		return voteResult{from: peer.ID, term: resp.Term, granted: resp.Granted}
	})
}

// startElection moves to term (the next term, or the term of the pre-vote
// round just won), votes for this node and asks every voter for its vote.
func (r *Raft) startElection(term uint64) {
	if err := r.setTerm(term); err != nil {
		return
	}
	lastIndex, lastTerm := r.st.log.last()
	req := &RequestVoteRequest{
		RPCHeader:          r.rpcHeader(),
		Term:               r.st.currentTerm,
		Candidate:          r.trans.EncodePeer(r.localID, r.localAddr),
		LastLogIndex:       lastIndex,
		LastLogTerm:        lastTerm,
		LeadershipTransfer: r.st.transferring,
	}
	// The privilege of a transfer lasts one election only.
	r.st.transferring = false
	if err := r.persistVote(req.Term, req.Addr); err != nil {
		r.logFailure("failed to persist vote for self", err)
		return
	}
	c := r.newRound(false, req.Term)
	r.logger.Info("entering candidate state", "node", r, "term", req.Term)
	r.askVoters(c, func(peer Server) voteResult {
		defer metrics.MeasureSince([]string{"raft", "candidate", "electSelf"}, time.Now())
		var resp RequestVoteResponse
		if err := r.trans.RequestVote(peer.ID, peer.Address, req, &resp); err != nil {
			r.logger.Debug("vote request failed", "peer", peer.ID, "error", err)
			return voteResult{from: peer.ID, term: req.Term}
		}
		return voteResult{from: peer.ID, term: resp.Term, granted: resp.Granted}
	})
}

// newRound starts a round of voting for term and counts this node's own
// vote.
func (r *Raft) newRound(preVote bool, term uint64) *candidateState {
	voters := r.st.configs.latestVoters
	c := &candidateState{
		preVote: preVote,
		term:    term,
		tally:   newVoteTally(voters),
		results: make(chan voteResult, len(voters)),
	}
	r.st.candidate = c
	c.tally.record(r.localID, true)
	return c
}

// askVoters asks every other voter, each on its own goroutine, and checks
// whether this node's own vote already decides the round.
func (r *Raft) askVoters(c *candidateState, ask func(Server) voteResult) {
	for _, s := range r.st.configs.latest.Servers {
		if s.Suffrage != Voter || s.ID == r.localID {
			continue
		}
		peer := s
		r.routines.goFunc(func() {
			// results has room for every voter, so this never blocks.
			c.results <- ask(peer)
		})
	}
	r.checkRound()
}

// onVote counts one answer of the current round.
//
// A pre-vote answer carrying a later term is a refusal, and the term is
// not taken: a pre-vote round changes no term (Raft thesis §9.6). The
// server that answered may be one this node still counts as a voter only
// because it has not yet learned of its removal, and a term taken from it
// would depose, at this node's next answer, a leader that has a quorum.
// The term is remembered instead, and the next pre-vote round asks about
// the term after it, so a node whose voters all moved past its term can
// still win them over; only a won pre-vote round then raises its term.
func (r *Raft) onVote(v voteResult) {
	c := r.st.candidate
	if c == nil {
		return
	}
	if v.term > c.term && c.preVote {
		r.logger.Debug("pre-vote refused with a newer term", "from", v.from, "term", v.term)
		r.st.preVoteTermSeen = max(r.st.preVoteTermSeen, v.term)
		c.tally.record(v.from, false)
		r.checkRound()
		return
	}
	if v.term > c.term {
		// Someone is already in a later term: follow it.
		r.logger.Debug("newer term found while campaigning", "term", v.term)
		r.becomeFollower(v.term)
		return
	}
	c.tally.record(v.from, v.granted && v.term == c.term)
	r.checkRound()
}

// checkRound acts on a round that is decided.
func (r *Raft) checkRound() {
	c := r.st.candidate
	switch {
	case c.tally.won() && c.preVote:
		if !r.mayCampaign() {
			r.becomeFollower(r.st.currentTerm)
			return
		}
		r.logger.Info("pre-vote successful, starting election", "term", c.term,
			"granted", len(c.tally.granted), "refused", len(c.tally.refused))
		r.resetTimer(randomDuration(r.config().ElectionTimeout))
		r.startElection(c.term)
	case c.tally.won():
		// The rule is checked again at the win: a write that began to
		// stall, or failed and is being read back, after the round
		// started must not give the cluster a leader that cannot write.
		if reason, _ := r.campaignRefusal(time.Now()); reason != "" {
			r.logger.Warn("election won, but not taking the leadership", "term", c.term, "reason", reason)
			r.becomeFollower(r.st.currentTerm)
			return
		}
		r.logger.Info("election won", "term", c.term, "tally", len(c.tally.granted))
		r.becomeLeader()
	case c.tally.lost() && c.preVote:
		r.logger.Info("pre-vote failed, waiting for the election timeout", "term", c.term,
			"granted", len(c.tally.granted), "refused", len(c.tally.refused))
		// Stop listening; the timer starts the next round.
		r.st.candidate = nil
	}
}
