package raft

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// Lease reads on the caller's goroutine (lease_view.go) and VerifyLeader
// batching (read_batch.go).

// countSteps makes conf count its node's run-loop steps in steps.
func countSteps(conf *Config, steps map[ServerID]*atomic.Int64) {
	n := new(atomic.Int64)
	steps[conf.LocalID] = n
	conf.hooks = &runHooks{afterStep: func(*Raft) { n.Add(1) }}
}

func TestNewLease_ReadsTakeNoRunLoopTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		steps := make(map[ServerID]*atomic.Int64)
		_, leader := startLeased(t, func(conf *Config) { countSteps(conf, steps) }, 3)
		// Every goroutine waits on a timer: time stands still until the
		// test goroutine blocks, and the reads below never block it.
		synctest.Wait()
		before := steps[leader.id].Load()
		applied := leader.raft.AppliedIndex()
		for i := 0; i < 100; i++ {
			f := leader.raft.ReadLease(0)
			if err := f.Error(); err != nil {
				t.Fatalf("lease read %d: %v", i, err)
			}
			if f.Index() != applied {
				t.Fatalf("lease read %d at index %d, want the commit index %d", i, f.Index(), applied)
			}
		}
		if got := steps[leader.id].Load() - before; got != 0 {
			t.Fatalf("100 lease reads took %d turns of the run loop, want none", got)
		}
		if got := leader.raft.leaseReads.Load(); got < 100 {
			t.Fatalf("%d reads counted as lease reads, want at least 100", got)
		}
	})
}

// A leader that has begun to step down serves no lease read, even while
// the lease it held is still running: here the run loop is held inside
// the step-down (it waits for NotifyCh to take "false") right after it
// learned of a newer term, before any time passed.
func TestNewLease_NoReadOnceSteppingDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, notify := newNotifyCluster(t, leaseConf)
		// Every node's NotifyCh is drained until the test stops its
		// drainer.
		var saidTrue sync.Map
		stop := make(map[ServerID]chan struct{})
		exited := make(map[ServerID]chan struct{})
		for id, ch := range notify {
			stopCh, exitedCh := make(chan struct{}), make(chan struct{})
			stop[id], exited[id] = stopCh, exitedCh
			go func() {
				defer close(exitedCh)
				for {
					select {
					case v := <-ch:
						if v {
							saidTrue.Store(id, true)
						}
					case <-stopCh:
						return
					}
				}
			}()
		}
		defer func() {
			for id, ch := range stop {
				select {
				case <-exited[id]:
				default:
					close(ch)
				}
			}
		}()
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 1)
		synctest.Wait()
		if _, ok := saidTrue.Load(leader.id); !ok {
			t.Fatal("the leader never told NotifyCh")
		}
		// From here, the leader's next word to NotifyCh (false, as it steps
		// down) waits.
		close(stop[leader.id])
		<-exited[leader.id]
		if err := leader.raft.ReadLease(0).Error(); err != nil {
			t.Fatalf("lease read while leading: %v", err)
		}
		term := leader.raft.pub.term.Load()

		// A follower tells the leader about a newer term.
		from := followerOf(c, leader)
		go sendNewerTerm(from, leader, term+1)
		synctest.Wait()
		if got := leader.raft.pub.term.Load(); got != term+1 || leader.raft.State() == Leader {
			t.Fatalf("the leader is %v in term %d, want a follower in %d", leader.raft.State(), got, term+1)
		}
		read := leader.raft.ReadLease(0)
		synctest.Wait()
		if rf, ok := read.(*readIndexFuture); !ok {
			t.Fatalf("a lease read was served after the leader learned of term %d: %v", term+1, read.Error())
		} else {
			select {
			case <-rf.doneCh:
				t.Fatalf("a lease read was answered while the leader was stepping down: %v", read.Error())
			default:
			}
		}
		// Let the step-down finish: the read goes to the run loop, which
		// no longer leads.
		done := make(chan struct{})
		defer close(done)
		go func() {
			for {
				select {
				case <-notify[leader.id]:
				case <-done:
					return
				}
			}
		}()
		if err := read.Error(); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("the read after the step-down answered %v, want ErrNotLeader", err)
		}
	})
}

