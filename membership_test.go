package raft

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// Membership changes (Raft thesis §4) and leadership transfer (§3.10).

func TestMembership_ChangeSemantics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		var follower *testNode
		for _, n := range c.nodes {
			if n != leader {
				follower = n
				break
			}
		}
		if err := follower.raft.AddVoter("x", "addr-x", 0, 0).Error(); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("AddVoter on a follower: %v", err)
		}
		// Wait for the leader's no-op to commit so changes are accepted.
		applyAll(t, leader, "x", 1)

		cfg := leader.raft.GetConfiguration().Configuration()
		latest := leader.raft.AppliedIndex()
		// A stale prevIndex is refused with the reference's message.
		err := leader.raft.AddNonvoter("nv", "addr-nv", latest+100, 0).Error()
		if err == nil || !strings.Contains(err.Error(), "configuration changed since") {
			t.Fatalf("stale prevIndex: %v", err)
		}
		f := leader.raft.AddNonvoter("nv", "addr-nv", 0, 0)
		if err := f.Error(); err != nil {
			t.Fatal(err)
		}
		if f.Index() == 0 {
			t.Fatal("the change's future has no index")
		}
		got := leader.raft.GetConfiguration().Configuration()
		if len(got.Servers) != len(cfg.Servers)+1 {
			t.Fatalf("configuration after AddNonvoter: %+v", got)
		}
		if s, _ := got.find("nv"); s.Suffrage != Nonvoter {
			t.Fatalf("nv is %v", s.Suffrage)
		}
		// AddNonvoter never demotes a voter; it updates its address.
		if err := leader.raft.AddNonvoter(follower.id, follower.addr, f.Index(), 0).Error(); err != nil {
			t.Fatal(err)
		}
		if s, _ := leader.raft.GetConfiguration().Configuration().find(follower.id); s.Suffrage != Voter {
			t.Fatalf("AddNonvoter demoted a voter to %v", s.Suffrage)
		}
		// DemoteVoter keeps the server as a non-voter; RemoveServer removes.
		if err := leader.raft.DemoteVoter(follower.id, 0, 0).Error(); err != nil {
			t.Fatal(err)
		}
		if s, _ := leader.raft.GetConfiguration().Configuration().find(follower.id); s.Suffrage != Nonvoter {
			t.Fatalf("after DemoteVoter %s is %v", follower.id, s.Suffrage)
		}
		if err := leader.raft.RemoveServer("nv", 0, 0).Error(); err != nil {
			t.Fatal(err)
		}
		if _, ok := leader.raft.GetConfiguration().Configuration().find("nv"); ok {
			t.Fatal("nv is still a member")
		}
		// The cluster still works with one voter demoted: 2 voters remain.
		applyAll(t, leader, "y", 5)
		// Protocol gates.
		if err := leader.raft.AddPeer("p").Error(); !errors.Is(err, ErrUnsupportedProtocol) {
			t.Fatalf("AddPeer under protocol 3: %v", err)
		}
		if err := leader.raft.RemovePeer("p").Error(); !errors.Is(err, ErrUnsupportedProtocol) {
			t.Fatalf("RemovePeer under protocol 3: %v", err)
		}
	})
}

func TestMembership_OneChangeAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 1)
		// Cut the leader off so a change cannot commit; the next waits.
		for _, n := range c.nodes {
			if n != leader {
				c.cut[string(leader.id)+">"+string(n.id)] = true
			}
		}
		c.reconnect()
		first := leader.raft.AddNonvoter("a", "addr-a", 0, 0)
		second := leader.raft.AddNonvoter("b", "addr-b", 0, 10*time.Millisecond)
		if err := second.Error(); !errors.Is(err, ErrEnqueueTimeout) {
			t.Fatalf("a second change while one is in flight: %v, want ErrEnqueueTimeout", err)
		}
		if err := first.Error(); !errors.Is(err, ErrLeadershipLost) {
			t.Fatalf("the uncommittable change: %v, want ErrLeadershipLost", err)
		}
	})
}

