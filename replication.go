package raft

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-metrics"
)

// Replication: one replicator per follower while this node leads.
//
// Each replicator runs two goroutines. The log goroutine sends entries:
// one request at a time until the follower accepts one, then pipelined
// (several requests in flight, when the transport offers
// AppendEntriesPipeline), falling back to one at a time on any failure.
// The heartbeat goroutine sends bare heartbeats on its own schedule and
// path, so they are never queued behind a large batch; it also answers
// VerifyLeader rounds.
//
// The replicator owns its follower's next index. It publishes the match
// index, the last contact time and the acknowledged verification round as
// atomics, and pokes the leader's progressCh; the run loop reads them and
// decides on commitment and leases (ARCHITECTURE.md, who owns what).

const (
	// failureWait is the first back-off after a failed RPC; it doubles
	// with each further failure.
	failureWait = 10 * time.Millisecond
	// maxFailureWait caps the back-off of the log goroutine.
	maxFailureWait = 2 * time.Second
)

// errLeadershipEnded is what a replicator's reads return once the term of
// leadership it serves has ended.
var errLeadershipEnded = errors.New("leadership ended")

// errNeedSnapshot says the entries a follower needs next are no longer in
// the log: it must receive a snapshot.
var errNeedSnapshot = errors.New("follower needs a snapshot")

// maxRetireFailures is how many failed attempts a retiring replicator
// makes to tell its removed server about the removal before giving up.
const maxRetireFailures = 3

type replicator struct {
	r    *Raft
	lead *replicationShared
	peer Server
	// progressCh is the leader's: poked after any published change.
	progressCh chan struct{}

	// Published to the run loop.
	match       atomic.Uint64
	lastContact atomic.Int64 // Unix nanoseconds
	verified    atomic.Uint64
	// leaseSent is when the newest request the peer accepted was sent, on
	// the leader's clock (lease.go, leaseStamp); 0 until one is.
	leaseSent atomic.Uint64
	// pipeSent holds the send times of pipelined requests not yet
	// answered, for leaseSent (lease.go).
	pipeSent pipeSendTimes
	// installing is the index of the snapshot being sent, 0 when none; the
	// run loop keeps the log after it until the install ends.
	installing atomic.Uint64

	// higherTerm is the newest term the peer answered with, when newer
	// than the leader's. The run loop heeds it only while the peer is in
	// the latest configuration: a removed server's term never deposes the
	// leader.
	higherTerm atomic.Uint64

	// retireAt, set by the run loop when the peer leaves the
	// configuration, is the entry that removed it: replication stops once
	// the peer holds it and has been told it committed (retired).
	retireAt atomic.Uint64
	// commitTold is the highest commit index in a request the peer
	// accepted.
	commitTold atomic.Uint64

	// triggerCh (capacity one) says new entries are waiting; hbPokeCh
	// (capacity one) asks for a heartbeat now. The run loop sends on both.
	triggerCh chan struct{}
	hbPokeCh  chan struct{}
	// stopCh is closed, once, under stopOnce, to stop both goroutines: by
	// the run loop, or by a retiring log goroutine.
	stopCh   chan struct{}
	stopOnce sync.Once

	// labels and names are the replicator's metric labels and names, built
	// once; namesMu guards names, shared by the two goroutines.
	labels  []metrics.Label
	namesMu sync.Mutex
	names   map[string]replicationMetric

	// nextIndex is the next entry to send. Private to the log goroutine.
	nextIndex uint64
	// sent is the last snapshot installed on the follower; its last entry
	// may have been compacted away, and the next request names its term.
	// Private to the log goroutine.
	sent indexTerm
}

func newReplicator(r *Raft, lead *leaderState, peer Server) *replicator {
	s := &replicator{
		r:          r,
		lead:       lead.shared,
		peer:       peer,
		progressCh: lead.progressCh,
		triggerCh:  make(chan struct{}, 1),
		hbPokeCh:   make(chan struct{}, 1),
		stopCh:     make(chan struct{}),
		nextIndex:  lead.shared.lastIndex.Load() + 1,
		labels:     []metrics.Label{{Name: "peer_id", Value: string(peer.ID)}},
		names:      make(map[string]replicationMetric),
	}
	// A new leader gives every follower a full lease to answer.
	s.lastContact.Store(s.r.clock.now().UnixNano())
	return s
}