// Readers hammer a leader while it learns of a newer term: a read that
// began after the step-down was visible (a newer term or another role) is
// never answered nil. It is a check for the race detector and for gross
// mistakes only: it did not catch a wrong publication order in 20 runs.
// The order itself is proven by TestNewLease_NoReadOnceSteppingDown, which
// holds the run loop in the middle of the step-down.
func TestNewLease_StepDownRacesReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, leader := startLeased(t, nil, 1)
		synctest.Wait()
		r := leader.raft
		term := r.pub.term.Load()
		const readers = 8
		var served, late atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for {
					deposed := r.pub.term.Load() != term || r.State() != Leader
					err := r.ReadLease(0).Error()
					switch {
					case err == nil && deposed:
						late.Add(1)
					case err == nil:
						served.Add(1)
					case deposed:
						return
					}
				}
			}()
		}
		from := followerOf(c, leader)
		close(start)
		// Some reads first, then the newer term.
		for served.Load() < 50 {
			// The readers never block: synctest.Wait would wait for good.
			runtime.Gosched()
		}
		if err := sendNewerTerm(from, leader, term+1); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if n := late.Load(); n > 0 {
			t.Fatalf("%d reads were answered after the leader learned of term %d", n, term+1)
		}
	})
}

// Concurrent VerifyLeader calls taken in one turn of the run loop share
// one verification round: one heartbeat per follower.
func TestVerifyLeader_WaitingCallsShareOneRound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, notify := newNotifyCluster(t, nil)
		// The new leader's run loop waits to tell NotifyCh, before it
		// takes any request.
		leader := c.anyLeaderNode()
		const calls = 50
		futures := make([]Future, calls)
		for i := range futures {
			futures[i] = leader.raft.VerifyLeader()
		}
		if got := len(leader.raft.verifyCh); got != calls {
			t.Fatalf("%d calls wait in the channel, want %d", got, calls)
		}
		// The replicators have settled (the no-op is sent and answered);
		// time stands still until the test goroutine blocks below.
		synctest.Wait()
		before := leader.strict.trans.heartbeatsSent.Load()
		if !<-notify[leader.id] {
			t.Fatal("NotifyCh said false")
		}
		for i, f := range futures {
			if err := f.Error(); err != nil {
				t.Fatalf("verify %d: %v", i, err)
			}
		}
		sent := leader.strict.trans.heartbeatsSent.Load() - before
		rounds := leader.raft.st.lead.shared.verifyRound.Load()
		t.Logf("%d calls: %d rounds, %d heartbeats", calls, rounds, sent)
		if rounds != 1 {
			t.Fatalf("%d VerifyLeader calls took %d verification rounds, want 1", calls, rounds)
		}
		if sent > 2 {
			t.Fatalf("%d VerifyLeader calls sent %d heartbeats, want at most one per follower", calls, sent)
		}
	})
}

func TestReadWaiters_AnswerOnceApplied(t *testing.T) {
	var w readWaiters
	var applied atomic.Uint64
	applied.Store(5)
	now := &readIndexFuture{index: 5}
	now.init(nil)
	w.wait(now, &applied)
	if err := now.Error(); err != nil {
		t.Fatalf("a read at the applied index: %v", err)
	}
	later := &readIndexFuture{index: 8}
	later.init(nil)
	last := &readIndexFuture{index: 9}
	last.init(nil)
	w.wait(later, &applied)
	w.wait(last, &applied)
	answered := func(f *readIndexFuture) bool {
		select {
		case <-f.doneCh:
			return true
		default:
			return false
		}
	}
	applied.Store(7)
	w.release(7)
	if answered(later) || answered(last) {
		t.Fatal("reads above the applied index were answered")
	}
	applied.Store(8)
	w.release(8)
	if !answered(later) || answered(last) {
		t.Fatalf("at 8: read at 8 answered %v, read at 9 answered %v; want true, false", answered(later), answered(last))
	}
	applied.Store(20)
	w.release(20)
	if !answered(last) {
		t.Fatal("the read at 9 was not answered at 20")
	}
	if n := w.n.Load(); n != 0 {
		t.Fatalf("%d reads still counted as waiting", n)
	}
}

// Pipelined AppendEntries that a quorum accepted renew the lease as
// heartbeats do: with every heartbeat failing, a leader that keeps
// writing keeps its lease.
func TestNewLease_PipelinedAppendsRenewIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, leader := startLeased(t, nil, 3)
		synctest.Wait()
		leader.strict.trans.dropHeartbeats.Store(true)
		for i := 0; i < 50; i++ {
			time.Sleep(10 * time.Millisecond)
			applyAll(t, leader, fmt.Sprintf("y%d", i), 1)
			if _, ok := leader.raft.leaseReadNow(); !ok {
				t.Fatalf("after %d writes over %v without a heartbeat, the leader holds no lease", i+1, time.Duration(i+1)*10*time.Millisecond)
			}
		}
	})
}
