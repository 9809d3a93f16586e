package raft

import (
	"testing"
	"testing/synctest"
)

// isHeartbeat follows hashicorp/raft's rule exactly: a term and a leader
// address (Addr, else the deprecated Leader, which must be non-nil), and
// nothing else.
func TestIsHeartbeat(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  AppendEntriesRequest
		want bool
	}{
		{"Addr only", AppendEntriesRequest{Term: 1, RPCHeader: RPCHeader{Addr: []byte("a")}}, true},
		{"Leader only", AppendEntriesRequest{Term: 1, Leader: []byte("a")}, true},
		{"empty non-nil Leader", AppendEntriesRequest{Term: 1, Leader: []byte{}}, true},
		{"empty Entries slice", AppendEntriesRequest{Term: 1, Leader: []byte("a"), Entries: []*Log{}}, true},
		{"no leader", AppendEntriesRequest{Term: 1}, false},
		{"empty Addr, nil Leader", AppendEntriesRequest{Term: 1, RPCHeader: RPCHeader{Addr: []byte{}}}, false},
		{"term 0", AppendEntriesRequest{Leader: []byte("a")}, false},
		{"PrevLogEntry", AppendEntriesRequest{Term: 1, Leader: []byte("a"), PrevLogEntry: 1}, false},
		{"PrevLogTerm", AppendEntriesRequest{Term: 1, Leader: []byte("a"), PrevLogTerm: 1}, false},
		{"LeaderCommitIndex", AppendEntriesRequest{Term: 1, Leader: []byte("a"), LeaderCommitIndex: 1}, false},
		{"entries", AppendEntriesRequest{Term: 1, Leader: []byte("a"), Entries: []*Log{{}}}, false},
	} {
		if got := isHeartbeat(&tc.req); got != tc.want {
			t.Errorf("%s: isHeartbeat = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Heartbeats go to the heartbeat handler, on the connection's goroutine,
// even while the node's consumer is stuck on a slow request; everything
// else, and heartbeats when no handler is set, goes to the consumer. The
// detection is made on the decoded request, so an empty Leader sent as a
// zero-length string still counts, exactly as in hashicorp/raft.
func TestNetTransport_HeartbeatFastPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := newNetTestNode(t, network, "10.0.0.1:1", nil)
		client := newNetTestNode(t, network, "10.0.0.2:1", nil)

		fastCh := make(chan *AppendEntriesRequest, 10)
		server.SetHeartbeatHandler(func(rpc RPC) {
			fastCh <- rpc.Command.(*AppendEntriesRequest)
			netEchoAnswer(rpc)
		})

		// Block the consumer with a request it will not answer yet.
		stuck := make(chan RPC, 1)
		go func() {
			var resp RequestVoteResponse
			_ = client.RequestVote("s", server.addr, &RequestVoteRequest{Term: 1}, &resp)
		}()
		go func() { stuck <- <-server.Consumer() }()
		held := <-stuck

		for _, hb := range []*AppendEntriesRequest{
			netTestHeartbeat("n1", 5),
			{RPCHeader: netTestHeader("n1"), Term: 5},                    // Addr only
			{Term: 5, Leader: []byte{}},                                  // empty, non-nil Leader
			{RPCHeader: netTestHeader("n1"), Term: 5, Entries: []*Log{}}, // zero entries
		} {
			var resp AppendEntriesResponse
			if err := client.AppendEntries("s", server.addr, hb, &resp); err != nil {
				t.Fatalf("heartbeat %+v: %v", hb, err)
			}
			if !resp.Success || resp.Term != 5 {
				t.Fatalf("heartbeat answered %+v", resp)
			}
			if got := <-fastCh; got.Term != 5 {
				t.Fatalf("handler got %+v", got)
			}
		}
		netEchoAnswer(held)

		// Not heartbeats: these must reach the consumer.
		consumed := make(chan *AppendEntriesRequest, 10)
		server.serve(func(rpc RPC) {
			consumed <- rpc.Command.(*AppendEntriesRequest)
			netEchoAnswer(rpc)
		})
		for _, req := range []*AppendEntriesRequest{
			{Term: 5}, // no leader
			{RPCHeader: RPCHeader{Addr: []byte{}}, Term: 5}, // empty Addr, nil Leader
			{Term: 5, Leader: []byte("l"), LeaderCommitIndex: 1},
			{Term: 5, Leader: []byte("l"), PrevLogEntry: 1},
			{Term: 5, Leader: []byte("l"), PrevLogTerm: 1},
			{Term: 5, Leader: []byte("l"), Entries: []*Log{{Index: 1}}},
			{Leader: []byte("l")}, // term 0
		} {
			var resp AppendEntriesResponse
			if err := client.AppendEntries("s", server.addr, req, &resp); err != nil {
				t.Fatalf("AppendEntries %+v: %v", req, err)
			}
			<-consumed
		}

		// Without a handler, heartbeats go to the consumer too.
		server.SetHeartbeatHandler(nil)
		var resp AppendEntriesResponse
		if err := client.AppendEntries("s", server.addr, netTestHeartbeat("n1", 6), &resp); err != nil {
			t.Fatalf("heartbeat without handler: %v", err)
		}
		if got := <-consumed; got.Term != 6 {
			t.Fatalf("consumer got %+v, want the heartbeat", got)
		}
		if len(fastCh) != 0 {
			t.Fatal("handler called after being removed")
		}
		client.closeAndWait()
		server.closeAndWait()
	})
}