func (s *replicator) start() {
	s.r.routines.goFunc(s.runLog)
	s.r.routines.goFunc(s.runHeartbeat)
}

func (s *replicator) stop()          { s.stopOnce.Do(func() { close(s.stopCh) }) }
func (s *replicator) trigger()       { notify(s.triggerCh) }
func (s *replicator) pokeHeartbeat() { notify(s.hbPokeCh) }

func (s *replicator) contact() time.Time { return time.Unix(0, s.lastContact.Load()) }

// retire makes the replicator send everything up to upTo, the entry that
// removed its peer, and tell the peer once it committed, and then stop.
func (s *replicator) retire(upTo uint64) {
	s.retireAt.Store(upTo)
	s.trigger()
}

// retired reports whether a retiring replicator is done: its peer holds
// the removal and knows it committed, so it no longer campaigns
// (Raft.campaignRefusal), or it failed too often to tell it. Until the
// removal commits the replicator goes on, sending at least one request
// per CommitTimeout, each carrying the leader's commit index.
func (s *replicator) retired(failures int) bool {
	at := s.retireAt.Load()
	return at > 0 && (s.match.Load() >= at && s.commitTold.Load() >= at || failures >= maxRetireFailures)
}

func (s *replicator) setContact() {
	s.lastContact.Store(s.r.clock.now().UnixNano())
	notify(s.progressCh)
}

// sawTerm records a term newer than the leader's and asks the run loop to
// look. A retiring replicator stops instead: its peer left the
// configuration, and a server that cannot accept the entry removing it,
// because its term is higher, is no longer this leader's business.
func (s *replicator) sawTerm(term uint64) {
	raiseTo(&s.higherTerm, term)
	if s.retireAt.Load() > 0 {
		s.r.logger.Warn("a removed server answered with a newer term, no longer replicating to it",
			"peer", s.peer.ID, "term", term)
		s.stop()
		return
	}
	notify(s.progressCh)
}

// wait blocks for d, or until the replicator stops; it reports whether
// the replicator should go on.
func (s *replicator) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.stopCh:
		return false
	}
}

func (s *replicator) stopped() bool {
	select {
	case <-s.stopCh:
		return true
	default:
		return s.lead.stopped.Load()
	}
}

// --- The heartbeat goroutine. ---

func (s *replicator) runHeartbeat() {
	r := s.r
	failures := 0
	// One timer for the goroutine's life, not one per heartbeat: with
	// reads waiting, a heartbeat goes out per verification round.
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		t.Reset(randomDuration(r.config().HeartbeatTimeout / 10))
		select {
		case <-t.C:
		case <-s.hbPokeCh:
		case <-s.stopCh:
			return
		}
		round := s.lead.verifyRound.Load()
		req := &AppendEntriesRequest{
			RPCHeader: r.rpcHeader(),
			Term:      s.lead.term,
			Leader:    r.encodedAddr,
		}
		var resp AppendEntriesResponse
		start := time.Now()
		sent := r.leaseStamp()
		if err := r.trans.AppendEntries(s.peer.ID, s.peer.Address, req, &resp); err != nil {
			failures++
			r.logger.Error("failed to heartbeat to", "peer", s.peer.Address, "backoff", backoff(failureWait, failures, r.config().HeartbeatTimeout/2), "error", err)
			r.observe(FailedHeartbeatObservation{PeerID: s.peer.ID, LastContact: s.contact()})
			if !s.wait(backoff(failureWait, failures, r.config().HeartbeatTimeout/2)) {
				return
			}
			continue
		}
		if failures > 0 {
			failures = 0
			r.observe(ResumedHeartbeatObservation{PeerID: s.peer.ID})
		}
		if resp.Term > s.lead.term {
			s.sawTerm(resp.Term)
			return
		}
		if resp.Success {
			s.verified.Store(max(s.verified.Load(), round))
			s.noteAccepted(sent)
		}
		s.setContact()
		s.measure("heartbeat", start)
	}
}

