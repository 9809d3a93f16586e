package raft

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-metrics"
)

// RPC handlers. They run on the run loop and follow the Raft paper's rules
// (§5, figure 2), with the reference's additions: pre-vote, leader
// stickiness for votes, and refusal of vote requests from non-members
// before any term changes hands (requestVote, requestPreVote; ARCHITECTURE.md
// says where the run loop fits).

// rpcHeader is the header of every RPC this node sends.
// It is built once: its byte slices are shared by every message and must
// never be modified.
func (r *Raft) rpcHeader() RPCHeader { return r.header }

// checkRPCHeader refuses RPCs without a header or from a protocol version
// this node does not speak: versions outside the known range, and versions
// more than one below this node's.
func (r *Raft) checkRPCHeader(rpc RPC) error {
	wh, ok := rpc.Command.(WithRPCHeader)
	if !ok {
		return fmt.Errorf("RPC does not have a header")
	}
	v := wh.GetRPCHeader().ProtocolVersion
	if v < ProtocolVersionMin || v > ProtocolVersionMax || v < r.protocolVersion-1 {
		return ErrUnsupportedProtocol
	}
	return nil
}

// handleHeartbeat is the transport's fast path for heartbeats. It runs on
// the transport's goroutine and hands the heartbeat to the run loop, which
// serves heartbeats before anything else.
func (r *Raft) handleHeartbeat(rpc RPC) {
	if _, ok := rpc.Command.(*AppendEntriesRequest); !ok {
		r.logger.Error("expected a heartbeat", "command", hclog.Fmt("%T", rpc.Command))
		rpc.Respond(nil, errors.New(errUnexpectedCommand))
		return
	}
	select {
	case r.heartbeatCh <- rpc:
	case <-r.shutdownCh:
		rpc.Respond(nil, ErrRaftShutdown)
	}
}

// processRPC dispatches one incoming RPC.
func (r *Raft) processRPC(rpc RPC, fastPath bool) {
	if !fastPath {
		if err := r.checkRPCHeader(rpc); err != nil {
			rpc.Respond(nil, err)
			return
		}
	}
	switch cmd := rpc.Command.(type) {
	case *AppendEntriesRequest:
		if fastPath {
			defer metrics.MeasureSince(keyProcessHeartbeat, time.Now())
		}
		r.appendEntries(rpc, cmd)
	case *RequestVoteRequest:
		r.requestVote(rpc, cmd)
	case *RequestPreVoteRequest:
		r.requestPreVote(rpc, cmd)
	case *InstallSnapshotRequest:
		r.installSnapshot(rpc, cmd)
	case *TimeoutNowRequest:
		r.timeoutNow(rpc, cmd)
	case *ReadIndexRequest:
		r.onReadIndexRequest(rpc, cmd)
	default:
		r.logger.Error("got an unexpected command", "command", hclog.Fmt("%T", rpc.Command))
		rpc.Respond(nil, errors.New(errUnexpectedCommand))
	}
}

// senderAddr returns the address a request came from: the header's, or the
// deprecated field for peers that predate it.
func (r *Raft) senderAddr(header RPCHeader, legacy []byte) ServerAddress {
	if len(header.Addr) > 0 {
		return r.trans.DecodePeer(header.Addr)
	}
	return r.trans.DecodePeer(legacy)
}

