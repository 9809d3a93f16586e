package raft

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// serveOnce answers the next RPC on trans's consumer with resp.
func serveOnce(trans *InmemTransport, resp interface{}, err error) {
	go func() {
		rpc := <-trans.Consumer()
		rpc.Respond(resp, err)
	}()
}

func TestInmemTransport_RoundTripsAndErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		addrA, a := NewInmemTransport("")
		addrB, b := NewInmemTransportWithTimeout("b", 100*time.Millisecond)
		if addrA == "" || addrB != "b" || a.LocalAddr() != addrA {
			t.Fatalf("addresses: %q %q %q", addrA, addrB, a.LocalAddr())
		}
		var resp AppendEntriesResponse
		err := a.AppendEntries("b", "b", &AppendEntriesRequest{Term: 1}, &resp)
		if err == nil || err.Error() != "failed to connect to peer: b" {
			t.Fatalf("unconnected peer: %v", err)
		}
		a.Connect("b", b)
		serveOnce(b, &AppendEntriesResponse{Term: 7, Success: true}, nil)
		if err := a.AppendEntries("b", "b", &AppendEntriesRequest{Term: 1, PrevLogEntry: 3}, &resp); err != nil || resp.Term != 7 || !resp.Success {
			t.Fatalf("AppendEntries: %+v, %v", resp, err)
		}
		serveOnce(b, nil, errors.New("remote failure"))
		var vote RequestVoteResponse
		if err := a.RequestVote("b", "b", &RequestVoteRequest{Term: 2}, &vote); err == nil || err.Error() != "remote failure" {
			t.Fatalf("remote error: %v", err)
		}
		// Nobody reads b's consumer: the answer never comes.
		b.Connect(addrA, a)
		if err := b.RequestVote("a", addrA, &RequestVoteRequest{Term: 2}, &vote); err == nil {
			t.Fatal("an unanswered RPC succeeded")
		} else if err.Error() != "send timed out" && err.Error() != "command timed out" {
			t.Fatalf("unanswered RPC: %v", err)
		}
		a.Disconnect("b")
		if err := a.TimeoutNow("b", "b", &TimeoutNowRequest{}, &TimeoutNowResponse{}); err == nil ||
			!strings.Contains(err.Error(), "failed to connect to peer") {
			t.Fatalf("after Disconnect: %v", err)
		}
		a.Connect("b", b)
		a.DisconnectAll()
		if _, err := a.AppendEntriesPipeline("b", "b"); err == nil {
			t.Fatal("a pipeline opened after DisconnectAll")
		}
		if got := a.DecodePeer(a.EncodePeer("id", "some-addr")); got != "some-addr" {
			t.Fatalf("EncodePeer/DecodePeer: %q", got)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Fatal("a second Close failed:", err)
		}
	})
}

func TestInmemTransport_HeartbeatFastPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a := NewInmemTransport("a")
		_, b := NewInmemTransport("b")
		a.Connect("b", b)
		var handled int
		b.SetHeartbeatHandler(func(rpc RPC) {
			handled++
			rpc.Respond(&AppendEntriesResponse{Success: true}, nil)
		})
		var resp AppendEntriesResponse
		hb := &AppendEntriesRequest{RPCHeader: RPCHeader{Addr: []byte("a")}, Term: 3}
		if err := a.AppendEntries("b", "b", hb, &resp); err != nil || !resp.Success || handled != 1 {
			t.Fatalf("heartbeat: %+v %v handled=%d", resp, err, handled)
		}
		// Anything that is not a bare heartbeat goes to the consumer.
		serveOnce(b, &AppendEntriesResponse{Term: 9}, nil)
		notHB := &AppendEntriesRequest{RPCHeader: RPCHeader{Addr: []byte("a")}, Term: 3, LeaderCommitIndex: 1}
		if err := a.AppendEntries("b", "b", notHB, &resp); err != nil || resp.Term != 9 || handled != 1 {
			t.Fatalf("non-heartbeat: %+v %v handled=%d", resp, err, handled)
		}
	})
}

