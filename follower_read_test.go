package raft

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Follower reads: ReadIndex on a follower (follower_read.go).

// followersOf returns the nodes other than leader.
func followersOf(c *testCluster, leader *testNode) []*testNode {
	var out []*testNode
	for _, n := range c.running() {
		if n != leader {
			out = append(out, n)
		}
	}
	return out
}

// setReadIndexHook makes node's transport run hook before each ReadIndex
// request it sends (nil removes it).
func setReadIndexHook(node *testNode, hook func() error) {
	if hook == nil {
		node.strict.trans.readIndexHook.Store(nil)
		return
	}
	node.strict.trans.readIndexHook.Store(&hook)
}

func TestNewFollowerRead_ObservesEarlierWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		followers := followersOf(c, leader)
		// One follower's FSM is slow, so its reads often wait for it.
		followers[1].fsm.delay.Store(int64(time.Millisecond))
		for i := 0; i < 40; i++ {
			var last ApplyFuture
			for j := 0; j < 5; j++ {
				last = leader.raft.Apply([]byte(fmt.Sprintf("x-%d-%d", i, j)), 0)
			}
			if err := last.Error(); err != nil {
				t.Fatal(err)
			}
			want := (i + 1) * 5
			for _, f := range followers {
				read := f.raft.ReadIndex(0)
				if err := read.Error(); err != nil {
					t.Fatalf("ReadIndex on follower %s: %v", f.id, err)
				}
				if read.Index() < last.Index() {
					t.Fatalf("read index %d is before a completed write at %d", read.Index(), last.Index())
				}
				if got := f.raft.AppliedIndex(); got < read.Index() {
					t.Fatalf("%s answered at applied index %d, behind the read index %d", f.id, got, read.Index())
				}
				if got := f.fsm.len(); got < want {
					t.Fatalf("%s read %d commands after %d completed writes", f.id, got, want)
				}
			}
		}
		lastIndex, _ := leader.raft.pub.lastLog()
		if lastIndex > 1+1+40*5 {
			t.Fatalf("follower reads wrote to the log: last index %d", lastIndex)
		}
	})
}

func TestNewFollowerRead_ConcurrentReadsShareOneRoundTrip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 3)
		f := followersOf(c, leader)[0]
		calls := &f.strict.trans.readIndexCalls
		leaderRPCs := countReadIndexRPCs(leader)

		// Hold the first request on its way to the leader; every read
		// started meanwhile must share the next one.
		gate := make(chan struct{})
		var once sync.Once
		setReadIndexHook(f, func() error {
			once.Do(func() { <-gate })
			return nil
		})
		first := f.raft.ReadIndex(0)
		synctest.Wait()
		if got := calls.Load(); got != 1 {
			t.Fatalf("%d requests for the first read, want 1", got)
		}
		const n = 200
		reads := make([]IndexFuture, n)
		var wg sync.WaitGroup
		for i := range reads {
			wg.Add(1)
			go func() {
				defer wg.Done()
				reads[i] = f.raft.ReadIndex(0)
			}()
		}
		wg.Wait()
		synctest.Wait()
		close(gate)
		if err := first.Error(); err != nil {
			t.Fatal(err)
		}
		for i, r := range reads {
			if err := r.Error(); err != nil {
				t.Fatalf("read %d: %v", i, err)
			}
		}
		if got := calls.Load(); got != 2 {
			t.Fatalf("%d concurrent reads behind one in flight sent %d more requests, want 1", n, got-1)
		}
		if got := leaderRPCs(); got != 2 {
			t.Fatalf("the leader received %d ReadIndex requests, want 2", got)
		}
	})
}

