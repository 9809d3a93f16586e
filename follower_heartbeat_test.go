package raft

import (
	"testing"
	"testing/synctest"
	"time"
)

// Heartbeats answered off the run loop (follower_heartbeat.go). The tests
// play the cluster around node d (handPlayed, campaign_test.go): a leads
// term 2; b asks for votes.

// heartbeatFrom returns a plain heartbeat of term from id.
func heartbeatFrom(id ServerID, term uint64) *AppendEntriesRequest {
	return &AppendEntriesRequest{
		RPCHeader: RPCHeader{ProtocolVersion: ProtocolVersionMax, ID: []byte(id), Addr: []byte("addr-" + id)},
		Term:      term,
	}
}

// offLoop offers req to d's off-loop answer, as the transport's goroutine
// does, and returns whether it answered and what.
func offLoop(t *testing.T, d *Raft, req *AppendEntriesRequest) (bool, *AppendEntriesResponse) {
	t.Helper()
	respCh := make(chan RPCResponse, 1)
	if !d.answerHeartbeat(RPC{Command: req, RespChan: respCh}, req) {
		return false, nil
	}
	resp := <-respCh
	if resp.Error != nil {
		t.Fatalf("heartbeat answered off the loop with an error: %v", resp.Error)
	}
	return true, resp.Response.(*AppendEntriesResponse)
}

// heartbeat sends req to d through the transport, which takes its fast
// path.
func (h *handPlayed) heartbeat(from ServerID, req *AppendEntriesRequest) *AppendEntriesResponse {
	h.t.Helper()
	var resp AppendEntriesResponse
	if err := h.trans[from].AppendEntries("d", "addr-d", req, &resp); err != nil {
		h.t.Fatalf("heartbeat: %v", err)
	}
	return &resp
}

// voteFrom asks d for its vote in term on behalf of b.
func (h *handPlayed) voteFrom(term uint64, transfer bool) *RequestVoteResponse {
	h.t.Helper()
	req := &RequestVoteRequest{
		RPCHeader: RPCHeader{ProtocolVersion: ProtocolVersionMax, ID: []byte("b"), Addr: []byte("addr-b")},
		Term:      term, LastLogIndex: 1, LastLogTerm: 1, LeadershipTransfer: transfer,
	}
	var resp RequestVoteResponse
	if err := h.trans["b"].RequestVote("d", "addr-d", req, &resp); err != nil {
		h.t.Fatal(err)
	}
	return &resp
}

// A follower whose leader's heartbeats are all answered off the run loop
// keeps following it, and refuses other candidates, for as long as they
// come; once they stop, it waits a heartbeat timeout from the last one,
// and campaigns within two.
func TestHeartbeatOffLoop_ResetsTheElectionTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startHandPlayed(t, nil, Voter)
		defer h.stop()
		timeout := h.d.config().HeartbeatTimeout
		if resp := h.heartbeat("a", heartbeatFrom("a", 2)); !resp.Success || resp.Term != 2 {
			t.Fatalf("d refused a's first heartbeat: %+v", resp)
		}
		synctest.Wait()
		// Many election timeouts' worth of heartbeats, none through the
		// run loop.
		for range 40 {
			time.Sleep(timeout / 2)
			answered, resp := offLoop(t, h.d, heartbeatFrom("a", 2))
			if !answered {
				t.Fatalf("a heartbeat of the leader d follows went to the run loop (state %v, term %d)",
					h.d.State(), h.d.CurrentTerm())
			}
			if !resp.Success || resp.Term != 2 {
				t.Fatalf("off-loop answer %+v, want success in term 2", resp)
			}
		}
		last := time.Now()
		if got := h.d.LastContact(); !got.Equal(last) {
			t.Fatalf("LastContact %v, want the last heartbeat's %v", got, last)
		}
		if h.d.State() != Follower || h.d.CurrentTerm() != 2 {
			t.Fatalf("d is a %v in term %d while a's heartbeats came", h.d.State(), h.d.CurrentTerm())
		}
		// Just short of a timeout after the last heartbeat, d still follows
		// a: it refuses b's vote request, and the off-loop path still
		// answers.
		time.Sleep(timeout - time.Millisecond)
		synctest.Wait()
		if resp := h.voteFrom(3, false); resp.Granted {
			t.Fatal("d voted for b within a heartbeat timeout of a heartbeat it acknowledged")
		}
		if l, _ := h.d.LeaderWithID(); l != "addr-a" || h.d.CurrentTerm() != 2 {
			t.Fatalf("d forgot a (leader %q, term %d) within a heartbeat timeout of its heartbeat", l, h.d.CurrentTerm())
		}
		// Silence: d campaigns within two timeouts of the last heartbeat.
		time.Sleep(timeout + 2*time.Millisecond)
		synctest.Wait()
		if h.d.CurrentTerm() <= 2 {
			t.Fatalf("d still in term %d (%v) two heartbeat timeouts after a went silent", h.d.CurrentTerm(), h.d.State())
		}
		for _, v := range h.collectVotes() {
			v.answer(false)
		}
	})
}