// clients applies unique commands from several goroutines to whichever
// node leads, until stop closes, and records the acknowledged ones.
type clients struct {
	mu    sync.Mutex
	acked map[string]bool
	wg    sync.WaitGroup
	stop  chan struct{}
}

func startClients(c *testCluster, n int) *clients {
	cl := &clients{acked: make(map[string]bool), stop: make(chan struct{})}
	for i := 0; i < n; i++ {
		cl.wg.Add(1)
		go func() {
			defer cl.wg.Done()
			for seq := 0; ; seq++ {
				select {
				case <-cl.stop:
					return
				default:
				}
				leader := c.leaderRaft()
				if leader == nil {
					// Think time while no leader is known.
					time.Sleep(5 * time.Millisecond)
					continue
				}
				cmd := fmt.Sprintf("client%d-%d", i, seq)
				if leader.Apply([]byte(cmd), 50*time.Millisecond).Error() == nil {
					cl.mu.Lock()
					cl.acked[cmd] = true
					cl.mu.Unlock()
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	return cl
}

// finish stops the clients and checks every acknowledged command is in
// fsm exactly once.
func (cl *clients) finish(t *testing.T, fsm *testFSM) {
	t.Helper()
	close(cl.stop)
	cl.wg.Wait()
	seen := make(map[string]int)
	for _, cmd := range fsm.commands() {
		seen[string(cmd)]++
	}
	for cmd := range cl.acked {
		if seen[cmd] != 1 {
			t.Errorf("acknowledged command %s is applied %d times", cmd, seen[cmd])
		}
	}
	t.Logf("%d acknowledged commands checked", len(cl.acked))
}

func TestMembership_ReplaceEveryMemberUnderLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{conf: snapshotConf(200, 50)})
		defer c.shutdown()
		c.waitForLeader()
		cl := startClients(c, 4)
		originals := append([]*testNode(nil), c.nodes...)
		for i, old := range originals {
			repl := c.newNode(ServerID(fmt.Sprintf("new%d", i)))
			c.start(repl)
			changeOnLeader(t, c, func(l *Raft) IndexFuture { return l.AddVoter(repl.id, repl.addr, 0, time.Second) })
			changeOnLeader(t, c, func(l *Raft) IndexFuture { return l.RemoveServer(old.id, 0, time.Second) })
			// A removed leader shuts itself down (ShutdownOnRemove).
			c.waitFor(5*time.Second, "the removed server to leave", func() bool {
				return old.raft == nil || old.raft.State() != Leader
			})
			c.stop(old)
			time.Sleep(100 * time.Millisecond)
		}
		leader := c.waitForLeader()
		cl.finish(t, leader.fsm)
		if err := leader.raft.Barrier(0).Error(); err != nil {
			t.Fatal(err)
		}
		c.waitForSameFSMs(leader.fsm.len())
		cfg := leader.raft.GetConfiguration().Configuration()
		for _, s := range cfg.Servers {
			if !strings.HasPrefix(string(s.ID), "new") {
				t.Fatalf("configuration still holds %s: %+v", s.ID, cfg)
			}
		}
	})
}

// changeOnLeader makes a membership change on the current leader,
// retrying while leadership moves.
func changeOnLeader(t *testing.T, c *testCluster, change func(*Raft) IndexFuture) {
	t.Helper()
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		err = change(c.anyLeader()).Error()
		if err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("membership change: %v", err)
}

// A server removed while it was cut off cannot learn of its removal once
// it returns: with pre-vote off its term climbed while it was away, so it
// refuses the leader's AppendEntries. It may go on campaigning, but the
// members refuse its requests before they look at its term, and the
// leader ignores the terms its retiring replicator hears from it: the
// leader and its term stay, and no write fails. A server that learned its
// removal committed (the leader's retiring replicator tells it) stops
// campaigning.
func TestMembership_RemovedNodeLeftRunningNeverDisrupts(t *testing.T) {
	for _, learned := range []bool{true, false} {
		for _, preVote := range []bool{true, false} {
			t.Run(fmt.Sprintf("learned %v pre-vote %v", learned, preVote), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					testRemovedNodeNeverDisrupts(t, learned, preVote)
				})
			})
		}
	}
}