// countReadIndexRPCs counts the ReadIndex requests node's transport
// delivers from now on.
func countReadIndexRPCs(node *testNode) func() int64 {
	var mu sync.Mutex
	var n int64
	fn := func(rpc RPC) {
		if _, ok := rpc.Command.(*ReadIndexRequest); ok {
			mu.Lock()
			n++
			mu.Unlock()
		}
	}
	node.strict.trans.onDeliver.Store(&fn)
	return func() int64 {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

// A leader cut off with one follower keeps that follower's loyalty for a
// while, but can never confirm a read index for it: the majority elected
// another leader and committed a write the follower has not seen.
func TestNewFollowerRead_PartitionedOldLeaderNeverAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 5, clusterOpts{})
		defer c.shutdown()
		old := c.waitForLeader()
		applyAll(t, old, "x", 3)
		loyal := followersOf(c, old)[0]
		oldRPCs := countReadIndexRPCs(old)
		c.partition(old, loyal)
		// At once, while the old leader still believes it leads: it
		// cannot confirm itself.
		if read := loyal.raft.ReadIndex(0); read.Error() == nil {
			t.Fatalf("the cut-off leader confirmed a read at %d", read.Index())
		}
		if oldRPCs() == 0 {
			t.Fatal("the read never reached the cut-off leader")
		}
		var majority []*testNode
		for _, n := range c.running() {
			if n != old && n != loyal {
				majority = append(majority, n)
			}
		}
		leader := c.waitForLeader(majority...)
		applyAll(t, leader, "new", 1)

		// Reads on the loyal follower, as long as it still follows the
		// old leader, and after.
		for i := 0; i < 20; i++ {
			read := loyal.raft.ReadIndex(0)
			err := read.Error()
			if err == nil {
				t.Fatalf("a follower of the cut-off leader answered a read at %d (fsm %d commands), missing the new leader's write",
					read.Index(), loyal.fsm.len())
			}
			time.Sleep(10 * time.Millisecond)
		}
		// The majority's followers read through the new leader.
		for _, n := range majority {
			if n == leader {
				continue
			}
			if err := n.raft.ReadIndex(0).Error(); err != nil {
				t.Fatalf("ReadIndex on %s: %v", n.id, err)
			}
			if got := n.fsm.len(); got != 4 {
				t.Fatalf("%s read %d commands, want 4", n.id, got)
			}
		}
		c.heal()
		c.waitForLeader()
		if err := loyal.raft.ReadIndex(0).Error(); err != nil {
			t.Fatalf("ReadIndex on %s after the heal: %v", loyal.id, err)
		}
		if got := loyal.fsm.len(); got != 4 {
			t.Fatalf("%s read %d commands after the heal, want 4", loyal.id, got)
		}
	})
}

// A request in flight to a leader that is deposed meanwhile fails with a
// clear error; it never answers an index the old leader could not confirm.
func TestNewFollowerRead_LeaderChangesMidFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 5, clusterOpts{})
		defer c.shutdown()
		old := c.waitForLeader()
		applyAll(t, old, "x", 3)
		f := followersOf(c, old)[0]

		gate := make(chan struct{})
		var once sync.Once
		setReadIndexHook(f, func() error {
			once.Do(func() { <-gate })
			return nil
		})
		read := f.raft.ReadIndex(0)
		synctest.Wait()
		// While the request waits, the old leader is cut off with the
		// follower, the others elect a leader and commit a write.
		c.partition(old, f)
		var majority []*testNode
		for _, n := range c.running() {
			if n != old && n != f {
				majority = append(majority, n)
			}
		}
		leader := c.waitForLeader(majority...)
		applyAll(t, leader, "new", 1)
		close(gate)
		err := read.Error()
		if err == nil {
			t.Fatalf("a read sent to a deposed leader answered at %d (fsm %d commands)", read.Index(), f.fsm.len())
		}
		if !errors.Is(err, ErrNotLeader) {
			t.Logf("read failed with: %v", err)
		}
		c.heal()
		c.waitForLeader()
		next := f.raft.ReadIndex(0)
		if err := next.Error(); err != nil {
			t.Fatalf("the next read: %v", err)
		}
		if got := f.fsm.len(); got != 4 {
			t.Fatalf("the next read saw %d commands, want 4", got)
		}
	})
}

// A leader that does not know the RPC is asked once per leader and term;
// until either changes, reads answer ErrNotLeader itself at once.
func TestNewFollowerRead_UnsupportedLeaderProbedOncePerTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 1)
		unsupported := func() error {
			return fmt.Errorf("%w: as the test says", ErrReadIndexUnsupported)
		}
		for _, n := range c.nodes {
			setReadIndexHook(n, unsupported)
		}
		f := followersOf(c, leader)[0]
		calls := &f.strict.trans.readIndexCalls
		for i := 0; i < 10; i++ {
			if err := f.raft.ReadIndex(0).Error(); err != ErrNotLeader {
				t.Fatalf("read %d against a leader without the RPC: %v, want ErrNotLeader itself", i, err)
			}
		}
		if got := calls.Load(); got != 1 {
			t.Fatalf("%d requests to a leader without the RPC, want 1", got)
		}
		// A new term: a follower asks again, once.
		c.stop(leader)
		next := c.waitForLeader()
		g := followersOf(c, next)[0]
		before := g.strict.trans.readIndexCalls.Load()
		for i := 0; i < 5; i++ {
			if err := g.raft.ReadIndex(0).Error(); err != ErrNotLeader {
				t.Fatalf("read %d in the new term: %v, want ErrNotLeader itself", i, err)
			}
		}
		if got := g.strict.trans.readIndexCalls.Load() - before; got != 1 {
			t.Fatalf("%d requests in the new term, want 1", got)
		}
	})
}

// basicTransport offers only the Transport interface, and Close.
type basicTransport struct {
	Transport
	WithClose
}