// measure records an RPC's duration under the labelled name and, unless
// legacy telemetry is off, the per-peer name too.
func (s *replicator) measure(kind string, start time.Time) {
	m := s.metricNames(kind)
	metrics.MeasureSinceWithLabels(m.labelled, start, s.labels)
	if !s.r.config().NoLegacyTelemetry {
		metrics.MeasureSince(m.legacy, start)
	}
}

// replicationMetric holds the two names of one per-peer metric: the
// labelled one and the legacy one that embeds the peer's ID.
type replicationMetric struct{ labelled, legacy []string }

// metricNames returns, building them once, the names of a per-peer
// metric. Only the replicator's goroutines call it.
func (s *replicator) metricNames(kind string) replicationMetric {
	s.namesMu.Lock()
	defer s.namesMu.Unlock()
	m, ok := s.names[kind]
	if !ok {
		labelled := metricKey("raft.replication." + kind)
		m = replicationMetric{
			labelled: labelled,
			legacy:   append(labelled[:len(labelled):len(labelled)], string(s.peer.ID)),
		}
		s.names[kind] = m
	}
	return m
}

// --- The log goroutine. ---

func (s *replicator) runLog() {
	r := s.r
	commitTimer := time.NewTimer(randomDuration(r.config().CommitTimeout))
	defer commitTimer.Stop()
	failures := 0
	pipelineOK := true
	// A new replicator starts by probing the follower at once.
	s.trigger()
	for {
		select {
		case <-s.stopCh:
			return
		case <-s.triggerCh:
		case <-commitTimer.C:
		}
		commitTimer.Reset(randomDuration(r.config().CommitTimeout))

		// Send one request at a time until the follower has everything,
		// or until one succeeds and pipelining can take over.
		for {
			res := s.sendOne()
			switch res {
			case sendStop:
				return
			case sendFailed:
				failures++
				if s.retired(failures) {
					s.stop()
					return
				}
				if !s.wait(backoff(failureWait, failures, maxFailureWait)) {
					return
				}
				continue
			case sendMismatch:
				continue
			}
			failures = 0
			if s.retired(0) {
				s.stop()
				return
			}
			if s.nextIndex > s.lead.lastIndex.Load() || pipelineOK {
				break
			}
		}
		if pipelineOK && s.retireAt.Load() == 0 {
			pipelineOK = s.runPipeline(commitTimer)
		}
	}
}

type sendResult int

const (
	sendOK       sendResult = iota // the follower accepted
	sendMismatch                   // the follower's log differs; retry at once from nextIndex
	sendFailed                     // the RPC failed; back off
	sendStop                       // leadership ended or the replicator stopped
)

// sendOne sends one AppendEntries from nextIndex and waits for the answer.
func (s *replicator) sendOne() sendResult {
	r := s.r
	req, err := s.buildRequest(s.nextIndex)
	if errors.Is(err, errLeadershipEnded) || errors.Is(err, ErrRaftShutdown) || s.stopped() {
		return sendStop
	}
	if errors.Is(err, errNeedSnapshot) {
		return s.sendSnapshot()
	}
	if err != nil {
		r.logger.Error("failed to prepare entries for follower", "peer", s.peer.ID, "next-index", s.nextIndex, "error", err)
		return sendFailed
	}
	var resp AppendEntriesResponse
	start := time.Now()
	sent := r.leaseStamp()
	if err := r.trans.AppendEntries(s.peer.ID, s.peer.Address, req, &resp); err != nil {
		r.logger.Error("failed to append to follower", "peer", s.peer.ID, "error", err)
		return sendFailed
	}
	s.measure("appendEntries.rpc", start)
	res := s.handleResponse(req, &resp)
	if res == sendOK {
		s.noteAccepted(sent)
	}
	return res
}