// appendEntries handles an AppendEntries request (Raft paper §5.3). The
// answer to a request that carried or checked entries is held back until
// everything appended so far is durable.
func (r *Raft) appendEntries(rpc RPC, a *AppendEntriesRequest) {
	defer metrics.MeasureSince(keyAppendEntries, time.Now())
	resp := &AppendEntriesResponse{
		RPCHeader: r.rpcHeader(),
		Term:      r.st.currentTerm,
		LastLog:   r.st.log.lastIndex,
	}
	if a.Term < r.st.currentTerm {
		rpc.Respond(resp, nil)
		return
	}
	if a.Term > r.st.currentTerm || (r.st.role != Follower && !r.st.transferring) {
		if err := r.becomeFollower(a.Term); err != nil {
			rpc.Respond(resp, err)
			return
		}
		resp.Term = a.Term
	}
	now := r.clock.now()
	r.setLeader(leaderInfo{addr: r.senderAddr(a.RPCHeader, a.Leader), id: ServerID(a.ID)})
	r.setLastContact(now)
	if r.st.role == Follower {
		r.resetTimer(randomDuration(r.config().HeartbeatTimeout))
	}

	if isHeartbeat(a) {
		resp.Success = true
		rpc.Respond(resp, nil)
		return
	}
	if r.st.writes.broken {
		// The log is being read back after a failed write; the leader
		// retries after a back-off.
		rpc.Respond(resp, nil)
		return
	}
	if err := checkIncomingEntries(a, r.trans); err != nil {
		r.logger.Error("refusing a malformed AppendEntries", "from", r.st.leader.addr, "error", err)
		rpc.Respond(resp, err)
		return
	}

	if refuse, stop := r.snapshotConflict(a, resp); refuse {
		if stop {
			rpc.Respond(resp, fmt.Errorf("this server's snapshot conflicts with the leader's log"))
		} else {
			rpc.Respond(resp, nil)
		}
		return
	}

	// The entry before the new ones must match (log matching, §5.3). One
	// below this node's snapshot is committed, so it matches the leader's
	// entry there (leader completeness) and need not be read: compaction
	// may have removed it, and a leader that knows this node holds it
	// would otherwise retry at it for ever.
	if a.PrevLogEntry > 0 && a.PrevLogEntry >= r.st.lastSnapshotIndex {
		prevTerm, err := r.termAt(a.PrevLogEntry)
		if err != nil || prevTerm != a.PrevLogTerm {
			if err != nil && !errors.Is(err, ErrLogNotFound) {
				r.logger.Warn("failed to read the previous log entry", "index", a.PrevLogEntry, "error", err)
			}
			resp.NoRetryBackoff = true
			resp.LastLog = r.conflictHint(a.PrevLogEntry, a.PrevLogTerm)
			rpc.Respond(resp, nil)
			return
		}
	}

	// Skip entries already held; a conflicting one deletes it and
	// everything after it (§5.3).
	var fresh []*Log
	var deleteFrom, prevTerm uint64
	for i, e := range a.Entries {
		if e.Index > r.st.log.lastIndex {
			fresh = a.Entries[i:]
			break
		}
		if e.Index < r.st.lastSnapshotIndex {
			continue // committed, and maybe compacted: held
		}
		held, err := r.termAt(e.Index)
		if err != nil {
			r.logger.Warn("failed to read a log entry", "index", e.Index, "error", err)
			rpc.Respond(resp, nil)
			return
		}
		if held != e.Term {
			if e.Index <= r.st.commitIndex {
				r.logger.Error("refusing to overwrite a committed entry", "index", e.Index,
					"held-term", held, "leader-term", e.Term, "commit-index", r.st.commitIndex)
				rpc.Respond(resp, fmt.Errorf("entry %d conflicts with a committed entry", e.Index))
				return
			}
			r.logger.Warn("clearing log suffix", "from", e.Index, "to", r.st.log.lastIndex)
			fresh, deleteFrom = a.Entries[i:], e.Index
			prevTerm = a.PrevLogTerm
			if i > 0 {
				prevTerm = a.Entries[i-1].Term
			}
			break
		}
	}
	if len(fresh) > 0 {
		start := time.Now()
		r.appendToLog(fresh, deleteFrom, prevTerm)
		metrics.MeasureSince(keyProcessLogs, start)
	}

	// Commit up to the last entry this request vouches for, never beyond
	// (§5.3: min(leaderCommit, index of last new entry)).
	if a.LeaderCommitIndex > r.st.commitIndex {
		r.setCommitIndex(min(a.LeaderCommitIndex, a.PrevLogEntry+uint64(len(a.Entries))))
	}
	r.confirmFromLeader(a)
	r.noteVouched(a.PrevLogEntry + uint64(len(a.Entries)))

	resp.Success = true
	resp.LastLog = r.st.log.lastIndex
	if !r.st.writes.addReply(pendingReply{rpc: rpc, resp: resp}) {
		rpc.Respond(resp, nil)
		return
	}
	// The answer waits for the write: start it now, with the answer
	// attached, rather than after whatever else the run loop's next
	// select picks.
	r.handOffWrite()
}