func testRemovedNodeNeverDisrupts(t *testing.T, learned, preVote bool) {
	c := newTestCluster(t, 4, clusterOpts{conf: func(c *Config) {
		c.ShutdownOnRemove = false
		c.PreVoteDisabled = !preVote && c.LocalID == "node3"
	}})
	defer c.shutdown()
	// node3 is the one removed; it must not lead.
	var leader *testNode
	for {
		leader = c.waitForLeader()
		if leader.id != "node3" {
			break
		}
		if err := leader.raft.LeadershipTransfer().Error(); err != nil {
			t.Fatalf("moving leadership off node3: %v", err)
		}
	}
	removed := c.node("node3")
	applyAll(t, leader, "x", 1)
	term := leader.raft.CurrentTerm()
	removedTerm := removed.raft.CurrentTerm()
	// campaigning counts the samples that find the removed server a
	// candidate (with pre-vote on, its term shows nothing).
	var wrongTerm, failed, campaigning atomic.Int64
	writes := runWrites(c, leader, &failed)

	if !learned {
		c.partition(removed)
		// Its election timer fires again and again while it is away.
		time.Sleep(40 * removed.conf.ElectionTimeout)
		if got := removed.raft.CurrentTerm(); !preVote && got < removedTerm+10 {
			t.Fatalf("without pre-vote the cut-off node's term should have climbed, it went from %d to %d", removedTerm, got)
		}
	}
	removal := leader.raft.RemoveServer(removed.id, 0, 0)
	if err := removal.Error(); err != nil {
		t.Fatal(err)
	}
	if learned {
		c.waitFor(time.Second, "the removed node to learn that its removal committed", func() bool {
			return !inConfiguration(removed.raft.pub.latestConfiguration(), removed.id) &&
				removed.raft.CommitIndex() >= removal.Index()
		})
		removedTerm = removed.raft.CurrentTerm()
		c.partition(removed)
		for i := 0; i < 40; i++ {
			time.Sleep(removed.conf.ElectionTimeout)
			if removed.raft.State() == Candidate {
				campaigning.Add(1)
			}
		}
	} else {
		time.Sleep(10 * removed.conf.ElectionTimeout)
	}
	c.heal()
	// The removed node keeps running beside the cluster.
	for i := 0; i < 40; i++ {
		time.Sleep(removed.conf.ElectionTimeout)
		for _, n := range c.running() {
			if n != removed && n.raft.CurrentTerm() != term {
				wrongTerm.Add(1)
			}
		}
		if removed.raft.State() == Candidate {
			campaigning.Add(1)
		}
	}
	n := writes.finish()
	if leader.raft.State() != Leader || leader.raft.CurrentTerm() != term {
		t.Fatalf("the removed server disrupted the leader: %v in term %d, want Leader in %d",
			leader.raft.State(), leader.raft.CurrentTerm(), term)
	}
	if w := wrongTerm.Load(); w > 0 {
		t.Fatalf("a member's term moved (%d samples)\n%s", w, c.describe())
	}
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d writes failed", f, n)
	}
	if learned {
		if got := removed.raft.CurrentTerm(); got != removedTerm {
			t.Fatalf("a removed server that knows it was removed campaigned: its term went from %d to %d", removedTerm, got)
		}
		if n := campaigning.Load(); n > 0 {
			t.Fatalf("a removed server that knows it was removed campaigned: a candidate in %d of 80 samples", n)
		}
	}
}