// Without WithReadIndex, ReadIndex on a follower answers ErrNotLeader
// itself, as before follower reads existed.
func TestNewFollowerRead_TransportWithoutReadIndex(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{lax: true, trans: func(i *InmemTransport) Transport {
			return basicTransport{i, i}
		}})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 1)
		for _, f := range followersOf(c, leader) {
			if err := f.raft.ReadIndex(0).Error(); err != ErrNotLeader {
				t.Fatalf("ReadIndex on %s without WithReadIndex: %v, want ErrNotLeader itself", f.id, err)
			}
		}
		if err := leader.raft.ReadIndex(0).Error(); err != nil {
			t.Fatalf("ReadIndex on the leader: %v", err)
		}
	})
}

// verifyRounds returns the verification rounds the leader has started.
func verifyRounds(leader *testNode) uint64 {
	return leader.raft.st.lead.shared.verifyRound.Load()
}

// With three voters, a follower's request and the leader make a quorum of
// the leader's term: the leader answers it with no heartbeat round
// (requesterCompletesQuorum).
func TestNewFollowerRead_ThreeVotersNeedNoRound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 3)
		synctest.Wait()
		rounds := verifyRounds(leader)
		for _, f := range followersOf(c, leader) {
			last := leader.raft.Apply([]byte("y-"+string(f.id)), 0)
			if err := last.Error(); err != nil {
				t.Fatal(err)
			}
			read := f.raft.ReadIndex(0)
			if err := read.Error(); err != nil {
				t.Fatalf("ReadIndex on %s: %v", f.id, err)
			}
			if read.Index() < last.Index() {
				t.Fatalf("read index %d is before a completed write at %d", read.Index(), last.Index())
			}
		}
		synctest.Wait()
		if got := verifyRounds(leader); got != rounds {
			t.Fatalf("follower reads in a cluster of three voters took %d verification rounds, want 0", got-rounds)
		}
	})
}

// A request that does not show the follower in the leader's term (sent in
// an earlier term, or by a sender that does not set Term), or whose sender
// and the leader are not a quorum, waits for a heartbeat round.
func TestNewFollowerRead_RoundUnlessRequestCompletesQuorum(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 3)
		synctest.Wait()
		f := followersOf(c, leader)[0]
		term := leader.raft.CurrentTerm()
		for _, tc := range []struct {
			name  string
			id    string
			term  uint64
			round bool
		}{
			{"this term", string(f.id), term, false},
			{"an earlier term", string(f.id), term - 1, true},
			{"no term", string(f.id), 0, true},
			{"a server outside the configuration", "stranger", term, true},
			{"the leader's own ID", string(leader.id), term, true},
		} {
			rounds := verifyRounds(leader)
			req := &ReadIndexRequest{RPCHeader: RPCHeader{ProtocolVersion: ProtocolVersionMax, ID: []byte(tc.id), Addr: []byte(f.raft.localAddr)}, Term: tc.term}
			var resp ReadIndexResponse
			if err := f.raft.trans.(WithReadIndex).ReadIndex(leader.id, leader.raft.localAddr, req, &resp); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if !resp.Success {
				t.Fatalf("%s: the leader did not confirm the read", tc.name)
			}
			if took := verifyRounds(leader) > rounds; took != tc.round {
				t.Fatalf("%s: a verification round taken: %v, want %v", tc.name, took, tc.round)
			}
		}
	})
}

// With five voters, a follower and the leader are not a quorum: a
// follower read waits for a heartbeat round.
func TestNewFollowerRead_FiveVotersTakeARound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 5, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 3)
		synctest.Wait()
		rounds := verifyRounds(leader)
		f := followersOf(c, leader)[0]
		if err := f.raft.ReadIndex(0).Error(); err != nil {
			t.Fatal(err)
		}
		if got := verifyRounds(leader); got == rounds {
			t.Fatal("a follower read in a cluster of five voters was answered without a verification round")
		}
	})
}

// A follower that has every entry but has not yet heard that the newest
// ones committed (AppendEntries tells it with the next write, or after
// CommitTimeout) learns it from the leader's answer: the read does not
// wait for either (commitFromReadIndex).
func TestNewFollowerRead_AnswerCommitsHeldEntries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{conf: func(conf *Config) {
			conf.CommitTimeout = time.Second
		}})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 3)
		f := followersOf(c, leader)[0]
		for i := 0; i < 5; i++ {
			last := leader.raft.Apply([]byte(fmt.Sprintf("y-%d", i)), 0)
			if err := last.Error(); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			read := f.raft.ReadIndex(0)
			if err := read.Error(); err != nil {
				t.Fatal(err)
			}
			if read.Index() < last.Index() {
				t.Fatalf("read index %d is before a completed write at %d", read.Index(), last.Index())
			}
			if waited := time.Since(start); waited >= 100*time.Millisecond {
				t.Fatalf("the follower read waited %v (fake time) for the commit index to reach the follower", waited)
			}
			if got := f.raft.AppliedIndex(); got < last.Index() {
				t.Fatalf("the read answered at applied index %d, before %d", got, last.Index())
			}
		}
	})
}