// handleResponse acts on a follower's answer and returns what to do next.
func (s *replicator) handleResponse(req *AppendEntriesRequest, resp *AppendEntriesResponse) sendResult {
	if resp.Term > s.lead.term {
		s.sawTerm(resp.Term)
		return sendStop
	}
	if !resp.Success {
		// The follower answered, so it is alive.
		s.lastContact.Store(s.r.clock.now().UnixNano())
		if match := s.match.Load(); resp.LastLog < match {
			s.wentBackwards(match, resp.LastLog)
		}
		// Retry just after the follower's hint, never further forward
		// than one step back (compat: the reference's LastLog rule), and
		// never at or below what the follower is known to hold.
		before := s.nextIndex
		s.nextIndex = max(min(s.nextIndex-1, resp.LastLog+1), 1)
		s.nextIndex = max(s.nextIndex, s.match.Load()+1)
		// An immediate retry only makes sense if it asks something new: a
		// follower that refuses the entry it already acknowledged (its
		// disk lost it, or it is misbehaving) would otherwise be asked
		// the same question in a tight loop.
		if resp.NoRetryBackoff && s.nextIndex != before {
			return sendMismatch
		}
		return sendFailed
	}
	s.recordSuccess(req)
	s.nextIndex = max(s.nextIndex, req.PrevLogEntry+uint64(len(req.Entries))+1)
	return sendOK
}

// wentBackwards handles a follower whose log ends at last, below the
// entry at acked that it acknowledged in this term: its log store lost
// entries, typically because it was restarted under the same ID with an
// empty data directory. A follower that refuses an AppendEntries reports
// the end of its log, and a correct one never drops entries it
// acknowledged to the current leader, so this is never a race.
//
// Its match index drops to 0, so its old acknowledgements no longer count
// towards the commit index: the entries may now be held by fewer servers
// than the leader believed. The match index rises again as the follower
// is repaired, from the log or, when the log no longer holds what it
// needs, through a snapshot, each request proving again what it holds.
// What cannot be repaired from here is a vote the server cast and forgot;
// the README asks operators to remove and re-add a wiped server instead.
func (s *replicator) wentBackwards(acked, last uint64) {
	s.r.logger.Error("follower went backwards: it lost log entries it had acknowledged; "+
		"they no longer count towards commitment until it holds them again. "+
		"A server whose data was lost should be removed and added back",
		"peer", s.peer.ID, "address", s.peer.Address, "acknowledged-index", acked, "follower-last-index", last)
	s.match.Store(0)
	notify(s.progressCh)
}

// recordSuccess publishes what an accepted request proves the follower
// holds. It wakes the run loop only when that can matter to it: a match
// index past the commit index may move it, and a transfer waits for its
// target's. The follower that answers after a quorum already committed
// its entries, the second of two at one client, wakes nothing: the run
// loop reads its match index and contact time when it next looks.
func (s *replicator) recordSuccess(req *AppendEntriesRequest) {
	last := req.PrevLogEntry + uint64(len(req.Entries))
	if last > s.match.Load() {
		s.match.Store(last)
	}
	raiseTo(&s.commitTold, min(req.LeaderCommitIndex, last))
	if n := len(req.Entries); n > 0 {
		m := s.metricNames("appendEntries.logs")
		metrics.IncrCounterWithLabels(m.labelled, float32(n), s.labels)
		if !s.r.config().NoLegacyTelemetry {
			metrics.IncrCounter(m.legacy, float32(n))
		}
	}
	s.lastContact.Store(s.r.clock.now().UnixNano())
	if last > s.lead.commitIndex.Load() || s.lead.transferring.Load() {
		notify(s.progressCh)
	}
}

