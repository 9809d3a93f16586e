package raft

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Tests of who may campaign (Raft.campaignRefusal) and of what a vote
// request claims. One real node, "d", runs among four servers the test
// plays by hand ("a" to "e"), so every interleaving is chosen, not hoped
// for.

// faultyLogStore is a log store whose StoreLogs calls can be held and then
// failed, and whose LastIndex calls (the read-back after a failed write)
// can be held.
type faultyLogStore struct {
	*InmemStore
	mu        sync.Mutex
	storeHold chan struct{} // StoreLogs waits for it to close, then fails
	lastHold  chan struct{} // LastIndex waits for it to close
	entered   chan struct{} // poked when a call starts waiting
	releases  []func()      // every hold's release, for the end of a test
}

func newFaultyLogStore() *faultyLogStore {
	return &faultyLogStore{InmemStore: NewInmemStore(), entered: make(chan struct{}, 1)}
}

func (s *faultyLogStore) StoreLogs(logs []*Log) error {
	if waitIfHeld(&s.mu, &s.storeHold, s.entered) {
		return errors.New("injected StoreLogs failure")
	}
	return s.InmemStore.StoreLogs(logs)
}

func (s *faultyLogStore) StoreLog(l *Log) error { return s.StoreLogs([]*Log{l}) }

func (s *faultyLogStore) LastIndex() (uint64, error) {
	waitIfHeld(&s.mu, &s.lastHold, s.entered)
	return s.InmemStore.LastIndex()
}

// holdStores makes later StoreLogs calls wait and then fail; the returned
// function lets them go.
func (s *faultyLogStore) holdStores() (fail func()) { return s.hold(&s.storeHold) }

// holdLastIndex makes later LastIndex calls wait until the returned
// function is called.
func (s *faultyLogStore) holdLastIndex() (release func()) { return s.hold(&s.lastHold) }

func (s *faultyLogStore) hold(field *chan struct{}) func() {
	release := holdCalls(&s.mu, field)
	s.mu.Lock()
	s.releases = append(s.releases, release)
	s.mu.Unlock()
	return release
}

// releaseAll lets every held call go.
func (s *faultyLogStore) releaseAll() {
	s.mu.Lock()
	releases := s.releases
	s.mu.Unlock()
	for _, release := range releases {
		release()
	}
}

// handPlayed is node "d" of a five-voter cluster whose other servers the
// test plays: "a" leads term 2 through send; the others answer
// AppendEntries with success and record every entry d sends them, and
// hand d's vote requests to the test on votes.
type handPlayed struct {
	t     *testing.T
	d     *Raft
	store *faultyLogStore
	trans map[ServerID]*InmemTransport
	votes chan heldVote
	done  chan struct{}

	mu sync.Mutex
	// sent maps "index/term" to what d sent at that position.
	sent map[string][]byte
	// conflicts lists positions d sent two different entries for.
	conflicts []string
	// ledIn lists the terms d became leader in.
	ledIn []uint64
}

// heldVote is a vote request from d to one of the played servers, waiting
// for the test's answer.
type heldVote struct {
	to  ServerID
	req *RequestVoteRequest
	rpc RPC
}

// answer grants or refuses the vote.
func (v heldVote) answer(granted bool) {
	v.rpc.Respond(&RequestVoteResponse{RPCHeader: RPCHeader{ProtocolVersion: ProtocolVersionMax, ID: []byte(v.to), Addr: []byte("addr-" + v.to)},
		Term: v.req.Term, Granted: granted}, nil)
}

