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
