package raft

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/go-metrics"
)

// Follower reads (Raft thesis §6.4, "serving reads from followers").
//
// ReadIndex on a follower asks the leader for a read index with the
// ReadIndex RPC (read_index_rpc.go). The leader treats the request as one
// of its own ReadIndex calls: it records its commit index, waits until it
// has committed an entry of its term, confirms with a quorum of voters that
// it still leads (one heartbeat round, shared with its other pending reads
// and VerifyLeader calls, leader.go) and answers the recorded index. The
// request itself, sent in the leader's term, counts as the follower's
// acknowledgment: when it and the leader make a quorum, as in any cluster
// of three voters, the leader answers at once, with no round
// (requesterCompletesQuorum). The
// follower then waits until its own FSM has applied that index and answers
// the future. A read started after a write completed therefore observes
// it: the write was committed before the leader took the request, so its
// index is at most the one recorded.
//
// A deposed leader cannot answer an index: it never completes the quorum
// round, and fails the request when it steps down. Which term the follower
// is in when the answer arrives does not matter: the index was confirmed
// by a leader after the read began.
//
// One request is in flight per follower at a time. Reads that arrive
// meanwhile wait and share the next request, sent as soon as the answer
// to the current one is in; they cannot use the current one, which the
// leader may have taken before they began.
//
// A leader running hashicorp/raft does not know the RPC. The transport
// reports that as ErrReadIndexUnsupported; the follower then remembers the
// leader and term and answers ReadIndex with ErrNotLeader without asking
// again until either changes, so a mixed cluster costs one probe per term.

// followerReads is the state of a follower's requests to its leader. Owned
// by the run loop.
type followerReads struct {
	// inflight are the reads the request in flight serves; sending is set
	// while a request is in flight.
	inflight []*readIndexFuture
	sending  bool
	// sentAt is when the request in flight was sent, on the monotonic
	// clock: how long it takes bounds the linger after its answer
	// (read_intake.go).
	sentAt time.Time
	// queued arrived while a request was in flight.
	queued []*readIndexFuture
	// unsupported is the leader, and the term, found not to know the RPC.
	unsupported leaderTerm
	// vouched is the highest index up to which an AppendEntries of term
	// vouchedTerm, accepted by this node, showed its log to match the
	// leader's (noteVouched); committed is the highest read index the
	// leader answered in that term, so committed in its log.
	vouched, committed, vouchedTerm uint64
}

// noteVouched records that an AppendEntries of the current term, just
// accepted, showed this node's log to match the leader's up to index.
// Within one term the leader's log only grows and every request comes from
// it, so the match holds for the rest of the term.
func (r *Raft) noteVouched(index uint64) {
	fr := r.followerTermState()
	fr.vouched = max(fr.vouched, index)
	r.commitKnown()
}

// followerTermState returns the follower read state, with vouched and
// committed reset when the term changed since they were recorded.
func (r *Raft) followerTermState() *followerReads {
	fr := &r.st.freads
	if fr.vouchedTerm != r.st.currentTerm {
		fr.vouched, fr.committed, fr.vouchedTerm = 0, 0, r.st.currentTerm
	}
	return fr
}

// commitFromReadIndex takes the leader's answer to a request sent in this
// term: the read index was the leader's commit index, so every entry up to
// it is committed. An AppendEntries would tell this node so only with the
// next write, or after CommitTimeout, which the reads would wait for.
func (r *Raft) commitFromReadIndex(res followerReadResult) {
	term := r.st.currentTerm
	if res.to.term != term || res.resp.Term != term || r.st.leader != res.to.leader {
		return
	}
	fr := r.followerTermState()
	fr.committed = max(fr.committed, res.resp.ReadIndex)
	r.commitKnown()
}

// commitKnown moves the commit index up to what the leader of this term
// answered as committed, as far as this node holds the leader's entries
// (what the leader vouched for): the rule AppendEntries follows with the
// leader's commit index (rpc.go).
func (r *Raft) commitKnown() {
	fr := &r.st.freads
	if fr.committed > r.st.commitIndex && fr.vouchedTerm == r.st.currentTerm {
		to := min(fr.committed, fr.vouched, r.st.log.lastIndex)
		if x := r.unconfirmed(); x != 0 && to >= x {
			// An AppendEntries of this term matched the log at or past
			// the snapshot, and the leader answered it committed: the
			// rule confirmFromLeader follows (unconfirmed_snapshot.go).
			r.confirmSnapshot()
		}
		r.setCommitIndex(to)
	}
}

// leaderTerm is a leader in one term.
type leaderTerm struct {
	leader leaderInfo
	term   uint64
}

// followerReadResult is a request's outcome, reported to the run loop.
type followerReadResult struct {
	to   leaderTerm
	resp ReadIndexResponse
	err  error
}

// onLocalReadIndexes takes ReadIndex and ReadLease calls made on this
// node. batch is only borrowed: nothing keeps it after the call.
func (r *Raft) onLocalReadIndexes(batch []*readIndexFuture) {
	if r.st.lead != nil {
		r.onReadIndexes(batch)
		return
	}
	fr := &r.st.freads
	if fr.sending {
		fr.queued = append(fr.queued, batch...)
		return
	}
	r.sendFollowerReads(slices.Clone(batch))
}