// maxConflictScan bounds how far back a follower looks for a better retry
// point after a log mismatch.
const maxConflictScan = 512

// conflictHint returns the LastLog hint for a refused AppendEntries whose
// previous entry (prevIndex, prevTerm) did not match. The leader retries
// from LastLog+1; the best retry point is the highest index whose term is
// no newer than prevTerm, since any later entry of ours belongs to a term
// the leader's log does not have there. This uses only the reference's
// wire fields.
func (r *Raft) conflictHint(prevIndex, prevTerm uint64) uint64 {
	last := r.st.log.lastIndex
	if prevIndex > last {
		return last
	}
	i := prevIndex - 1
	for steps := 0; i > r.st.commitIndex && steps < maxConflictScan; steps++ {
		t, err := r.termAt(i)
		if err != nil || t <= prevTerm {
			break
		}
		i--
	}
	// Never below an unconfirmed snapshot: the leader must compare its
	// log with this node's at the snapshot's index (snapshotConflict),
	// not skip past it to where this node holds nothing.
	return max(i, r.st.commitIndex, r.unconfirmed())
}

// checkIncomingEntries refuses AppendEntries requests that no correct
// leader sends: entries out of sequence, from a future term, or
// configuration entries that do not decode.
func checkIncomingEntries(a *AppendEntriesRequest, trans Transport) error {
	prevTerm := a.PrevLogTerm
	for i, e := range a.Entries {
		if e == nil {
			return fmt.Errorf("entry %d is missing", i)
		}
		if e.Index != a.PrevLogEntry+uint64(i)+1 {
			return fmt.Errorf("entry %d has index %d, want %d", i, e.Index, a.PrevLogEntry+uint64(i)+1)
		}
		if e.Term < prevTerm || e.Term > a.Term {
			return fmt.Errorf("entry %d has term %d, outside %d..%d", e.Index, e.Term, prevTerm, a.Term)
		}
		prevTerm = e.Term
		switch e.Type {
		case LogConfiguration:
			if _, err := decodeConfiguration(e.Data); err != nil {
				return fmt.Errorf("entry %d: %w", e.Index, err)
			}
		case LogAddPeerDeprecated, LogRemovePeerDeprecated:
			if _, err := decodePeers(e.Data, trans); err != nil {
				return fmt.Errorf("entry %d: %w", e.Index, err)
			}
		}
	}
	return nil
}

// requestVote handles a RequestVote request (Raft paper §5.2, §5.4.1).
func (r *Raft) requestVote(rpc RPC, req *RequestVoteRequest) {
	defer metrics.MeasureSince([]string{"raft", "rpc", "requestVote"}, time.Now())
	r.observe(*req)
	resp := &RequestVoteResponse{RPCHeader: r.rpcHeader(), Term: r.st.currentTerm}
	if r.protocolVersion < 2 {
		resp.Peers = encodePeers(r.st.configs.latest, r.trans)
	}
	var rpcErr error
	defer func() { rpc.Respond(resp, rpcErr) }()

	candidateBytes := req.Addr
	if len(candidateBytes) == 0 {
		candidateBytes = req.Candidate
	}
	candidate := r.trans.DecodePeer(candidateBytes)
	candidateID := ServerID(req.ID)
	latest := r.st.configs.latest

	// These two checks come before the term rule, so that a server that was
	// removed, or one that cannot see the leader everyone else sees, cannot
	// raise this node's term (leader stickiness, election.go). Old peers
	// send no ID; they are let through.
	if len(req.ID) > 0 && len(latest.Servers) > 0 && !inConfiguration(latest, candidateID) {
		r.logger.Warn("rejecting vote request from a server not in the configuration", "from", candidate)
		return
	}
	if why := r.stickyRefusal(candidate, false, req.LeadershipTransfer); why != "" {
		r.logger.Warn("rejecting vote request", "from", candidate, "reason", why)
		return
	}
	if req.Term < r.st.currentTerm {
		return
	}
	if req.Term > r.st.currentTerm {
		r.logger.Debug("vote request with a newer term", "term", req.Term)
		if err := r.becomeFollower(req.Term); err != nil {
			rpcErr = err
			return
		}
		resp.Term = req.Term
	}
	// A member without a vote (for example, a voter that was demoted) may
	// raise the term so the cluster can move on, but gets no vote.
	if len(req.ID) > 0 && len(latest.Servers) > 0 && !hasVote(latest, candidateID) {
		r.logger.Warn("rejecting vote request from a non-voter", "from", candidate)
		return
	}
	if r.st.votedTerm == req.Term && r.st.votedFor != nil {
		if bytes.Equal(r.st.votedFor, candidateBytes) {
			r.logger.Debug("repeated vote request from the candidate already voted for", "term", req.Term)
			resp.Granted = true
		}
		return
	}
	lastIndex, lastTerm := r.st.log.last()
	if !candidateUpToDate(lastIndex, lastTerm, req.LastLogIndex, req.LastLogTerm) {
		r.logger.Warn("rejecting vote request from a candidate whose log is behind",
			"candidate", candidate, "last-index", lastIndex, "last-term", lastTerm,
			"candidate-last-index", req.LastLogIndex, "candidate-last-term", req.LastLogTerm)
		return
	}
	if err := r.persistVote(req.Term, candidateBytes); err != nil {
		r.logFailure("failed to persist vote", err)
		return
	}
	resp.Granted = true
	r.setLastContact(r.clock.now())
	r.resetTimer(randomDuration(r.config().HeartbeatTimeout))
}