func TestInmemTransport_PipelineKeepsOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a := NewInmemTransport("a")
		_, b := NewInmemTransport("b")
		a.Connect("b", b)
		go func() {
			for rpc := range b.Consumer() {
				req := rpc.Command.(*AppendEntriesRequest)
				rpc.Respond(&AppendEntriesResponse{Term: req.Term, Success: true}, nil)
			}
		}()
		p, err := a.AppendEntriesPipeline("b", "b")
		if err != nil {
			t.Fatal(err)
		}
		for i := uint64(1); i <= 20; i++ {
			if _, err := p.AppendEntries(&AppendEntriesRequest{Term: i}, new(AppendEntriesResponse)); err != nil {
				t.Fatal(err)
			}
		}
		for i := uint64(1); i <= 20; i++ {
			f := <-p.Consumer()
			if err := f.Error(); err != nil || f.Response().Term != i || f.Request().Term != i {
				t.Fatalf("answer %d: term %d, err %v", i, f.Response().Term, err)
			}
		}
		p.Close()
		if _, err := p.AppendEntries(&AppendEntriesRequest{}, new(AppendEntriesResponse)); !errors.Is(err, ErrPipelineShutdown) {
			t.Fatalf("after Close: %v", err)
		}
		a.Close()
		close(b.consumerCh)
	})
}

func TestConfiguration_EncodingMatchesTheReference(t *testing.T) {
	cfg := Configuration{Servers: []Server{{Voter, "n1", "127.0.0.1:1"}}}
	got := EncodeConfiguration(cfg)
	const want = "81a7536572766572739183a741646472657373ab3132372e302e302e313a31a24944a26e31a8537566667261676500"
	if hexString(got) != want {
		t.Fatalf("EncodeConfiguration = %s\nwant               %s", hexString(got), want)
	}
	back := DecodeConfiguration(got)
	if len(back.Servers) != 1 || back.Servers[0] != cfg.Servers[0] {
		t.Fatalf("round trip: %+v", back)
	}
	if _, err := decodeConfiguration([]byte{0x81, 0xa7, 'S'}); err == nil {
		t.Fatal("a truncated configuration decoded")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("DecodeConfiguration of garbage did not panic, as the reference's does")
		}
	}()
	DecodeConfiguration([]byte{0xc1})
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestBootstrapCluster_Rules(t *testing.T) {
	conf := DefaultConfig()
	conf.LocalID = "n1"
	_, trans := NewInmemTransport("a1")
	store := NewInmemStore()
	snaps := NewInmemSnapshotStore()
	good := Configuration{Servers: []Server{{Voter, "n1", "a1"}, {Nonvoter, "n2", "a2"}}}
	for _, tc := range []struct {
		cfg  Configuration
		want string
	}{
		{Configuration{}, "need at least one voter in configuration: {[]}"},
		{Configuration{Servers: []Server{{Voter, "", "a"}}}, "empty ID in configuration"},
		{Configuration{Servers: []Server{{Voter, "x", ""}}}, "empty address in configuration"},
		{Configuration{Servers: []Server{{Voter, "x", "a"}, {Voter, "x", "b"}}}, "found duplicate ID in configuration: x"},
		{Configuration{Servers: []Server{{Voter, "x", "a"}, {Voter, "y", "a"}}}, "found duplicate address in configuration: a"},
		{Configuration{Servers: []Server{{Nonvoter, "x", "a"}}}, "need at least one voter in configuration"},
	} {
		err := BootstrapCluster(conf, store, store, snaps, trans, tc.cfg)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("bootstrap %+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if has, err := HasExistingState(store, store, snaps); has || err != nil {
		t.Fatalf("HasExistingState before bootstrap: %v %v", has, err)
	}
	if err := BootstrapCluster(conf, store, store, snaps, trans, good); err != nil {
		t.Fatal(err)
	}
	if has, err := HasExistingState(store, store, snaps); !has || err != nil {
		t.Fatalf("HasExistingState after bootstrap: %v %v", has, err)
	}
	var first Log
	if err := store.GetLog(1, &first); err != nil || first.Type != LogConfiguration || first.Term != 1 {
		t.Fatalf("bootstrap entry: %+v %v", first, err)
	}
	if term, _ := store.GetUint64(keyCurrentTerm); term != 1 {
		t.Fatalf("bootstrap term %d", term)
	}
	if err := BootstrapCluster(conf, store, store, snaps, trans, good); !errors.Is(err, ErrCantBootstrap) {
		t.Fatalf("second bootstrap: %v", err)
	}
	got, err := GetConfiguration(conf, &testFSM{}, store, store, snaps, trans)
	if err != nil || len(got.Servers) != 2 || got.Servers[1].Suffrage != Nonvoter {
		t.Fatalf("GetConfiguration: %+v %v", got, err)
	}
}

func TestBootstrapCluster_LiveRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 1, clusterOpts{noBootstrap: true})
		defer c.shutdown()
		node := c.nodes[0]
		if err := node.raft.BootstrapCluster(Configuration{Servers: []Server{{Voter, "other", "x"}}}).Error(); !errors.Is(err, ErrNotVoter) {
			t.Fatalf("bootstrapping without this node as a voter: %v", err)
		}
		if err := node.raft.BootstrapCluster(Configuration{Servers: []Server{{Voter, node.id, node.addr}}}).Error(); err != nil {
			t.Fatal(err)
		}
		c.waitForLeader()
		if err := node.raft.BootstrapCluster(Configuration{Servers: []Server{{Voter, node.id, node.addr}}}).Error(); !errors.Is(err, ErrCantBootstrap) {
			t.Fatalf("bootstrapping a leader: %v", err)
		}
		applyAll(t, node, "x", 3)
	})
}