// sendFollowerReads asks the leader for one read index that serves every
// read of batch, or answers them all ErrNotLeader when that cannot be done.
func (r *Raft) sendFollowerReads(batch []*readIndexFuture) {
	fr := &r.st.freads
	l := r.st.leader
	to := leaderTerm{leader: l, term: r.st.currentTerm}
	trans, ok := r.trans.(WithReadIndex)
	if !ok || r.st.role != Follower || l.addr == "" || fr.unsupported == to {
		for _, f := range batch {
			f.respond(ErrNotLeader)
		}
		return
	}
	fr.inflight, fr.sending, fr.sentAt = batch, true, time.Now()
	req := &ReadIndexRequest{RPCHeader: r.rpcHeader(), Term: to.term}
	metrics.IncrCounter([]string{"raft", "follower_read", "request"}, 1)
	r.routines.goFunc(func() {
		res := followerReadResult{to: to}
		res.err = trans.ReadIndex(l.id, l.addr, req, &res.resp)
		select {
		case r.followerReadDoneCh <- res:
		case <-r.shutdownCh:
			// The futures fall back to ErrRaftShutdown.
		}
	})
}

// onFollowerReadDone takes the leader's answer to a request: the reads it
// served wait for the FSM, or fail; the reads queued behind it go next.
func (r *Raft) onFollowerReadDone(res followerReadResult) {
	fr := &r.st.freads
	batch := fr.inflight
	fr.inflight, fr.sending = nil, false
	var err error
	switch {
	case errors.Is(res.err, ErrReadIndexUnsupported):
		if fr.unsupported != res.to {
			r.logger.Warn("the leader does not support follower reads; ReadIndex on this follower answers ErrNotLeader until the leader or term changes",
				"leader", res.to.leader.addr, "leader-id", res.to.leader.id, "term", res.to.term, "error", res.err)
		}
		fr.unsupported = res.to
		err = ErrNotLeader
	case res.err != nil:
		err = fmt.Errorf("asking leader %s (%s) for a read index: %w", res.to.leader.id, res.to.leader.addr, res.err)
	case !res.resp.Success:
		// The server does not lead, or could not confirm that it still
		// does.
		err = ErrNotLeader
	}
	if err == nil && r.st.lead == nil {
		r.commitFromReadIndex(res)
	}
	answered := 0
	for _, f := range batch {
		if err != nil {
			f.respond(err)
			continue
		}
		f.index = res.resp.ReadIndex
		if r.queueConfirmedRead(f) {
			answered += f.callers()
		}
	}
	queued := fr.queued
	fr.queued = nil
	if answered > 0 && len(queued) == 0 && r.st.lead == nil && r.intake.collecting {
		// The readers just answered share the next request if they come
		// back soon enough (read_intake.go, linger); collecting stays
		// set meanwhile.
		if d := min(time.Since(fr.sentAt), maxReadLinger); d > 0 {
			r.intake.linger(answered, d)
			return
		}
	}
	// The calls that waited in the intake meanwhile (read_intake.go) share
	// the next request too.
	in := r.intake
	taken := in.take()
	queued = append(queued, taken...)
	in.giveBack(taken)
	switch {
	case len(queued) == 0:
	case r.st.lead != nil:
		r.onReadIndexes(queued)
	default:
		r.sendFollowerReads(queued)
	}
	r.settleReadIntake()
}

// requesterCompletesQuorum reports whether this leader may answer req at
// once, with its commit index and no heartbeat round: when it has
// committed an entry of its term, and it and the requesting follower are
// voters that together make a quorum (in a cluster of three voters, any
// voter follower does), and the follower sent req in this leader's term.
//
// Why that confirms the read as a round would:
//  1. Every read the request serves began before the follower sent it,
//     and the follower was then in this term (req.Term, and a server's term
//     only grows), so it had voted for no candidate of a later term.
//  2. This leader is in this term now, after the follower sent req, so it
//     has voted for no candidate of a later term either.
//  3. A leader of any later term needs votes from a quorum, which
//     includes this leader or the follower: by 1 and 2 it was elected after
//     the reads began, and any write it completes completes after they
//     began, which they need not observe.
//  4. So every write completed before the reads began was committed in
//     this term or an earlier one: it is in this leader's log (leader
//     completeness), at or below its commit index, since the leader has
//     committed an entry of its own term (entries of earlier terms are
//     below it) and its commit index only grows.
//
// That is what a heartbeat round shows with the quorum's acknowledgments
// of heartbeats sent after the reads began; here the follower's request is
// its acknowledgment and the leader's own state its own.
func (r *Raft) requesterCompletesQuorum(req *ReadIndexRequest) bool {
	lead := r.st.lead
	if req.Term != r.st.currentTerm || r.st.commitIndex < lead.termStart {
		return false
	}
	from := ServerID(req.ID)
	if from == r.localID {
		return false
	}
	voters := r.st.configs.latestVoters
	acks := 0
	for _, id := range voters {
		if id == r.localID || id == from {
			acks++
		}
	}
	return acks >= quorumSize(len(voters))
}

// onReadIndexRequest takes a follower's ReadIndex RPC: on the leader, a
// ReadIndex of its own whose answer, once confirmed, goes back to the
// follower; anywhere else an answer without Success.
func (r *Raft) onReadIndexRequest(rpc RPC, req *ReadIndexRequest) {
	resp := &ReadIndexResponse{RPCHeader: r.rpcHeader(), Term: r.st.currentTerm}
	if r.st.lead == nil {
		rpc.Respond(resp, nil)
		return
	}
	if r.requesterCompletesQuorum(req) {
		metrics.IncrCounter([]string{"raft", "follower_read", "without_round"}, 1)
		resp.ReadIndex, resp.Success = r.st.commitIndex, true
		rpc.Respond(resp, nil)
		return
	}
	f := &readIndexFuture{remote: true}
	f.init(r.stoppedCh)
	go func() {
		// Error returns once the run loop answered f, or the node
		// stopped without answering it.
		if err := f.Error(); err == nil {
			resp.ReadIndex, resp.Success = f.index, true
		}
		rpc.Respond(resp, nil)
	}()
	r.onReadIndex(f)
}
