package raft

import (
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Tests of leader election (Raft paper §5.2) and pre-vote (thesis §9.6).

func TestElection_OneLeaderPerTerm(t *testing.T) {
	for _, n := range []int{1, 3, 5} {
		t.Run(fmt.Sprintf("%d nodes", n), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newTestCluster(t, n, clusterOpts{})
				defer c.shutdown()
				var tl termLeaders
				for _, node := range c.nodes {
					tl.watch(node)
				}
				leader := c.waitForLeader()
				// Let several heartbeat intervals pass: the leader stays.
				time.Sleep(10 * leader.conf.HeartbeatTimeout)
				if got := c.waitForLeader(); got != leader {
					t.Fatalf("leadership moved from %s to %s in a healthy cluster", leader.id, got.id)
				}
				tl.check(t)
			})
		})
	}
}

func TestElection_KilledLeaderReplacedWithinThreeElectionTimeouts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		var tl termLeaders
		for _, node := range c.nodes {
			tl.watch(node)
		}
		old := c.waitForLeader()
		// Kill it once the followers' logs agree. A follower with a
		// shorter log cannot win, and the other refuses to vote while it
		// still believes in the old leader (stickiness, as the reference);
		// that case takes up to four timeouts and is not what this
		// measures.
		applyAll(t, old, "x", 1)
		c.waitForSameFSMs(1)
		oldTerm := old.raft.CurrentTerm()
		c.stop(old)
		start := time.Now()
		leader := c.waitForLeader()
		elapsed := time.Since(start)
		if leader == old {
			t.Fatal("the stopped leader is still leading")
		}
		if limit := 3 * old.conf.ElectionTimeout; elapsed > limit {
			t.Fatalf("new leader after %v of fake time, want within %v", elapsed, limit)
		}
		if term := leader.raft.CurrentTerm(); term <= oldTerm {
			t.Fatalf("new leader's term %d is not after the old one %d", term, oldTerm)
		}
		tl.check(t)
	})
}

func TestElection_PartitionedLeaderStepsDownAndMajorityElects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 5, clusterOpts{})
		defer c.shutdown()
		var tl termLeaders
		for _, node := range c.nodes {
			tl.watch(node)
		}
		old := c.waitForLeader()
		var minority, majority []*testNode
		minority = append(minority, old)
		for _, n := range c.nodes {
			if n == old {
				continue
			}
			if len(minority) < 2 {
				minority = append(minority, n)
			} else {
				majority = append(majority, n)
			}
		}
		// Check quorum: the old leader steps down between one and two
		// lease timeouts after its last contact with a quorum. It keeps
		// one follower, so that is its last contact with any of the
		// majority, which its failed heartbeats report.
		lease := old.conf.LeaderLeaseTimeout
		var mu sync.Mutex
		lastContact := make(map[ServerID]time.Time)
		var steppedDown time.Time
		old.raft.RegisterObserver(NewObserver(nil, false, func(o *Observation) bool {
			mu.Lock()
			defer mu.Unlock()
			switch d := o.Data.(type) {
			case FailedHeartbeatObservation:
				if _, ok := lastContact[d.PeerID]; !ok {
					lastContact[d.PeerID] = d.LastContact
				}
			case RaftState:
				if d != Leader && steppedDown.IsZero() {
					steppedDown = time.Now()
				}
			}
			return false
		}))
		c.partition(minority...)
		c.waitFor(10*lease, "the old leader to step down", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return !steppedDown.IsZero()
		})
		mu.Lock()
		var quorumContact time.Time
		for _, n := range majority {
			at, ok := lastContact[n.id]
			if !ok {
				mu.Unlock()
				t.Fatalf("no failed heartbeat to %s was observed before the step-down", n.id)
			}
			if at.After(quorumContact) {
				quorumContact = at
			}
		}
		after := steppedDown.Sub(quorumContact)
		mu.Unlock()
		if after < lease || after > 2*lease {
			t.Fatalf("stepped down %v after the last contact with a quorum, want between %v and %v", after, lease, 2*lease)
		}
		t.Logf("stepped down %v (%.2f lease timeouts) after the last contact with a quorum", after, float64(after)/float64(lease))
		leader := c.waitForLeader(majority...)
		if leader.raft.CurrentTerm() <= 0 {
			t.Fatal("new leader has no term")
		}
		for _, n := range minority {
			if n.raft.State() == Leader {
				t.Fatalf("%s in the minority leads", n.id)
			}
		}
		c.heal()
		final := c.waitForLeader()
		if final.raft.CurrentTerm() < leader.raft.CurrentTerm() {
			t.Fatal("term went backwards")
		}
		tl.check(t)
	})
}