// Only the simple case is answered off the run loop; every other heartbeat
// goes to it, which answers as it always did.
func TestHeartbeatOffLoop_OnlyTheKnownLeadersOfTheCurrentTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startHandPlayed(t, func(c *Config) {
			c.HeartbeatTimeout, c.ElectionTimeout = time.Hour, time.Hour
		}, Voter)
		defer h.stop()
		// No leader known yet.
		if answered, _ := offLoop(t, h.d, heartbeatFrom("a", 2)); answered {
			t.Fatal("a heartbeat was answered off the loop before d knew any leader")
		}
		if resp := h.heartbeat("a", heartbeatFrom("a", 2)); !resp.Success || resp.Term != 2 {
			t.Fatalf("d refused a's heartbeat: %+v", resp)
		}
		synctest.Wait()
		if answered, _ := offLoop(t, h.d, heartbeatFrom("a", 2)); !answered {
			t.Fatal("the known leader's heartbeat went to the run loop")
		}
		// Not a plain heartbeat.
		notPlain := heartbeatFrom("a", 2)
		notPlain.LeaderCommitIndex = 1
		if answered, _ := offLoop(t, h.d, notPlain); answered {
			t.Fatal("an AppendEntries that commits was answered off the loop")
		}
		// Another sender in the same term.
		if answered, _ := offLoop(t, h.d, heartbeatFrom("c", 2)); answered {
			t.Fatal("a heartbeat from a server d does not follow was answered off the loop")
		}
		// An older term, and a newer one.
		if answered, _ := offLoop(t, h.d, heartbeatFrom("a", 1)); answered {
			t.Fatal("a heartbeat of an older term was answered off the loop")
		}
		if answered, _ := offLoop(t, h.d, heartbeatFrom("a", 3)); answered {
			t.Fatal("a heartbeat of a newer term was answered off the loop")
		}
		// The run loop takes the newer term, after which a's heartbeats of
		// term 3 are the simple case again.
		if resp := h.heartbeat("a", heartbeatFrom("a", 3)); !resp.Success || resp.Term != 3 {
			t.Fatalf("d refused a's heartbeat of term 3: %+v", resp)
		}
		synctest.Wait()
		if answered, resp := offLoop(t, h.d, heartbeatFrom("a", 3)); !answered || !resp.Success || resp.Term != 3 {
			t.Fatalf("a's heartbeat of term 3: answered off the loop %v, %+v", answered, resp)
		}
		if resp := h.heartbeat("a", heartbeatFrom("a", 2)); resp.Success || resp.Term != 3 {
			t.Fatalf("a heartbeat of term 2 in term 3 answered %+v", resp)
		}
		// A candidate: a asks d to take over.
		if err := h.timeoutNowFrom("a"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if h.d.State() != Candidate {
			t.Fatalf("d is a %v after TimeoutNow", h.d.State())
		}
		term := h.d.CurrentTerm()
		for _, req := range []*AppendEntriesRequest{heartbeatFrom("a", 3), heartbeatFrom("a", term)} {
			if answered, _ := offLoop(t, h.d, req); answered {
				t.Fatalf("a candidate answered a heartbeat of term %d off the loop", req.Term)
			}
		}
		for _, v := range h.collectVotes() {
			v.answer(false)
		}
		// Shut down: nothing more is answered here.
		if resp := h.heartbeat("b", heartbeatFrom("b", term)); !resp.Success {
			t.Fatalf("d refused b's heartbeat of term %d: %+v", term, resp)
		}
		synctest.Wait()
		if answered, _ := offLoop(t, h.d, heartbeatFrom("b", term)); !answered {
			t.Fatal("the new leader's heartbeat went to the run loop")
		}
		h.d.Shutdown().Error()
		if answered, _ := offLoop(t, h.d, heartbeatFrom("b", term)); answered {
			t.Fatal("a heartbeat was answered off the loop after Shutdown")
		}
	})
}

