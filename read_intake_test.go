package raft

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// The ReadIndex intake (read_intake.go).

// holdHeartbeats makes the leader's heartbeats fail until the returned
// release is called: no verification round it starts meanwhile ends.
func holdHeartbeats(leader *testNode) (release func()) {
	leader.strict.trans.dropHeartbeats.Store(true)
	return func() { leader.strict.trans.dropHeartbeats.Store(false) }
}

// intakeState returns how many calls wait in the intake, and whether a
// wake-up of the run loop is on its way.
func intakeState(r *Raft) (waiting int, poked bool) {
	in := r.intake
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.calls, in.poked || len(in.wakeCh) > 0
}

// Calls made while a verification round is pending do not wake the run
// loop: it takes them all when the round ends, and they share the next
// round.
func TestReadIntake_CallsDuringARoundShareTheNext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 3)
		synctest.Wait()
		rounds := verifyRounds(leader)

		release := holdHeartbeats(leader)
		first := leader.raft.ReadIndex(0)
		synctest.Wait()
		if got := verifyRounds(leader); got != rounds+1 {
			t.Fatalf("the first read started %d rounds, want 1", got-rounds)
		}
		const n = 100
		reads := make([]IndexFuture, n)
		for i := range reads {
			reads[i] = leader.raft.ReadIndex(0)
		}
		synctest.Wait()
		if waiting, poked := intakeState(leader.raft); waiting != n || poked {
			t.Fatalf("%d calls wait in the intake (want %d), run loop woken: %v (want false)", waiting, n, poked)
		}
		release()
		if err := first.Error(); err != nil {
			t.Fatal(err)
		}
		for i, f := range reads {
			if err := f.Error(); err != nil {
				t.Fatalf("read %d: %v", i, err)
			}
		}
		if got := verifyRounds(leader); got != rounds+2 {
			t.Fatalf("%d reads behind a pending round took %d more rounds, want 1", n, got-rounds-1)
		}
	})
}

// Calls waiting in the intake for a round that never ends are not
// forgotten when the leader steps down: they are answered, as calls on a
// node that does not lead.
func TestReadIntake_StepDownAnswersWaitingCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 3)
		synctest.Wait()

		c.partition(leader)
		first := leader.raft.ReadIndex(0)
		synctest.Wait()
		const n = 20
		reads := make([]IndexFuture, n)
		for i := range reads {
			reads[i] = leader.raft.ReadIndex(0)
		}
		// No follower hears from it: the leader steps down once its lease
		// runs out, and nothing brings the intake's calls back but that.
		if err := first.Error(); err == nil {
			t.Fatal("a leader that heard from no follower confirmed a read")
		}
		for i, f := range reads {
			if err := f.Error(); err == nil {
				t.Fatalf("read %d confirmed by a leader that heard from no follower", i)
			}
		}
		if leader.raft.State() == Leader {
			t.Fatal("the leader did not step down")
		}
	})
}

// newLingerCluster starts three nodes whose heartbeats take a
// millisecond to send, so every verification round takes that long, and
// leaves the leader lingering after a round that answered n reads
// (read_intake.go): it waits for n calls.
func newLingerCluster(t *testing.T, n int) (*testCluster, *testNode) {
	t.Helper()
	links := newHeartbeatLinks()
	c := newTestCluster(t, 3, clusterOpts{lax: true, trans: links.wrap})
	leader := c.waitForLeader()
	applyAll(t, leader, "x", 3)
	for _, f := range c.others(leader) {
		links.setSlow(f.addr, time.Millisecond)
	}
	first := leader.raft.ReadIndex(0)
	synctest.Wait()
	// A round is in flight: these wait for the next, which the linger
	// after the first round's one reader delays by at most a round.
	reads := make([]IndexFuture, n)
	for i := range reads {
		reads[i] = leader.raft.ReadIndex(0)
	}
	for i, f := range append(reads, first) {
		if err := f.Error(); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
	}
	synctest.Wait()
	if got := lingerWant(leader.raft); got != n {
		t.Fatalf("after a round answered %d reads, the leader waits for %d calls, want %d", n, got, n)
	}
	return c, leader
}

// lingerWant returns how many calls the leader waits for before it starts
// the next round; 0 when it does not linger.
func lingerWant(r *Raft) int {
	in := r.intake
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.want
}

// After a round answered n reads, the leader waits for n calls before it
// starts the next round, so that closed-loop readers share one round
// instead of splitting into two groups that alternate.
func TestReadIntake_LingerWaitsForTheAnsweredReaders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 8
		c, leader := newLingerCluster(t, n)
		defer c.shutdown()
		rounds := verifyRounds(leader)
		reads := make([]IndexFuture, n)
		for i := range n - 1 {
			reads[i] = leader.raft.ReadIndex(0)
		}
		synctest.Wait()
		if got := verifyRounds(leader); got != rounds {
			t.Fatalf("%d calls of %d answered readers started %d rounds before the last came back, want 0", n-1, n, got-rounds)
		}
		reads[n-1] = leader.raft.ReadIndex(0)
		for i, f := range reads {
			if err := f.Error(); err != nil {
				t.Fatalf("read %d: %v", i, err)
			}
		}
		if got := verifyRounds(leader); got != rounds+1 {
			t.Fatalf("%d readers coming back took %d rounds, want 1", n, got-rounds)
		}
	})
}

