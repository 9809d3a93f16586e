package raft

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// A leader's read confirmed while the FSM task that covers its index is
// built but waits for room in the FSM goroutine's queue, with no write
// after it, must still be answered once the FSM applied that task.
func TestReadIndex_AnsweredWhenItsTaskWaitsForTheFSM(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 1)
		// A slow FSM, and more separately committed entries than its
		// queue holds.
		leader.fsm.delay.Store(int64(time.Second))
		var last ApplyFuture
		for i := 0; i < 140; i++ {
			last = leader.raft.Apply([]byte(fmt.Sprintf("a%d", i)), 0)
			synctest.Wait()
		}
		// The FSM takes one task; the run loop builds the next one up to
		// the commit index, which waits for room.
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		read := leader.raft.ReadIndex(0)
		done := make(chan error, 1)
		go func() { done <- read.Error() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(1000 * time.Second):
			t.Fatalf("the read was never answered\n%s", c.describe())
		}
		if err := last.Error(); err != nil {
			t.Fatal(err)
		}
		if read.Index() < last.Index() {
			t.Fatalf("read index %d is before the last write at %d", read.Index(), last.Index())
		}
	})
}

// Confirmed reads the FSM has applied are answered at once; reads whose
// index is on its way to the FSM share one marker task behind it.
func TestQueueConfirmedRead_AnswersAppliedAndSharesMarkers(t *testing.T) {
	r := &Raft{}
	r.pub.appliedIndex.Store(10)
	r.st.dispatched = 20
	read := func(index uint64) *readIndexFuture {
		f := &readIndexFuture{index: index}
		f.init(nil)
		r.queueConfirmedRead(f)
		return f
	}
	answered := func(f *readIndexFuture) bool {
		select {
		case <-f.doneCh:
			return true
		default:
			return false
		}
	}
	if f := read(10); !answered(f) || f.Error() != nil {
		t.Fatal("a read the FSM has applied was not answered at once")
	}
	a, b := read(15), read(20)
	if answered(a) || answered(b) {
		t.Fatal("a read was answered before the FSM applied its index")
	}
	if len(r.st.fsmQueue) != 1 || len(r.st.fsmQueue[0].reads) != 2 || !r.st.fsmQueue[0].isMarker() {
		t.Fatalf("two reads behind the FSM: queue %v, want one marker with both", r.st.fsmQueue)
	}
	// A restore queued after the marker: later reads need a marker
	// behind the restore.
	r.st.fsmQueue = append(r.st.fsmQueue, &fsmTask{restoreID: "snap", to: 30})
	r.st.dispatched = 30
	read(25)
	if len(r.st.fsmQueue) != 3 || len(r.st.fsmQueue[2].reads) != 1 || len(r.st.fsmQueue[0].reads) != 2 {
		t.Fatalf("a read behind a queued restore: queue %v", r.st.fsmQueue)
	}
	// Nothing queued, the marker built and not yet taken: it is joined.
	r.st.pendingFSM, r.st.fsmQueue = r.st.fsmQueue[2], nil
	read(26)
	if len(r.st.fsmQueue) != 0 || len(r.st.pendingFSM.reads) != 2 {
		t.Fatalf("a read while a marker waits to be taken: pending %v, queue %v", r.st.pendingFSM, r.st.fsmQueue)
	}
	// Beyond what was handed to the FSM: it waits with the run loop.
	read(40)
	if len(r.st.reads) != 1 {
		t.Fatalf("a read beyond the dispatched index: %d waiting, want 1", len(r.st.reads))
	}
}