// buildRequest prepares an AppendEntries carrying entries from next on,
// bounded by MaxAppendEntries and the byte bound. It reads entries from
// the leader's memLog while it holds them, else from the log store, and
// checks afterwards that the leadership it serves has not ended.
func (s *replicator) buildRequest(next uint64) (*AppendEntriesRequest, error) {
	r := s.r
	conf := r.config()
	last := s.lead.lastIndex.Load()
	req := &AppendEntriesRequest{
		RPCHeader:         r.rpcHeader(),
		Term:              s.lead.term,
		Leader:            r.encodedAddr,
		PrevLogEntry:      next - 1,
		LeaderCommitIndex: s.lead.commitIndex.Load(),
	}
	prevTerm, err := s.termAt(next - 1)
	if errors.Is(err, ErrLogNotFound) {
		return nil, errNeedSnapshot
	}
	if err != nil {
		return nil, err
	}
	req.PrevLogTerm = prevTerm
	if next <= last {
		entries, err := s.readEntries(next, last, conf.MaxAppendEntries, r.appendPayloadBudget(conf, conf.MaxAppendEntries))
		if errors.Is(err, ErrLogNotFound) {
			return nil, errNeedSnapshot
		}
		if err != nil {
			return nil, err
		}
		req.Entries = entries
	}
	if s.lead.stopped.Load() {
		return nil, errLeadershipEnded
	}
	return req, nil
}

// termAt returns the term of the entry at index, for PrevLogTerm.
func (s *replicator) termAt(index uint64) (uint64, error) {
	if index == 0 {
		return 0, nil
	}
	log := &s.r.st.log
	log.mu.RLock()
	l, ok := log.get(index)
	log.mu.RUnlock()
	if ok {
		return l.Term, nil
	}
	if snapIndex, snapTerm := s.r.pub.lastSnapshot(); index == snapIndex {
		return snapTerm, nil
	}
	if index == s.sent.index {
		return s.sent.term, nil
	}
	var entry Log
	if err := s.r.logs.GetLog(index, &entry); err != nil {
		return 0, fmt.Errorf("reading log entry %d: %w", index, err)
	}
	return entry.Term, nil
}

// readEntries returns entries from next up to at most last, within the
// count and byte bounds.
func (s *replicator) readEntries(next, last uint64, maxCount, maxBytes int) ([]*Log, error) {
	log := &s.r.st.log
	limit := min(uint64(maxCount), last-next+1)
	out := make([]*Log, 0, limit)
	if out, ok := log.collect(out, next, int(limit), maxBytes); ok {
		return out, nil
	}
	// Not in memory: everything below what memLog holds is durable in the
	// store. Read up to where memLog takes over.
	log.mu.RLock()
	firstHeld := log.firstHeld()
	log.mu.RUnlock()
	size := 0
	for i := next; i <= last && uint64(len(out)) < limit && i < firstHeld; i++ {
		entry := new(Log)
		if err := s.r.logs.GetLog(i, entry); err != nil {
			return nil, fmt.Errorf("reading log entry %d: %w", i, err)
		}
		size += entryBytes(entry)
		if len(out) > 0 && size > maxBytes {
			break
		}
		out = append(out, entry)
	}
	return out, nil
}

// runPipeline replicates through a pipeline until it fails or the
// replicator stops. It returns false when the transport cannot pipeline,
// so the replicator stops trying.
func (s *replicator) runPipeline(commitTimer *time.Timer) bool {
	r := s.r
	pipe, err := r.trans.AppendEntriesPipeline(s.peer.ID, s.peer.Address)
	if errors.Is(err, ErrPipelineReplicationNotSupported) {
		return false
	}
	if err != nil {
		r.logger.Error("failed to start pipeline replication to", "peer", s.peer.ID, "error", err)
		if s.wait(failureWait) {
			s.trigger()
		}
		return true
	}
	r.logger.Info("pipelining replication", "peer", s.peer)

	failedCh := make(chan struct{})
	// Answers reach handlePipelined straight from this package's
	// pipelines (pipeline_answers.go), or through a collector goroutine
	// reading Consumer() for any other.
	stopAnswers := func() {}
	if dp, ok := pipe.(directAnswerPipeline); ok {
		d := &directAnswers{s: s, failedCh: failedCh}
		dp.deliverTo(d.handle)
		stopAnswers = d.stop
	} else {
		quitCh := make(chan struct{})
		doneCh := make(chan struct{})
		r.routines.goFunc(func() {
			defer close(doneCh)
			s.collectPipeline(pipe, failedCh, quitCh)
		})
		stopAnswers = func() {
			close(quitCh)
			<-doneCh
		}
	}
	defer func() {
		// Answers stop first, so the pipeline is closed once, by this
		// goroutine, after its last AppendEntries: never twice and never
		// while another call on it is running, as a user's transport may
		// expect.
		stopAnswers()
		pipe.Close()
		s.pipeSent.reset()
		// Resume one request at a time from what the follower holds.
		s.nextIndex = s.match.Load() + 1
		s.trigger()
		r.logger.Info("aborting pipeline replication", "peer", s.peer)
	}()

	for {
		if !s.sendPipelined(pipe, failedCh) {
			return true
		}
		select {
		case <-s.stopCh:
			return true
		case <-failedCh:
			return true
		case <-s.triggerCh:
		case <-commitTimer.C:
			commitTimer.Reset(randomDuration(r.config().CommitTimeout))
		}
		if s.retireAt.Load() > 0 {
			return true
		}
	}
}