// candidateUpToDate reports whether a candidate's log, ending at
// (candIndex, candTerm), is at least as up to date as ours (§5.4.1).
func candidateUpToDate(ourIndex, ourTerm, candIndex, candTerm uint64) bool {
	if candTerm != ourTerm {
		return candTerm > ourTerm
	}
	return candIndex >= ourIndex
}

// persistVote stores a vote before it is granted.
func (r *Raft) persistVote(term uint64, candidate []byte) error {
	if err := r.stable.SetUint64(keyLastVoteTerm, term); err != nil {
		return fmt.Errorf("persisting vote term: %w", err)
	}
	if err := r.stable.Set(keyLastVoteCand, candidate); err != nil {
		return fmt.Errorf("persisting vote candidate: %w", err)
	}
	r.st.votedTerm = term
	r.st.votedFor = append([]byte(nil), candidate...)
	return nil
}

// requestPreVote handles a RequestPreVote request. It answers whether this
// node would vote for the sender in the next term, and changes nothing:
// not its term, its vote, nor its known leader.
func (r *Raft) requestPreVote(rpc RPC, req *RequestPreVoteRequest) {
	defer metrics.MeasureSince([]string{"raft", "rpc", "requestPreVote"}, time.Now())
	r.observe(*req)
	resp := &RequestPreVoteResponse{RPCHeader: r.rpcHeader(), Term: r.st.currentTerm}
	defer func() { rpc.Respond(resp, nil) }()

	candidate := r.trans.DecodePeer(req.Addr)
	candidateID := ServerID(req.ID)
	latest := r.st.configs.latest
	if len(latest.Servers) > 0 && !inConfiguration(latest, candidateID) {
		r.logger.Warn("rejecting pre-vote request from a server not in the configuration", "from", candidate)
		return
	}
	if why := r.stickyRefusal(candidate, true, false); why != "" {
		r.logger.Debug("rejecting pre-vote request", "from", candidate, "reason", why)
		return
	}
	if req.Term < r.st.currentTerm {
		return
	}
	// The answer carries the term the candidate asked about, so it can
	// count it against that term.
	resp.Term = req.Term
	if len(latest.Servers) > 0 && !hasVote(latest, candidateID) {
		r.logger.Warn("rejecting pre-vote request from a non-voter", "from", candidate)
		return
	}
	lastIndex, lastTerm := r.st.log.last()
	if !candidateUpToDate(lastIndex, lastTerm, req.LastLogIndex, req.LastLogTerm) {
		r.logger.Debug("rejecting pre-vote request from a candidate whose log is behind", "candidate", candidate)
		return
	}
	resp.Granted = true
}