// A server whose latest configuration removes it, while that change is not
// yet committed, may be the only one that can be elected: here the leader
// removes itself, the change reaches one other server, and that server
// stops. The two that remain have never seen the change; under their
// configuration (all four) they are two of four, and under the new one
// (three, without the old leader) they are two of three, a quorum, but
// neither can win without the old leader's vote, which it refuses: its log
// is longer. The old leader must campaign (in the new configuration, where
// the two grant it their votes), lead long enough to commit its own
// removal, and step down; one of the two then leads. A server that refused
// to campaign whenever its latest configuration left it out would leave
// the cluster without a leader for good.
func TestMembership_ServerRemovedByAnUncommittedChangeStillCampaigns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 4, clusterOpts{conf: func(c *Config) { c.ShutdownOnRemove = false }})
		defer c.shutdown()
		old := c.waitForLeader()
		applyAll(t, old, "x", 3)
		var others []*testNode
		for _, n := range c.nodes {
			if n != old {
				others = append(others, n)
			}
		}
		holder, left := others[0], others[1:]

		// Only holder hears the change that removes the leader.
		c.partition(old, holder)
		removal := old.raft.RemoveServer(old.id, 0, 0)
		c.waitFor(time.Second, "the removal to reach one server", func() bool {
			return !inConfiguration(holder.raft.pub.latestConfiguration(), old.id)
		})
		removalIndex := holder.raft.LastIndex()
		c.waitFor(10*time.Second, "the old leader to step down", func() bool {
			return old.raft.State() != Leader
		})
		if err := removal.Error(); err == nil {
			t.Fatal("the removal committed with only one of three new voters holding it")
		}
		if got := old.raft.pub.latestConfiguration(); inConfiguration(got, old.id) {
			t.Fatalf("the old leader's latest configuration still holds it: %+v", got.Servers)
		}
		for _, n := range left {
			if got := n.raft.pub.latestConfiguration(); !inConfiguration(got, old.id) {
				t.Fatalf("%s holds the removal, want it only on %s", n.id, holder.id)
			}
		}

		c.stop(holder)
		c.heal()
		next := c.waitForLeader(left...)
		applyAll(t, next, "y", 3)
		c.waitFor(time.Second, "the old leader to know its removal committed", func() bool {
			return old.raft.CommitIndex() >= removalIndex && old.raft.State() == Follower
		})
		if got := next.raft.pub.latestConfiguration(); inConfiguration(got, old.id) || len(got.Servers) != 3 {
			t.Fatalf("the leader's configuration is %+v, want the three without %s", got.Servers, old.id)
		}
	})
}

// writeLoad applies commands one after another on one node until finished.
type writeLoad struct {
	stop chan struct{}
	done chan int
}

// runWrites applies commands on node, counting the ones that fail, until
// finish is called.
func runWrites(c *testCluster, node *testNode, failed *atomic.Int64) *writeLoad {
	w := &writeLoad{stop: make(chan struct{}), done: make(chan int)}
	go func() {
		n := 0
		for {
			select {
			case <-w.stop:
				w.done <- n
				return
			default:
			}
			n++
			if err := node.raft.Apply([]byte(fmt.Sprintf("w-%d", n)), time.Second).Error(); err != nil {
				c.t.Logf("write %d: %v", n, err)
				failed.Add(1)
			}
			time.Sleep(node.conf.ElectionTimeout / 10)
		}
	}()
	return w
}

// finish stops the load and returns how many writes it made.
func (w *writeLoad) finish() int {
	close(w.stop)
	return <-w.done
}

func TestMembership_LeaderRemovingItselfStepsDown(t *testing.T) {
	for _, shutdown := range []bool{true, false} {
		t.Run(fmt.Sprintf("ShutdownOnRemove %v", shutdown), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newTestCluster(t, 3, clusterOpts{conf: func(c *Config) { c.ShutdownOnRemove = shutdown }})
				defer c.shutdown()
				leader := c.waitForLeader()
				applyAll(t, leader, "x", 3)
				if err := leader.raft.RemoveServer(leader.id, 0, 0).Error(); err != nil {
					t.Fatalf("RemoveServer(self): %v", err)
				}
				c.waitFor(time.Second, "the old leader to step down", func() bool { return leader.raft.State() != Leader })
				if shutdown {
					c.waitFor(time.Second, "the old leader to shut down", func() bool { return leader.raft.State() == Shutdown })
					leader.raft.Shutdown().Error()
					leader.raft = nil
				}
				var rest []*testNode
				for _, n := range c.running() {
					if n != leader {
						rest = append(rest, n)
					}
				}
				next := c.waitForLeader(rest...)
				applyAll(t, next, "y", 3)
			})
		})
	}
}