func startHandPlayed(t *testing.T, conf func(*Config), suffrage ServerSuffrage) *handPlayed {
	t.Helper()
	h := &handPlayed{
		t:     t,
		store: newFaultyLogStore(),
		trans: make(map[ServerID]*InmemTransport),
		votes: make(chan heldVote, 16),
		done:  make(chan struct{}),
		sent:  make(map[string][]byte),
	}
	var cfg Configuration
	for _, id := range []ServerID{"a", "b", "c", "d", "e"} {
		addr := ServerAddress("addr-" + id)
		_, h.trans[id] = NewInmemTransport(addr)
		s := Server{Suffrage: Voter, ID: id, Address: addr}
		if id == "d" {
			s.Suffrage = suffrage
		}
		cfg.Servers = append(cfg.Servers, s)
	}
	for id, tr := range h.trans {
		for other, peer := range h.trans {
			if id != other {
				tr.Connect(peer.LocalAddr(), peer)
			}
		}
	}
	c := testConfig(t, "d")
	c.PreVoteDisabled = true
	if conf != nil {
		conf(c)
	}
	snaps := NewInmemSnapshotStore()
	if err := BootstrapCluster(c, h.store, h.store.InmemStore, snaps, h.trans["d"], cfg); err != nil {
		t.Fatal(err)
	}
	r, err := NewRaft(c, &testFSM{}, h.store, h.store.InmemStore, snaps, h.trans["d"])
	if err != nil {
		t.Fatal(err)
	}
	h.d = r
	r.RegisterObserver(NewObserver(nil, false, func(o *Observation) bool {
		if s, ok := o.Data.(RaftState); ok && s == Leader {
			h.mu.Lock()
			h.ledIn = append(h.ledIn, r.CurrentTerm())
			h.mu.Unlock()
		}
		return false
	}))
	for _, id := range []ServerID{"a", "b", "c", "e"} {
		go h.serve(id)
	}
	return h
}

// serve plays server id's side of d's RPCs.
func (h *handPlayed) serve(id ServerID) {
	header := RPCHeader{ProtocolVersion: ProtocolVersionMax, ID: []byte(id), Addr: []byte("addr-" + id)}
	for {
		select {
		case <-h.done:
			return
		case rpc := <-h.trans[id].Consumer():
			switch req := rpc.Command.(type) {
			case *AppendEntriesRequest:
				h.record(req.Entries)
				rpc.Respond(&AppendEntriesResponse{RPCHeader: header, Term: req.Term, Success: true,
					LastLog: req.PrevLogEntry + uint64(len(req.Entries))}, nil)
			case *RequestVoteRequest:
				h.votes <- heldVote{to: id, req: req, rpc: rpc}
			default:
				rpc.Respond(nil, fmt.Errorf("%T not played", req))
			}
		}
	}
}

// record notes the entries d sent, and any position it sent two
// different entries for.
func (h *handPlayed) record(entries []*Log) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range entries {
		key := fmt.Sprintf("%d/%d", e.Index, e.Term)
		content := append([]byte{byte(e.Type)}, e.Data...)
		if old, ok := h.sent[key]; ok && !bytes.Equal(old, content) {
			h.conflicts = append(h.conflicts, key)
		}
		h.sent[key] = content
	}
}

// led returns the terms d became leader in.
func (h *handPlayed) led() []uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]uint64(nil), h.ledIn...)
}

// sentAt returns the terms of the entries d sent at index.
func (h *handPlayed) sentAt(index uint64) []uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var terms []uint64
	for key := range h.sent {
		var i, term uint64
		fmt.Sscanf(key, "%d/%d", &i, &term)
		if i == index {
			terms = append(terms, term)
		}
	}
	return terms
}

// send delivers an AppendEntries of term 2 from a: entries from..to after
// prev (no entries when from is 0), committing up to commit.
func (h *handPlayed) send(prev, from, to, commit uint64) *AppendEntriesResponse {
	req := &AppendEntriesRequest{
		RPCHeader:         RPCHeader{ProtocolVersion: ProtocolVersionMax, ID: []byte("a"), Addr: []byte("addr-a")},
		Term:              2,
		PrevLogEntry:      prev,
		PrevLogTerm:       2,
		LeaderCommitIndex: commit,
	}
	if prev == 1 {
		req.PrevLogTerm = 1 // the bootstrap entry
	}
	for i := from; i <= to && from > 0; i++ {
		req.Entries = append(req.Entries, &Log{Index: i, Term: 2, Type: LogCommand, Data: []byte(fmt.Sprintf("cmd-%d", i))})
	}
	var resp AppendEntriesResponse
	if err := h.trans["a"].AppendEntries("d", "addr-d", req, &resp); err != nil {
		h.t.Errorf("AppendEntries: %v", err)
	}
	return &resp
}

// collectVotes waits for d's vote requests to the four played servers.
func (h *handPlayed) collectVotes() map[ServerID]heldVote {
	h.t.Helper()
	got := make(map[ServerID]heldVote)
	for len(got) < 4 {
		v := <-h.votes
		got[v.to] = v
	}
	return got
}