func TestPreVote_IsolatedNodeKeepsItsTermAndDoesNotDisruptOnReturn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		var away *testNode
		for _, n := range c.nodes {
			if n != leader {
				away = n
				break
			}
		}
		term := leader.raft.CurrentTerm()
		c.partition(away)
		// Many election timeouts pass while it is cut off.
		time.Sleep(40 * away.conf.ElectionTimeout)
		if got := away.raft.CurrentTerm(); got != term {
			t.Fatalf("isolated node's term moved from %d to %d while away", term, got)
		}
		c.heal()
		c.waitFor(time.Second, "the node to rejoin", func() bool {
			addr, _ := away.raft.LeaderWithID()
			return addr == leader.addr
		})
		if leader.raft.State() != Leader || leader.raft.CurrentTerm() != term {
			t.Fatalf("the leader was disrupted: state %v term %d, want Leader in term %d",
				leader.raft.State(), leader.raft.CurrentTerm(), term)
		}
	})
}

func TestElection_NonMemberCannotRaiseAMembersTerm(t *testing.T) {
	for _, preVote := range []bool{true, false} {
		t.Run(fmt.Sprintf("outsider pre-vote %v", preVote), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newTestCluster(t, 3, clusterOpts{})
				defer c.shutdown()
				leader := c.waitForLeader()
				term := leader.raft.CurrentTerm()

				// An outsider that believes it belongs to the cluster (as a
				// removed server would) campaigns over and over.
				out := &testNode{id: "outsider", addr: "addr-outsider", store: NewInmemStore(), snaps: NewInmemSnapshotStore()}
				out.logs = out.store
				out.conf = testConfig(t, out.id)
				out.conf.PreVoteDisabled = !preVote
				cfg := Configuration{Servers: []Server{{Voter, out.id, out.addr}}}
				for _, n := range c.nodes {
					cfg.Servers = append(cfg.Servers, Server{Voter, n.id, n.addr})
				}
				if err := BootstrapCluster(out.conf, out.store, out.store, out.snaps, c.newTransport(out), cfg); err != nil {
					t.Fatal(err)
				}
				c.nodes = append(c.nodes, out)
				c.start(out)
				outTerm := out.raft.CurrentTerm()
				time.Sleep(40 * out.conf.ElectionTimeout)

				if got := out.raft.CurrentTerm(); preVote && got != outTerm {
					t.Errorf("with pre-vote the outsider's own term moved from %d to %d", outTerm, got)
				}
				if got := out.raft.CurrentTerm(); !preVote && got <= outTerm {
					t.Errorf("without pre-vote the outsider should have campaigned, its term is still %d", got)
				}
				for _, n := range c.nodes[:3] {
					if got := n.raft.CurrentTerm(); got != term {
						t.Errorf("member %s's term moved from %d to %d", n.id, term, got)
					}
				}
				if leader.raft.State() != Leader {
					t.Errorf("the leader was deposed")
				}
			})
		})
	}
}

func TestElection_TermAndVoteSurviveRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := NewInmemStore()
		snaps := NewInmemSnapshotStore()
		conf := testConfig(t, "voter")
		cfg := Configuration{Servers: []Server{
			{Voter, "voter", "addr-voter"}, {Voter, "a", "addr-a"}, {Voter, "b", "addr-b"},
		}}
		_, trans := NewInmemTransport("addr-voter")
		if err := BootstrapCluster(conf, store, store, snaps, trans, cfg); err != nil {
			t.Fatal(err)
		}
		start := func() (*Raft, *InmemTransport) {
			_, trans := NewInmemTransport("addr-voter")
			r, err := NewRaft(conf, &testFSM{}, store, store, snaps, trans)
			if err != nil {
				t.Fatal(err)
			}
			neverCampaign(t, r)
			return r, trans
		}
		ask := func(trans *InmemTransport, from ServerID, term uint64) *RequestVoteResponse {
			_, caller := NewInmemTransport(ServerAddress("addr-" + from))
			caller.Connect("addr-voter", trans)
			req := &RequestVoteRequest{
				RPCHeader: RPCHeader{ProtocolVersion: 3, ID: []byte(from), Addr: []byte("addr-" + from)},
				Term:      term, LastLogIndex: 1, LastLogTerm: 1,
			}
			var resp RequestVoteResponse
			if err := caller.RequestVote("voter", "addr-voter", req, &resp); err != nil {
				t.Fatal(err)
			}
			return &resp
		}

		r, trans := start()
		// Past the hold after its start (election.go), in which it
		// refuses every vote.
		time.Sleep(conf.HeartbeatTimeout)
		if resp := ask(trans, "a", 5); !resp.Granted {
			t.Fatalf("first vote in term 5 refused: %+v", resp)
		}
		if err := r.Shutdown().Error(); err != nil {
			t.Fatal(err)
		}
		if term, _ := store.GetUint64(keyCurrentTerm); term != 5 {
			t.Fatalf("stored term %d, want 5", term)
		}

		r, trans = start()
		defer r.Shutdown()
		time.Sleep(conf.HeartbeatTimeout)
		if got := r.CurrentTerm(); got != 5 {
			t.Fatalf("term after restart %d, want 5", got)
		}
		if resp := ask(trans, "b", 5); resp.Granted {
			t.Fatal("voted twice in term 5 after a restart")
		}
		if resp := ask(trans, "a", 5); !resp.Granted {
			t.Fatal("a repeated request from the candidate already voted for was refused")
		}
	})
}