// installSnapshot handles an InstallSnapshot request (Raft paper §7). The
// run loop checks it; a goroutine of its own streams the snapshot into the
// store (snapshot.go), so heartbeats keep flowing meanwhile.
func (r *Raft) installSnapshot(rpc RPC, req *InstallSnapshotRequest) {
	defer metrics.MeasureSince([]string{"raft", "rpc", "installSnapshot"}, time.Now())
	resp := &InstallSnapshotResponse{RPCHeader: r.rpcHeader(), Term: r.st.currentTerm}
	refuse := func(err error) {
		// The stream must still be read to its end; that is I/O, so it
		// happens off the run loop.
		r.routines.goFunc(func() {
			io.Copy(io.Discard, rpc.Reader)
			rpc.Respond(resp, err)
		})
	}
	if req.SnapshotVersion < SnapshotVersionMin || req.SnapshotVersion > SnapshotVersionMax {
		refuse(fmt.Errorf("unsupported snapshot version %d", req.SnapshotVersion))
		return
	}
	if req.Term < r.st.currentTerm {
		r.logger.Info("ignoring installSnapshot request with older term than current term",
			"request-term", req.Term, "current-term", r.st.currentTerm)
		refuse(nil)
		return
	}
	if req.Term > r.st.currentTerm || r.st.role != Follower {
		if err := r.becomeFollower(req.Term); err != nil {
			refuse(err)
			return
		}
		resp.Term = req.Term
	}
	r.setLeader(leaderInfo{addr: r.senderAddr(req.RPCHeader, req.Leader), id: ServerID(req.ID)})
	r.setLastContact(r.clock.now())
	r.resetTimer(randomDuration(r.config().HeartbeatTimeout))
	if r.st.installing != nil {
		refuse(fmt.Errorf("a snapshot install is already in progress"))
		return
	}
	if err := r.installBelowUnconfirmed(req); err != nil {
		refuse(err)
		return
	}
	if req.LastLogIndex <= r.st.commitIndex && req.LastLogIndex <= r.st.lastSnapshotIndex {
		// Nothing new: this server already has everything it holds.
		resp.Success = true
		refuse(nil)
		return
	}
	var c Configuration
	var cIndex uint64
	var err error
	if req.SnapshotVersion > 0 {
		c, err = decodeConfiguration(req.Configuration)
		cIndex = req.ConfigurationIndex
	} else {
		c, err = decodePeers(req.Peers, r.trans)
		cIndex = req.LastLogIndex
	}
	if err == nil && cIndex > req.LastLogIndex {
		err = fmt.Errorf("configuration index %d is past the snapshot's last index %d", cIndex, req.LastLogIndex)
	}
	if err != nil {
		r.logger.Error("refusing a snapshot with a malformed configuration", "error", err)
		refuse(err)
		return
	}
	in := &pendingInstall{rpc: rpc, req: req, resp: resp, term: r.st.currentTerm, configuration: c, configIndex: cIndex}
	r.st.installing = in
	r.routines.goFunc(func() { r.receiveSnapshot(in) })
}

// timeoutNow handles a TimeoutNow request: the leader asks this node to
// campaign at once, as the last step of a leadership transfer. The request
// carries no term, so it is obeyed only when its header names the leader
// this node follows in its current term, and only as the campaign rule
// allows (a voter with a healthy log, election.go). Anything else (a stale
// or misdirected request, a non-voter target) is refused with an error, so
// a leader does not wait out its transfer timeout.
func (r *Raft) timeoutNow(rpc RPC, req *TimeoutNowRequest) {
	resp := &TimeoutNowResponse{RPCHeader: r.rpcHeader()}
	from := ServerID(req.ID)
	l := r.st.leader
	if r.st.role != Follower || l.id == "" || from != l.id {
		err := fmt.Errorf("refusing TimeoutNow from %q: not the leader this server follows in term %d (%q)",
			from, r.st.currentTerm, l.id)
		r.logger.Warn(err.Error())
		rpc.Respond(resp, err)
		return
	}
	if reason, _ := r.campaignRefusal(time.Now()); reason != "" {
		err := fmt.Errorf("refusing TimeoutNow from %q: %s", from, reason)
		r.logger.Warn(err.Error())
		rpc.Respond(resp, err)
		return
	}
	r.setLeader(leaderInfo{})
	r.st.transferring = true
	r.becomeCandidate()
	rpc.Respond(resp, nil)
}