func (h *handPlayed) stop() {
	h.store.releaseAll()
	h.d.Shutdown().Error()
	close(h.done)
}

// campaignWithFailingWrite brings d to the point where it campaigns in
// term 3 with entry 10 still being written, and makes that write fail.
// Entries 2-10 are committed on a, b and c (d does not know 10 is).
// holdResync keeps the read-back that follows the failure from finishing.
func campaignWithFailingWrite(t *testing.T, h *handPlayed, holdResync bool) (votes map[ServerID]heldVote, releaseResync func()) {
	if resp := h.send(1, 2, 9, 9); !resp.Success {
		t.Fatalf("d refused entries 2-9: %+v", resp)
	}
	fail := h.store.holdStores()
	go h.send(9, 10, 10, 9)
	<-h.store.entered
	// a falls silent: d's timer fires and it campaigns, claiming entry
	// 10, whose write is under way.
	votes = h.collectVotes()
	for _, v := range votes {
		if v.req.Term != 3 || v.req.LastLogIndex != 10 || v.req.LastLogTerm != 2 {
			t.Fatalf("vote request %+v, want term 3 claiming (10, 2)", v.req)
		}
	}
	releaseResync = func() {}
	if holdResync {
		releaseResync = h.store.holdLastIndex()
	}
	fail()
	if holdResync {
		<-h.store.entered
	}
	synctest.Wait()
	return votes, releaseResync
}

// Issue 12, item 2, first interleaving: a candidate whose write failed
// went on campaigning; the read-back shrank its log to 9, it won with
// the votes it had asked for while claiming entry 10, and its no-op took
// index 10 in term 3, replacing the committed entry there on b and c.
func TestCampaign_FailedWriteEndsTheCandidacy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startHandPlayed(t, nil, Voter)
		defer h.stop()
		votes, _ := campaignWithFailingWrite(t, h, false)
		if got := h.d.LastIndex(); got != 9 {
			t.Fatalf("after the failed write d's last index is %d, want 9", got)
		}
		// b and e grant (e lacks entry 10; b holds it and d claimed it).
		votes["b"].answer(true)
		votes["e"].answer(true)
		votes["a"].answer(false)
		votes["c"].answer(false)
		synctest.Wait()
		for _, term := range h.sentAt(10) {
			if term != 2 {
				t.Fatalf("d sent an entry of term %d at index 10, replacing the committed entry of term 2", term)
			}
		}
		if led := h.led(); len(led) > 0 {
			t.Fatalf("d led (terms %v) although its log lost the entry its vote request claimed", led)
		}
	})
}

// Issue 12, item 2, second interleaving: the candidate wins before the
// read-back ends; its no-op is (11, 3). The read-back then shrinks its log
// to 9, and its next entries take indexes 10 and 11 in term 3 again: two
// different entries under one (index, term), which log matching treats as
// the same.
func TestCampaign_FailedWriteBeforeTheWin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startHandPlayed(t, nil, Voter)
		defer h.stop()
		votes, releaseResync := campaignWithFailingWrite(t, h, true)
		votes["b"].answer(true)
		votes["e"].answer(true)
		votes["a"].answer(false)
		votes["c"].answer(false)
		synctest.Wait()
		releaseResync()
		synctest.Wait()
		if h.d.State() == Leader {
			h.d.Apply([]byte("x"), 0)
			h.d.Apply([]byte("y"), 0)
			time.Sleep(time.Second)
		}
		h.mu.Lock()
		conflicts := h.conflicts
		h.mu.Unlock()
		if len(conflicts) > 0 {
			t.Fatalf("d sent different entries under the same (index, term): %v", conflicts)
		}
		for _, index := range []uint64{10, 11} {
			var l Log
			if err := h.store.GetLog(index, &l); err != nil {
				continue
			}
			for _, term := range h.sentAt(index) {
				if term == l.Term && !bytes.Equal(h.sent[fmt.Sprintf("%d/%d", index, term)], append([]byte{byte(l.Type)}, l.Data...)) {
					t.Fatalf("d's own entry (%d, %d) differs from the one it sent", index, term)
				}
			}
		}
		if led := h.led(); len(led) > 0 {
			t.Fatalf("d led (terms %v) with a log whose write had failed", led)
		}
	})
}