// pinSnapshot picks the newest snapshot and publishes its index in
// installing, so that the run loop keeps the log entries after it until
// the install ends. A compaction that raced with the publication may
// already have removed them, or have been handed to the log writer or
// compactor before the run loop could see the pin (it publishes its
// target in compactTarget first, see Raft.readyOp); then a newer snapshot
// exists, and it pins that one instead.
func (s *replicator) pinSnapshot() (*SnapshotMeta, error) {
	for attempt := 0; ; attempt++ {
		snapshots, err := s.r.snapshots.List()
		if err != nil {
			return nil, fmt.Errorf("listing snapshots: %w", err)
		}
		if len(snapshots) == 0 {
			return nil, fmt.Errorf("no snapshots found")
		}
		latest := ownSnapshot(snapshots, s.r)
		if latest == nil && attempt < 2 {
			// Its own snapshot may have been written just after the
			// listing.
			continue
		}
		if latest == nil {
			index, term := s.r.pub.lastSnapshot()
			return nil, fmt.Errorf("the snapshot this node adopted, at index %d (term %d), is no longer in the store; "+
				"waiting for its next snapshot", index, term)
		}
		s.installing.Store(latest.Index)
		first, err := s.r.logs.FirstIndex()
		if err != nil {
			return nil, fmt.Errorf("reading first log index: %w", err)
		}
		compacting := s.r.compactTarget.Load()
		if (first == 0 || first <= latest.Index+1) && compacting <= latest.Index || attempt == 2 {
			return latest, nil
		}
	}
}

// ownSnapshot returns, of the stored snapshots (newest first), the one
// this node adopted as its newest, or nil. The store may hold
// newer ones the node never adopted: one received from a leader whose
// term ended, or one its own state had already passed, may be a user
// restore the cluster never committed (unconfirmed_snapshot.go), and
// sending it would hand a follower a state that is not this leader's.
func ownSnapshot(snapshots []*SnapshotMeta, r *Raft) *SnapshotMeta {
	index, term := r.pub.lastSnapshot()
	for _, m := range snapshots {
		if m.Index == index && m.Term == term {
			return m
		}
	}
	return nil
}

