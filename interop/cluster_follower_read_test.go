package interop

import (
	"fmt"
	"strings"
	"testing"

	qraft "github.com/quorumkit/raft"
)

// Follower reads (ReadIndex on a follower of ours) in a mixed cluster. A
// reference leader does not know the ReadIndex RPC: its transport closes
// the connection on the unknown request type. Our follower must take that
// as one probe per leader and term, answer ErrNotLeader itself, and the
// cluster must go on replicating. Under a leader of ours, the same
// follower reads through it.
func TestMixedClusterFollowerReadAgainstReferenceLeader(t *testing.T) {
	c := newMixedCluster(t, mixedMemorySettings(mixedFailoverTiming), libOurs, libOurs, libRef)
	var ref, ours1, ours2 *mixedNode
	for _, n := range c.allNodes() {
		switch {
		case n.library() == libRef:
			ref = n
		case ours1 == nil:
			ours1 = n
		default:
			ours2 = n
		}
	}

	// The reference leads; our follower probes it once, however many
	// reads it serves. A leadership change in the middle (a starved
	// machine) spoils the count; the round is then tried again.
	probed := false
	for attempt := 0; attempt < 3 && !probed; attempt++ {
		c.leadWith(ref)
		c.waitApplied(c.mustSubmit(fmt.Sprintf("before-reads-%d", attempt)).index)
		term := ref.term()
		refused := c.sink.counter(func(line string) bool { return strings.Contains(line, "unknown rpc type 5") })
		dialsBefore := ours1.currentLayer().dialsTo(ref.addr)
		for i := 0; i < 20; i++ {
			ours1.mu.RLock()
			r := ours1.ours
			ours1.mu.RUnlock()
			if err := r.ReadIndex(0).Error(); err != qraft.ErrNotLeader {
				t.Fatalf("follower read %d against a reference leader: %v, want ErrNotLeader itself", i, err)
			}
		}
		dials := ours1.currentLayer().dialsTo(ref.addr) - dialsBefore
		if ref.term() != term || c.leader() != ref {
			c.logf("leadership changed during the reads (%d dials); trying again", dials)
			continue
		}
		if dials != 1 {
			t.Fatalf("20 follower reads against a reference leader dialed it %d times, want 1", dials)
		}
		// The reference logs the refusal before it closes the
		// connection, so the line is there by now.
		if got := refused.n.Load(); got != 1 {
			t.Fatalf("the reference leader refused %d ReadIndex requests, want 1", got)
		}
		probed = true
	}
	if !probed {
		t.Fatalf("leadership kept changing; cluster: %s", c.describe())
	}

	// The cluster still replicates, to every library.
	last := c.submitMany("after-probe", 20, 0)
	c.checkSameHistory(last.index)

	// Under a leader of ours, our follower reads through it and sees the
	// writes completed before the read.
	c.leadWith(ours2)
	ack := c.mustSubmit("under-ours")
	ours1.mu.RLock()
	r := ours1.ours
	ours1.mu.RUnlock()
	read := r.ReadIndex(0)
	if err := read.Error(); err != nil {
		t.Fatalf("follower read under a leader of ours: %v", err)
	}
	if read.Index() < ack.index {
		t.Fatalf("read index %d is before the completed write at %d", read.Index(), ack.index)
	}
	if got := ours1.currentFSM().lastIndex(); got < ack.index {
		t.Fatalf("the follower's FSM is at %d after the read, behind the write at %d", got, ack.index)
	}
	last = c.mustSubmit("last")
	c.checkSameHistory(last.index)
}