// noPreVoteTransport answers pre-vote requests to some peers the way a
// server without pre-vote does.
type noPreVoteTransport struct {
	*InmemTransport
	old map[ServerAddress]bool
}

func (n *noPreVoteTransport) RequestPreVote(id ServerID, target ServerAddress, args *RequestPreVoteRequest, resp *RequestPreVoteResponse) error {
	if n.old[target] {
		return fmt.Errorf("%s", errUnexpectedCommand)
	}
	return n.InmemTransport.RequestPreVote(id, target, args, resp)
}

func TestPreVote_MixedWithPreVoteDisabledNodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 5, clusterOpts{conf: func(conf *Config) {
			conf.PreVoteDisabled = conf.LocalID == "node3" || conf.LocalID == "node4"
		}})
		defer c.shutdown()
		var tl termLeaders
		for _, n := range c.nodes {
			tl.watch(n)
		}
		for round := 0; round < 3; round++ {
			leader := c.waitForLeader()
			c.stop(leader)
			c.waitForLeader()
			c.start(leader)
			tl.watch(leader)
		}
		leader := c.waitForLeader()
		// A pre-vote node cut off and returning does not disrupt.
		var away *testNode
		for _, n := range c.nodes {
			if n != leader && !n.conf.PreVoteDisabled {
				away = n
				break
			}
		}
		term := leader.raft.CurrentTerm()
		c.partition(away)
		time.Sleep(20 * away.conf.ElectionTimeout)
		c.heal()
		c.waitFor(time.Second, "the node to rejoin", func() bool {
			addr, _ := away.raft.LeaderWithID()
			return addr == leader.addr
		})
		if leader.raft.State() != Leader || leader.raft.CurrentTerm() != term {
			t.Fatalf("the returning pre-vote node disrupted the leader")
		}
		tl.check(t)
	})
}

func TestPreVote_UnexpectedCommandCountsAsGranted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{noBootstrap: true})
		defer c.shutdown()
		// node0 campaigns against two peers that "predate" pre-vote; were
		// their answers counted as refusals, it could never win.
		node0 := c.nodes[0]
		c.stop(node0)
		_, inner := NewInmemTransport(node0.addr)
		wrapped := &noPreVoteTransport{InmemTransport: inner, old: map[ServerAddress]bool{"addr-node1": true, "addr-node2": true}}
		cfg := Configuration{}
		for _, n := range c.nodes {
			cfg.Servers = append(cfg.Servers, Server{Voter, n.id, n.addr})
		}
		for _, n := range c.nodes {
			if err := BootstrapCluster(n.conf, n.logs, n.store, n.snaps, inner, cfg); err != nil {
				t.Fatal(err)
			}
		}
		// The others never campaign.
		for _, n := range c.nodes[1:] {
			c.stop(n)
			c.start(n)
			neverCampaign(t, n.raft)
		}
		node0.trans = inner
		node0.fsm = &testFSM{changed: c.poke}
		r, err := NewRaft(node0.conf, node0.fsm, node0.logs, node0.store, node0.snaps, wrapped)
		if err != nil {
			t.Fatal(err)
		}
		node0.raft = r
		c.reconnect()
		c.waitFor(5*time.Second, "node0 to win", func() bool { return r.State() == Leader })
	})
}