// A follower that has moved to a newer term, by a vote or by forgetting a
// silent leader, never acknowledges a heartbeat of its old leader, even one
// racing the change.
func TestHeartbeatOffLoop_NoOldTermSuccessAfterAVote(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startHandPlayed(t, func(c *Config) {
			c.HeartbeatTimeout, c.ElectionTimeout = time.Hour, time.Hour
		}, Voter)
		defer h.stop()
		if resp := h.heartbeat("a", heartbeatFrom("a", 2)); !resp.Success {
			t.Fatalf("d refused a's heartbeat: %+v", resp)
		}
		synctest.Wait()
		// a keeps sending heartbeats while b, the target of a transfer,
		// asks for d's vote in term 3. Every answer of term 2 must come
		// before the vote: once d has answered it, none may say success.
		voted := make(chan struct{})
		stop := make(chan struct{})
		afterVote := make(chan *AppendEntriesResponse, 1)
		send := func() *AppendEntriesResponse {
			var resp AppendEntriesResponse
			if err := h.trans["a"].AppendEntries("d", "addr-d", heartbeatFrom("a", 2), &resp); err != nil {
				t.Errorf("heartbeat: %v", err)
			}
			return &resp
		}
		go func() {
			defer close(afterVote)
			for {
				select {
				case <-stop:
					return
				case <-voted:
					afterVote <- send()
					return
				default:
				}
				send()
			}
		}()
		resp := h.voteFrom(3, true)
		close(voted)
		if !resp.Granted || resp.Term != 3 {
			close(stop)
			t.Fatalf("d refused a transfer's vote: %+v", resp)
		}
		for r := range afterVote {
			if r.Success || r.Term != 3 {
				t.Fatalf("a heartbeat of term 2 sent after d voted in term 3 was answered %+v", r)
			}
		}
		if answered, _ := offLoop(t, h.d, heartbeatFrom("a", 2)); answered {
			t.Fatal("a heartbeat of the old term was answered off the loop after the vote")
		}
	})
}

// A follower that forgets a silent leader stops answering its heartbeats
// off the run loop in the same step: the run loop serves the next one.
func TestHeartbeatOffLoop_ClosedWhenTheLeaderIsForgotten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A non-voter: it forgets its leader as a voter does, and does not
		// campaign after.
		h := startHandPlayed(t, nil, Nonvoter)
		defer h.stop()
		timeout := h.d.config().HeartbeatTimeout
		if resp := h.heartbeat("a", heartbeatFrom("a", 2)); !resp.Success {
			t.Fatalf("d refused a's heartbeat: %+v", resp)
		}
		synctest.Wait()
		time.Sleep(2*timeout + time.Millisecond)
		synctest.Wait()
		if l, _ := h.d.LeaderWithID(); l != "" {
			t.Fatalf("d still follows %q two heartbeat timeouts after a went silent", l)
		}
		if answered, _ := offLoop(t, h.d, heartbeatFrom("a", 2)); answered {
			t.Fatal("a heartbeat of a forgotten leader was answered off the loop")
		}
	})
}
