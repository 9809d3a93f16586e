package interop

import "fmt"

// The failovers of the harness: a leader killed and a winner the test
// chooses, and killed nodes brought back on their stores.

// failOver kills the leader old and makes w, a running follower, win the
// election that follows. It does so without timing tricks: the third node
// is cut off, old commits at least one entry with w alone, then old is
// killed and the third node healed. The third node's log now ends before
// w's, so w never votes for it, and w is the only node that can win the
// next election; the test fails if anyone else wins it.
//
// If leadership moves by itself before old is killed (a loaded machine can
// starve a leader of its lease), failOver heals the third node and reports
// false without killing anyone, so the caller can plan again.
func (c *mixedCluster) failOver(old, w *mixedNode) bool {
	c.t.Helper()
	rest := c.others(old, w)
	if len(rest) != 1 || !rest[0].running() || !w.running() {
		c.t.Fatalf("failOver needs three running nodes; cluster: %s", c.describe())
	}
	third := rest[0]
	c.logf("failing over from %s to %s: cutting %s off; cluster: %s", old, w, third, c.describe())
	third.currentLayer().partition()
	for i := 0; ; i++ {
		ack := c.mustSubmit(fmt.Sprintf("failover-marker-%s-%d", w, i))
		if ack.node != old {
			c.logf("leadership moved from %s to %s by itself; healing %s and planning again", old, ack.node, third)
			third.currentLayer().heal()
			return false
		}
		// The marker committed with w alone. Requests that reached the
		// third node before the cut may still be appended there, but they
		// all precede the marker.
		if last := third.lastIndex(); ack.index > last {
			c.logf("marker at index %d committed; %s's log ends at %d", ack.index, third, last)
			break
		}
		if i == 100 {
			c.t.Fatalf("100 markers committed without passing %s's last index; cluster: %s", third, c.describe())
		}
	}
	term := old.term()
	if old.state() != "Leader" {
		c.logf("%s lost leadership by itself; healing %s and planning again", old, third)
		third.currentLayer().heal()
		return false
	}
	c.logf("killing leader %s (term %d); cluster: %s", old, term, c.describe())
	if _, err := old.stop(); err != nil {
		c.t.Fatal(err)
	}
	c.logf("killed %s; healing %s; cluster: %s", old, third, c.describe())
	third.currentLayer().heal()

	// The first leader of a later term must be w. Once w leads, it may
	// lose leadership by itself like any leader, so only the first one
	// counts.
	var first *mixedNode
	c.eventually(mixedSettle, "a node wins an election after the kill", func() bool {
		if l := c.leader(); l != nil && l.term() > term {
			first = l
		}
		return first != nil
	})
	if first != w {
		c.t.Fatalf("%s won the election although its log ends before %s's; cluster: %s", first, w, c.describe())
	}
	c.logf("%s (%s) leads in term %d", w, w.library(), first.term())
	return true
}

// restart restarts a killed node and waits until it has applied index.
func (c *mixedCluster) restart(n *mixedNode, index uint64) {
	c.t.Helper()
	c.logf("restarting %s on %s with its stores", n, n.addr)
	if err := n.restartAs(n.library(), false); err != nil {
		c.t.Fatal(err)
	}
	c.eventually(mixedSettle, fmt.Sprintf("restarted %s has applied index %d", n, index), func() bool {
		return n.currentFSM().lastIndex() >= index
	})
	c.logf("%s caught up to index %d", n, index)
}

// restartFromSnapshot restarts the killed node n once the leader has
// compacted its log past everything n holds, so that n should catch up
// from a snapshot the leader sends, and checks that it did: its FSM
// restored a snapshot besides the one of its own it restores on start,
// and its snapshot store lists one past its old log. The clients' load,
// which runs until the test finishes it, moves the log on. It returns the
// leader's and n's libraries, or false, having checked only that n caught
// up, if leadership moved while n caught up, since the snapshot may then
// have come from elsewhere. It also returns false if n caught up without
// a snapshot, from entries the leader had read before compacting them,
// having checked that n lost none (checkCaughtUpFromEntries).
func (c *mixedCluster) restartFromSnapshot(n *mixedNode, load *mixedLoad) (mixedInstall, bool) {
	c.t.Helper()
	own, hadOwn, err := n.newestSnapshot()
	if err != nil {
		c.t.Fatal(err)
	}
	reach := max(n.storedLastIndex(), own.Index)
	var l *mixedNode
	c.eventually(mixedSettle, fmt.Sprintf("the leader has compacted its log past index %d, the end of %s's", reach+1, n), func() bool {
		if load.failed() {
			return true
		}
		l = c.leader()
		return l != nil && l.firstIndex() > reach+1
	})
	load.checkNoErrors()
	term := l.term()
	target := max(c.mustSubmit(fmt.Sprintf("before-restarting-%s", n)).index, load.highestAcked())
	leaderSnap, _, _ := l.newestSnapshot()
	c.logf("%s (%s) leads in term %d, its log starts at %d and its newest snapshot is at %d; %s's log ends at %d, its own snapshot is at %d",
		l, l.library(), term, l.firstIndex(), leaderSnap.Index, n, n.storedLastIndex(), own.Index)
	c.restart(n, target)
	if l.state() != "Leader" || l.term() != term {
		c.logf("%s no longer leads in term %d, so %s's snapshot may have come from another node; not counting it", l, term, n)
		return mixedInstall{}, false
	}
	restores := n.currentFSM().restoreLog()
	atStart := 0
	if hadOwn {
		atStart = 1 // both libraries restore the newest stored snapshot in NewRaft
	}
	if len(restores) <= atStart {
		// l read the entries n lacked before compacting them, and sent
		// them once n was back (see harness_catchup_test.go).
		if err := c.checkCaughtUpFromEntries(n, l, reach, target); err != nil {
			c.t.Fatalf("%s caught up to index %d from %s, whose log had started past %s's end at %d, without installing a snapshot, and lost entries doing so: %v; FSM restores %+v; cluster: %s",
				n, target, l, n, reach, err, restores, c.describe())
		}
		c.logf("%s caught up to index %d from %s without installing a snapshot: %s sent it entries after %d that it had read before compacting them; %s's log continues without a gap and its FSM holds %s's commands; not counting it",
			n, target, l, l, reach, n, l)
		return mixedInstall{}, false
	}
	snap, ok, err := n.newestSnapshot()
	if err != nil || !ok || snap.Index <= reach {
		c.t.Fatalf("%s installed a snapshot, but its store lists %+v (%v, %v), not one past index %d", n, snap, ok, err, reach)
	}
	d := mixedInstall{from: l.library(), to: n.library()}
	c.logf("%s installed a snapshot from %s (%s): FSM restores %+v, newest stored snapshot %+v, last_snapshot_index %s",
		n, l, d, restores, snap, n.stats()["last_snapshot_index"])
	return d, true
}
