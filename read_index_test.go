package raft

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Linearizable reads without log writes (Raft thesis §6.4).

func TestReadIndex_SeesEveryCompletedWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		for i := 0; i < 50; i++ {
			// Many writes are in flight when the read starts; the read
			// must wait for everything committed before it.
			var last ApplyFuture
			for j := 0; j < 20; j++ {
				last = leader.raft.Apply([]byte(fmt.Sprintf("x-%d-%d", i, j)), 0)
			}
			if err := last.Error(); err != nil {
				t.Fatal(err)
			}
			before := last.Index()
			f := leader.raft.ReadIndex(0)
			if err := f.Error(); err != nil {
				t.Fatalf("ReadIndex: %v", err)
			}
			if f.Index() < before {
				t.Fatalf("read index %d is before a completed write at %d", f.Index(), before)
			}
			if got := leader.raft.AppliedIndex(); got < f.Index() {
				t.Fatalf("the FSM is at %d, behind the read index %d", got, f.Index())
			}
			if got := leader.fsm.len(); got != (i+1)*20 {
				t.Fatalf("after %d writes the FSM read %d", (i+1)*20, got)
			}
		}
		lastIndex, _ := leader.raft.pub.lastLog()
		if lastIndex > 1+1+50*20 {
			t.Fatalf("reads wrote to the log: last index %d", lastIndex)
		}
	})
}

func TestReadIndex_RefusedOffTheLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{conf: func(c *Config) {
			c.HeartbeatTimeout = 500 * time.Millisecond
			c.ElectionTimeout = 500 * time.Millisecond
			c.LeaderLeaseTimeout = 500 * time.Millisecond
		}})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 1)
		// (Followers ask the leader: follower_read_test.go.)
		// A leader cut off from the others cannot confirm itself, even
		// while it still believes it leads.
		c.partition(leader)
		err := leader.raft.ReadIndex(0).Error()
		if !errors.Is(err, ErrLeadershipLost) && !errors.Is(err, ErrNotLeader) {
			t.Fatalf("ReadIndex on a cut-off leader: %v", err)
		}
	})
}

func TestReadIndex_NewLeaderWaitsForItsFirstCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		checkNewLeaderReadWaitsForItsFirstCommit(t, nil, (*Raft).ReadIndex, 100*time.Millisecond)
	})
}

// checkNewLeaderReadWaitsForItsFirstCommit elects a leader after ten
// commands, stops it, holds the disks of the others so that the next
// leader cannot commit its no-op at once, and checks that read, called on
// the new leader, is not answered for wait and then sees all ten commands
// once the disks are released. It runs inside a synctest bubble.
func checkNewLeaderReadWaitsForItsFirstCommit(t *testing.T, conf func(*Config), read func(*Raft, time.Duration) IndexFuture, wait time.Duration) {
	t.Helper()
	c, stores := controlledCluster(t, 3, conf)
	defer c.shutdown()
	old := c.waitForLeader()
	applyAll(t, old, "x", 10)
	c.stop(old)
	var releases []func()
	for _, n := range c.running() {
		releases = append(releases, stores[n.id].holdWrites())
	}
	leader := c.anyLeaderNode()
	f := read(leader.raft, 0)
	time.Sleep(wait)
	select {
	case <-f.(*readIndexFuture).doneCh:
		t.Fatalf("a read was answered before the new leader committed an entry of its term: %v", f.Error())
	default:
	}
	for _, release := range releases {
		release()
	}
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	if got := leader.fsm.len(); got != 10 {
		t.Fatalf("the read saw %d commands, want 10", got)
	}
}

// Calls that wait in the intake (read_intake.go) while the leader is busy
// are taken in one turn of its run loop and share one verification round.
func TestReadIndex_WaitingCallsShareOneVerifyRound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, notify := newNotifyCluster(t, nil)
		// The new leader's run loop waits to tell NotifyCh, before it
		// takes any request.
		leader := c.anyLeaderNode()
		const reads = 50
		futures := make([]IndexFuture, reads)
		for i := range futures {
			futures[i] = leader.raft.ReadIndex(0)
		}
		in := leader.raft.intake
		in.mu.Lock()
		waiting := in.calls
		in.mu.Unlock()
		if waiting != reads {
			t.Fatalf("%d calls wait in the intake, want %d", waiting, reads)
		}
		if !<-notify[leader.id] {
			t.Fatal("NotifyCh said false")
		}
		for i, f := range futures {
			if err := f.Error(); err != nil {
				t.Fatalf("read %d: %v", i, err)
			}
		}
		if got := leader.raft.st.lead.shared.verifyRound.Load(); got != 1 {
			t.Fatalf("%d reads took %d verification rounds, want 1", reads, got)
		}
	})
}

// errPending is what answered reports for a future not answered yet.
var errPending = errors.New("not answered yet")

// answered returns a function that reports f's answer once it has one,
// errPending until then, without blocking.
func answered(f Future) func() error {
	ch := make(chan error, 1)
	go func() { ch <- f.Error() }()
	var got error = errPending
	return func() error {
		select {
		case got = <-ch:
		default:
		}
		return got
	}
}

// A verification round is proved only by heartbeats sent after it
// started: with round 1's heartbeats still in flight, rounds 2 and 3
// start (a VerifyLeader, a ReadIndex), and the acknowledgement of a
// heartbeat built for round 1 answers round 1's VerifyLeader but neither
// of the later ones. Checked to fail when the heartbeat goroutine (replication.go,
// runHeartbeat) reads the round after its heartbeat comes back instead of
// before sending it.
func TestVerifyRound_AckProvesOnlyRoundsStartedBeforeItsHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 3)
		synctest.Wait()
		trans := leader.strict.trans
		gate := make(chan struct{})
		trans.heartbeatGate.Store(&gate)
		open := sync.OnceFunc(func() { close(gate) })
		defer open()

		rounds := verifyRounds(leader)
		first := answered(leader.raft.VerifyLeader())
		synctest.Wait()
		if trans.heartbeatsHeld.Load() == 0 {
			t.Fatal("round 1 sent no heartbeat")
		}
		second := answered(leader.raft.VerifyLeader())
		read := answered(leader.raft.ReadIndex(0))
		synctest.Wait()
		if got := verifyRounds(leader); got != rounds+3 {
			t.Fatalf("%d rounds started, want 3 (one per VerifyLeader, one for the read)", got-rounds)
		}

		// One follower's heartbeat of round 1 comes back: with the leader
		// it is a quorum for round 1.
		gate <- struct{}{}
		synctest.Wait()
		if err := first(); err != nil {
			t.Fatalf("round 1's VerifyLeader: %v, want it answered", err)
		}
		if err := second(); err != errPending {
			t.Fatalf("round 2's VerifyLeader answered (%v) by a heartbeat sent before round 2 started", err)
		}
		if err := read(); err != errPending {
			t.Fatalf("a ReadIndex made during round 1 answered (%v) by a heartbeat sent before it", err)
		}

		open()
		synctest.Wait()
		if err := second(); err != nil {
			t.Fatalf("round 2's VerifyLeader: %v", err)
		}
		if err := read(); err != nil {
			t.Fatalf("ReadIndex: %v", err)
		}
	})
}