func TestShutdown_WaitsForASlowStoreCallButNotForAStuckOne(t *testing.T) {
	for _, stuck := range []bool{false, true} {
		t.Run(fmt.Sprintf("stuck %v", stuck), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, stores := controlledCluster(t, 3, nil)
				defer c.shutdown()
				leader := c.waitForLeader()
				applyAll(t, leader, "x", 1)
				store := stores[leader.id]
				release := store.holdWrites()
				f := leader.raft.Apply([]byte("in flight"), 0)
				<-store.entered
				// The log writer is inside StoreLogs. A slow disk answers
				// after 100ms; a stuck one only when the test says so.
				returned := make(chan struct{})
				go func() {
					if !stuck {
						time.Sleep(100 * time.Millisecond)
						release()
					}
					close(returned)
				}()
				start := time.Now()
				if err := leader.raft.Shutdown().Error(); err != nil {
					t.Fatal(err)
				}
				waited := time.Since(start)
				if stuck {
					if waited != storeShutdownGrace {
						t.Fatalf("Shutdown with a stuck store took %v of fake time, want the grace of %v", waited, storeShutdownGrace)
					}
				} else {
					select {
					case <-returned:
					default:
						t.Fatal("Shutdown returned while a store call was still running")
					}
					if waited < 100*time.Millisecond || waited >= storeShutdownGrace {
						t.Fatalf("Shutdown with a slow store took %v", waited)
					}
				}
				if err := f.Error(); err == nil {
					t.Fatal("an entry the leader had not stored when it shut down was reported applied")
				}
				leader.raft = nil
				// The stuck call returns before the bubble ends.
				release()
			})
		})
	}
}

func TestObserver_SeesLeaderAndVoteObservations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		ch := make(chan Observation, 256)
		for _, n := range c.nodes {
			n.raft.RegisterObserver(NewObserver(ch, false, nil))
		}
		leader := c.waitForLeader()
		// The followers learn of the leader from its first heartbeat,
		// which may still be on its way: read until every node has
		// reported it, or until a deadline far past any heartbeat.
		var votes, preVotes, leaders int
		deadline := time.After(10 * leader.conf.HeartbeatTimeout)
	read:
		for votes == 0 || preVotes == 0 || leaders < 3 {
			select {
			case o := <-ch:
				switch o := o.Data.(type) {
				case RequestVoteRequest:
					votes++
				case RequestPreVoteRequest:
					preVotes++
				case LeaderObservation:
					if o.LeaderAddr == leader.addr && o.LeaderID == leader.id && o.Leader == o.LeaderAddr {
						leaders++
					}
				}
			case <-deadline:
				break read
			}
		}
		if votes == 0 || preVotes == 0 || leaders < 3 {
			t.Fatalf("observed %d vote requests, %d pre-vote requests, %d leader changes to %s",
				votes, preVotes, leaders, leader.id)
		}
	})
}