// timeoutNowFrom sends d a TimeoutNow whose header names from.
func (h *handPlayed) timeoutNowFrom(from ServerID) error {
	req := &TimeoutNowRequest{RPCHeader: RPCHeader{ProtocolVersion: ProtocolVersionMax, ID: []byte(from), Addr: []byte("addr-" + from)}}
	return h.trans[from].TimeoutNow("d", "addr-d", req, &TimeoutNowResponse{})
}

// Issue 12, item 10: TimeoutNow is obeyed only from the leader this server
// follows in its current term, and only by a voter whose log is healthy.
func TestTimeoutNow_ObeyedOnlyFromTheCurrentLeaderByAHealthyVoter(t *testing.T) {
	cases := []struct {
		name     string
		suffrage ServerSuffrage
		// setUp runs once d follows a in term 2, and returns who sends the
		// TimeoutNow.
		setUp   func(t *testing.T, h *handPlayed) ServerID
		campain bool
	}{
		{"from the leader", Voter, func(*testing.T, *handPlayed) ServerID { return "a" }, true},
		{"from a follower", Voter, func(*testing.T, *handPlayed) ServerID { return "b" }, false},
		{"to a non-voter", Nonvoter, func(*testing.T, *handPlayed) ServerID { return "a" }, false},
		{"from the leader of an earlier term", Voter, func(t *testing.T, h *handPlayed) ServerID {
			// b asks for a vote as the target of a transfer: d moves to
			// term 3, where a leads no more.
			req := &RequestVoteRequest{
				RPCHeader: RPCHeader{ProtocolVersion: ProtocolVersionMax, ID: []byte("b"), Addr: []byte("addr-b")},
				Term:      3, LastLogIndex: 1, LastLogTerm: 1, LeadershipTransfer: true,
			}
			var resp RequestVoteResponse
			if err := h.trans["b"].RequestVote("d", "addr-d", req, &resp); err != nil {
				t.Fatal(err)
			}
			if h.d.CurrentTerm() != 3 {
				t.Fatalf("d's term is %d after a vote request of term 3", h.d.CurrentTerm())
			}
			return "a"
		}, false},
		{"with a broken log", Voter, func(t *testing.T, h *handPlayed) ServerID {
			h.store.holdLastIndex()
			fail := h.store.holdStores()
			go h.send(1, 2, 2, 1)
			<-h.store.entered
			fail()
			<-h.store.entered // the read-back waits
			return "a"
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := startHandPlayed(t, func(c *Config) {
					// d never campaigns on its own while the test runs.
					c.HeartbeatTimeout, c.ElectionTimeout = time.Hour, time.Hour
				}, tc.suffrage)
				defer h.stop()
				if resp := h.send(1, 0, 0, 1); !resp.Success {
					t.Fatalf("d refused a's heartbeat: %+v", resp)
				}
				from := tc.setUp(t, h)
				term := h.d.CurrentTerm()
				err := h.timeoutNowFrom(from)
				synctest.Wait()
				campaigned := h.d.CurrentTerm() > term
				if campaigned != tc.campain {
					t.Fatalf("campaigned %v (term %d -> %d, TimeoutNow error %v), want %v",
						campaigned, term, h.d.CurrentTerm(), err, tc.campain)
				}
				if !tc.campain && err == nil {
					t.Fatal("a refused TimeoutNow was answered without an error")
				}
				if tc.campain {
					for _, v := range h.collectVotes() {
						if !v.req.LeadershipTransfer {
							t.Fatalf("the vote request of a transfer does not say so: %+v", v.req)
						}
						v.answer(false)
					}
				}
			})
		})
	}
}