// sendSnapshot sends the newest snapshot to a follower whose next entries
// the log no longer holds. The snapshot streams from the store to the
// transport; it is never held whole in memory.
func (s *replicator) sendSnapshot() sendResult {
	r := s.r
	latest, err := s.pinSnapshot()
	defer s.installing.Store(0)
	if err != nil {
		r.logger.Error("failed to send snapshot", "peer", s.peer.ID, "error", err)
		return sendFailed
	}
	meta, data, err := openSnapshotToSend(r.snapshots, latest.ID)
	if err != nil {
		r.logger.Error("failed to open snapshot", "id", latest.ID, "error", err)
		return sendFailed
	}
	defer data.Close()
	req := &InstallSnapshotRequest{
		RPCHeader:          r.rpcHeader(),
		SnapshotVersion:    meta.Version,
		Term:               s.lead.term,
		Leader:             r.encodedAddr,
		LastLogIndex:       meta.Index,
		LastLogTerm:        meta.Term,
		Peers:              meta.Peers,
		Configuration:      EncodeConfiguration(meta.Configuration),
		ConfigurationIndex: meta.ConfigurationIndex,
		Size:               meta.Size,
	}
	if s.stopped() {
		return sendStop
	}
	r.logger.Info("installing snapshot on", "peer", s.peer.ID, "id", meta.ID, "size", meta.Size)
	var resp InstallSnapshotResponse
	start := time.Now()
	if err := r.trans.InstallSnapshot(s.peer.ID, s.peer.Address, req, &resp, data); err != nil {
		r.logger.Error("failed to install snapshot", "peer", s.peer.ID, "id", meta.ID, "error", err)
		return sendFailed
	}
	s.measure("installSnapshot", start)
	if resp.Term > s.lead.term {
		s.sawTerm(resp.Term)
		return sendStop
	}
	if !resp.Success {
		s.lastContact.Store(s.r.clock.now().UnixNano())
		r.logger.Warn("installSnapshot rejected to", "peer", s.peer.ID, "id", meta.ID)
		return sendFailed
	}
	if meta.Index > s.match.Load() {
		s.match.Store(meta.Index)
	}
	s.nextIndex = meta.Index + 1
	s.sent = indexTerm{meta.Index, meta.Term}
	s.setContact()
	// The follower restores the snapshot once an AppendEntries shows it
	// committed (unconfirmed_snapshot.go): send one now, even with
	// nothing new to send, rather than at the next commit timeout.
	s.trigger()
	return sendOK
}

// sendPipelined sends everything up to the leader's last index, in
// batches, without waiting for answers. It returns false on failure, or
// once failedCh is closed (an answer failed).
func (s *replicator) sendPipelined(pipe AppendPipeline, failedCh <-chan struct{}) bool {
	for {
		select {
		case <-failedCh:
			return false
		default:
		}
		req, err := s.buildRequest(s.nextIndex)
		if err != nil {
			if !errors.Is(err, errLeadershipEnded) && !errors.Is(err, ErrRaftShutdown) {
				s.r.logger.Error("failed to prepare entries for follower", "peer", s.peer.ID, "error", err)
			}
			return false
		}
		s.pipeSent.note(req, s.r.leaseStamp())
		if _, err := pipe.AppendEntries(req, new(AppendEntriesResponse)); err != nil {
			s.r.logger.Error("failed to pipeline entries", "peer", s.peer.ID, "error", err)
			return false
		}
		s.nextIndex += uint64(len(req.Entries))
		if s.nextIndex > s.lead.lastIndex.Load() {
			return true
		}
	}
}

// collectPipeline handles the pipeline's answers, in order, until quitCh
// closes. After the first answer that is not a success it closes failedCh
// and goes on taking answers without looking at them: the log goroutine may
// still be sending a backlog, and would block for good once the pipeline's
// window is full if nobody took the answers. It never closes the pipeline
// (runPipeline does, once this returned) and asks for the pipeline's
// Consumer channel once. It touches only published figures, never
// nextIndex, which belongs to the log goroutine.
func (s *replicator) collectPipeline(pipe AppendPipeline, failedCh, quitCh chan struct{}) {
	answers := pipe.Consumer()
	failed := false
	for {
		select {
		case f := <-answers:
			if !failed && !s.handlePipelined(f) {
				failed = true
				close(failedCh)
			}
		case <-quitCh:
			return
		}
	}
}

// handlePipelined records a pipelined answer and reports whether the
// pipeline may go on.
func (s *replicator) handlePipelined(f AppendFuture) bool {
	if err := f.Error(); err != nil {
		s.r.logger.Error("pipelined append failed", "peer", s.peer.ID, "error", err)
		return false
	}
	s.measure("appendEntries.rpc", f.Start())
	sent := s.pipeSent.take(f.Request())
	resp := f.Response()
	if resp.Term > s.lead.term {
		s.sawTerm(resp.Term)
		return false
	}
	if !resp.Success {
		return false
	}
	s.recordSuccess(f.Request())
	s.noteAccepted(sent)
	return true
}
