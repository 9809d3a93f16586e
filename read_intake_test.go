package raft

import (
	"testing"
	"testing/synctest"
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
	return len(in.pending), in.poked || len(in.wakeCh) > 0
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