// Issue 18, item 2: a server's own earlier leadership must not earn it
// pre-votes. A follower that still believes a leads refuses a's pre-vote
// request, as it refuses anyone's while it knows a leader.
func TestPreVote_KnownLeaderAskingIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startHandPlayed(t, nil, Voter)
		defer h.stop()
		// Past the hold after its start (election.go), so that only the
		// known leader can be the reason for a refusal.
		neverCampaign(t, h.d)
		time.Sleep(testConfig(t, "d").HeartbeatTimeout)
		if resp := h.send(1, 2, 5, 5); !resp.Success {
			t.Fatalf("d refused a's entries: %+v", resp)
		}
		req := &RequestPreVoteRequest{
			RPCHeader: RPCHeader{ProtocolVersion: ProtocolVersionMax, ID: []byte("a"), Addr: []byte("addr-a")},
			Term:      3, LastLogIndex: 5, LastLogTerm: 2,
		}
		var resp RequestPreVoteResponse
		if err := h.trans["a"].RequestPreVote("d", "addr-d", req, &resp); err != nil {
			t.Fatal(err)
		}
		if resp.Granted {
			t.Fatal("d granted its known leader a pre-vote: a's earlier leadership earned it")
		}
	})
}

// Issue 18, item 2: a leader that stepped down because its log writer
// stalled must not stand again while the writer is stuck, nor within the
// cool-down after it. The followers here never campaign, so before the fix
// the stalled leader won every election that followed.
func TestCampaign_StalledLeaderDoesNotStandAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, stores := controlledCluster(t, 3, func(conf *Config) {
			conf.LogWriteStallTimeout = 300 * time.Millisecond
		})
		defer c.shutdown()
		for _, n := range c.nodes[1:] {
			neverCampaign(t, n.raft)
		}
		leader := c.waitForLeader()
		if leader.id != "node0" {
			t.Fatalf("%s leads, want node0, the only one that campaigns", leader.id)
		}
		var mu sync.Mutex
		var steppedDown bool
		var stoodAgain []RaftState
		leader.raft.RegisterObserver(NewObserver(nil, false, func(o *Observation) bool {
			if s, ok := o.Data.(RaftState); ok {
				mu.Lock()
				defer mu.Unlock()
				switch {
				case s == Follower:
					steppedDown = true
				case steppedDown && (s == Candidate || s == Leader):
					stoodAgain = append(stoodAgain, s)
				}
			}
			return false
		}))
		applyAll(t, leader, "ok", 3)
		release := stores[leader.id].holdWrites()
		defer release()
		leader.raft.Apply([]byte("stalled"), 0)
		c.waitFor(5*time.Second, "the stalled leader to step down", func() bool { return leader.raft.State() != Leader })
		// The writer stays stuck for 40 election timeouts, then recovers;
		// the cool-down lasts ten more.
		time.Sleep(40 * leader.conf.ElectionTimeout)
		release()
		time.Sleep(5 * leader.conf.ElectionTimeout)
		mu.Lock()
		defer mu.Unlock()
		if len(stoodAgain) > 0 {
			t.Fatalf("the leader that stalled stood again: %v", stoodAgain)
		}
	})
}

// A write that begins to stall after the round started: d starts its
// election with entry 10's write only just handed to the writer, well
// within LogWriteStallTimeout; the write then stays stuck past it before
// the votes come in. The campaign rule is checked again when the round is
// won: before the fix, d became leader with a writer it knew was stuck
// (the fuzzy harness's stall-leader fault found it).
func TestCampaign_StallDuringTheRoundBlocksTheWin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const stall = 200 * time.Millisecond
		h := startHandPlayed(t, func(c *Config) {
			c.ElectionTimeout = time.Second
			c.LogWriteStallTimeout = stall
		}, Voter)
		defer h.stop()
		if resp := h.send(1, 2, 9, 9); !resp.Success {
			t.Fatalf("d refused entries 2-9: %+v", resp)
		}
		fail := h.store.holdStores()
		go h.send(9, 10, 10, 9)
		<-h.store.entered
		handed := time.Now()
		votes := h.collectVotes()
		if since := time.Since(handed); since >= stall {
			t.Fatalf("d started its round %v after the write was handed over, want less than %v", since, stall)
		}
		time.Sleep(time.Until(handed.Add(stall + 10*time.Millisecond)))
		for _, v := range votes {
			v.answer(true)
		}
		synctest.Wait()
		if led := h.led(); len(led) > 0 {
			t.Fatalf("d became leader (terms %v) while its write had been stuck for longer than LogWriteStallTimeout", led)
		}
		// Let the write fail so the AppendEntries it belongs to is answered
		// before Shutdown.
		fail()
		synctest.Wait()
	})
}