// A linger ends after at most as long as a round takes, and never more
// than maxReadLinger, even when fewer readers come back than the round
// answered: the calls waiting are not stranded.
func TestReadIntake_LingerEndsWhenReadersDoNotComeBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 8
		c, leader := newLingerCluster(t, n)
		defer c.shutdown()
		rounds := verifyRounds(leader)
		start := time.Now()
		reads := make([]IndexFuture, n/2)
		for i := range reads {
			reads[i] = leader.raft.ReadIndex(0)
		}
		for i, f := range reads {
			if err := f.Error(); err != nil {
				t.Fatalf("read %d: %v", i, err)
			}
		}
		// The linger, then the round's heartbeat there and back.
		if waited, want := time.Since(start), maxReadLinger+2*time.Millisecond; waited > want {
			t.Fatalf("reads waited %v for readers that never came back, want at most %v", waited, want)
		}
		if got := verifyRounds(leader); got != rounds+1 {
			t.Fatalf("%d reads after a linger took %d rounds, want 1", n/2, got-rounds)
		}
	})
}

// A follower lingers too: after its leader's answer served n reads at
// once, the next request waits for n calls (or the linger's end), so the
// follower's closed-loop readers share one request.
func TestReadIntake_FollowerLingersForTheAnsweredReaders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		links := newHeartbeatLinks()
		c := newTestCluster(t, 3, clusterOpts{lax: true, trans: links.wrap})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 3)
		follower := c.others(leader)[0]
		links.setSlow(leader.addr, time.Millisecond)
		const n = 8
		// Rounds of n reads until the follower has applied everything
		// and its requests are answered at once.
		for range 3 {
			reads := make([]IndexFuture, n)
			for i := range reads {
				reads[i] = follower.raft.ReadIndex(0)
			}
			for i, f := range reads {
				if err := f.Error(); err != nil {
					t.Fatalf("follower read %d: %v", i, err)
				}
			}
			synctest.Wait()
			time.Sleep(2 * maxReadLinger)
		}
		first := follower.raft.ReadIndex(0)
		synctest.Wait()
		reads := make([]IndexFuture, n)
		for i := range reads {
			reads[i] = follower.raft.ReadIndex(0)
		}
		for i, f := range append(reads, first) {
			if err := f.Error(); err != nil {
				t.Fatalf("follower read %d: %v", i, err)
			}
		}
		synctest.Wait()
		if got := lingerWant(follower.raft); got != n {
			t.Fatalf("after its leader's answer served %d reads, the follower waits for %d calls, want %d", n, got, n)
		}
		sent := links.readIndexRequests()
		for i := range n - 1 {
			reads[i] = follower.raft.ReadIndex(0)
		}
		synctest.Wait()
		if got := links.readIndexRequests(); got != sent {
			t.Fatalf("%d calls of %d answered readers sent %d requests before the last came back, want 0", n-1, n, got-sent)
		}
		reads[n-1] = follower.raft.ReadIndex(0)
		for i, f := range reads {
			if err := f.Error(); err != nil {
				t.Fatalf("follower read %d: %v", i, err)
			}
		}
		if got := links.readIndexRequests(); got != sent+1 {
			t.Fatalf("%d readers coming back sent %d requests, want 1", n, got-sent)
		}
	})
}

// Calls that wait in the intake together share one future, and a shared
// future whose node shuts down before taking it still answers: its
// callers wait on the answer alone (readIndexFuture.Error), so
// answerOnStop must give it one.
func TestReadIntake_SharedFutureAnswersOnShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 3)
		synctest.Wait()

		holdHeartbeats(leader)
		first := leader.raft.ReadIndex(0)
		synctest.Wait()
		const n = 10
		reads := make([]IndexFuture, n)
		for i := range reads {
			reads[i] = leader.raft.ReadIndex(0)
		}
		for i, f := range reads {
			if f != reads[0] {
				t.Fatalf("call %d waiting in the intake got a future of its own", i)
			}
		}
		if f := reads[0].(*readIndexFuture); f.calls != n {
			t.Fatalf("the shared future counts %d calls, want %d", f.calls, n)
		}
		if err := leader.raft.Shutdown().Error(); err != nil {
			t.Fatal(err)
		}
		if err := first.Error(); err == nil {
			t.Fatal("a read was confirmed while every heartbeat was dropped")
		}
		answered := make(chan error, 1)
		go func() { answered <- reads[0].Error() }()
		select {
		case err := <-answered:
			if !errors.Is(err, ErrRaftShutdown) {
				t.Fatalf("the shared future answered %v after the shutdown, want ErrRaftShutdown", err)
			}
		case <-time.After(time.Minute):
			// Fake time: the bubble's other nodes keep it moving.
			t.Fatal("the shared future was not answered a minute after the shutdown")
		}
	})
}