func TestLeadershipTransfer_ToAChosenServerUnderLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		cl := startClients(c, 4)
		time.Sleep(50 * time.Millisecond)
		var target *testNode
		for _, n := range c.nodes {
			if n != leader {
				target = n
			}
		}
		if err := leader.raft.LeadershipTransferToServer(target.id, target.addr).Error(); err != nil {
			t.Fatalf("LeadershipTransferToServer: %v", err)
		}
		if got := c.waitForLeader(); got != target {
			t.Fatalf("leadership went to %s, want %s", got.id, target.id)
		}
		time.Sleep(50 * time.Millisecond)
		cl.finish(t, target.fsm)
		if err := target.raft.Barrier(0).Error(); err != nil {
			t.Fatal(err)
		}
		c.waitForSameFSMs(target.fsm.len())

		// A plain LeadershipTransfer picks someone else.
		if err := target.raft.LeadershipTransfer().Error(); err != nil {
			t.Fatalf("LeadershipTransfer: %v", err)
		}
		if got := c.waitForLeader(); got == target {
			t.Fatal("leadership stayed after LeadershipTransfer")
		}
		if err := c.waitForLeader().raft.LeadershipTransferToServer(c.waitForLeader().id, "").Error(); err == nil ||
			err.Error() != "cannot transfer leadership to itself" {
			t.Fatalf("transfer to itself: %v", err)
		}
	})
}

func TestLeadershipTransfer_RefusesOtherRequestsMeanwhile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, stores := controlledCluster(t, 3, nil)
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 1)
		var target *testNode
		for _, n := range c.nodes {
			if n != leader {
				target = n
				break
			}
		}
		// Hold the target's disk so it cannot catch up and the transfer
		// stays in progress.
		release := stores[target.id].holdWrites()
		defer release()
		leader.raft.Apply([]byte("pending"), 0)
		f := leader.raft.LeadershipTransferToServer(target.id, target.addr)
		time.Sleep(5 * time.Millisecond)
		if err := leader.raft.Apply([]byte("y"), 0).Error(); !errors.Is(err, ErrLeadershipTransferInProgress) {
			t.Fatalf("Apply during a transfer: %v", err)
		}
		if err := leader.raft.LeadershipTransfer().Error(); !errors.Is(err, ErrLeadershipTransferInProgress) {
			t.Fatalf("a second transfer: %v", err)
		}
		if err := f.Error(); err == nil || err.Error() != "leadership transfer timeout" {
			t.Fatalf("transfer to a stuck target: %v, want leadership transfer timeout", err)
		}
		release()
		applyAll(t, c.waitForLeader(), "z", 1)
	})
}

func TestRecoverCluster_AfterLosingTwoOfThree(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{conf: snapshotConf(40, 10)})
		defer c.shutdown()
		applyAll(t, c.waitForLeader(), "x", 150)
		c.waitForSameFSMs(150)
		c.shutdown()
		survivor := c.nodes[0]
		// Two servers are lost for good; the survivor cannot elect itself.
		c.nodes = c.nodes[:1]
		cfg := Configuration{Servers: []Server{{Voter, survivor.id, survivor.addr}}}
		_, trans := NewInmemTransport(survivor.addr)
		if err := RecoverCluster(survivor.conf, &testFSM{}, survivor.logs, survivor.store, survivor.snaps, trans, cfg); err != nil {
			t.Fatalf("RecoverCluster: %v", err)
		}
		c.start(survivor)
		leader := c.waitForLeader()
		if leader != survivor {
			t.Fatal("the survivor does not lead")
		}
		c.waitForSameFSMs(150)
		applyAll(t, leader, "y", 5)
		c.waitForSameFSMs(155)
		if got := leader.raft.GetConfiguration().Configuration(); len(got.Servers) != 1 {
			t.Fatalf("configuration after recovery: %+v", got)
		}
		// Recovery refuses a server with no state.
		empty := NewInmemStore()
		err := RecoverCluster(survivor.conf, &testFSM{}, empty, empty, NewInmemSnapshotStore(), trans, cfg)
		if err == nil || !strings.Contains(err.Error(), "refused to recover cluster with no initial state") {
			t.Fatalf("recovering an empty server: %v", err)
		}
	})
}
