package fuzzy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/quorumkit/raft"
)

// Operations: what an operator asks of the cluster through the API while
// faults are in force. Each begins at its time in the schedule, on the
// server that leads then (or a chosen one for a user snapshot), and is
// answered on a goroutine of its own, so the schedule goes on meanwhile.
// Errors are normal outcomes (a leader that lost its role, a disk that
// failed, a transfer that timed out); the events say what each did. What
// they must never do is break an invariant or leave the cluster unable to
// recover once the faults heal, which the run checks at its end.

const (
	// changeTimeout is the enqueue timeout of a membership change: how
	// long the leader may take to accept it (it waits until the previous
	// change and an entry of its own term committed).
	changeTimeout = 5 * heartbeatTimeout
	// minVoters is the floor a removal or demotion keeps the voters at,
	// so that the cluster tolerates a fault while the next change is made.
	// It is counted in the leader's latest configuration when the change
	// begins; a change whose outcome was unknown could still commit later
	// and take one more voter away, which leaves a cluster that recovers
	// all the same once every server is back.
	minVoters = 3
	// transferAnswerBound bounds, in fake time, how long a leadership
	// transfer may take to answer: each of its two stages is bounded by an
	// election timeout, and a leader in a transfer refuses writes, so one
	// that never ends would wedge the cluster.
	transferAnswerBound = 30 * heartbeatTimeout
)

// beginOp starts an operation; it returns nil when there was nothing to
// act on (no leader, no server that fits).
func (c *cluster) beginOp(a *activeEpisode) *activeEpisode {
	var ok bool
	switch a.ep.kind {
	case opSnapshot:
		ok = c.userSnapshot(a)
	case opAddVoter, opAddNonvoter, opRemove, opDemote:
		ok = c.changeMembership(a)
	case opTransfer:
		ok = c.transferLeadership(a, false)
	case opTransferOut:
		ok = c.transferOut(a)
	case opUserRestore:
		ok = c.userRestore(a)
	}
	if !ok {
		return nil
	}
	return a
}

// endOp ends an operation: a server whose removal committed may be shut
// down, as an operator decommissions it, unless it was added back since.
// The end of the run restarts it: a removed server that comes back must
// not disrupt the cluster.
func (c *cluster) endOp(a *activeEpisode) {
	if a.ep.kind != opRemove || !a.ep.decommission || !a.succeeded.Load() {
		return
	}
	if l := c.leader(); l != nil && slices.ContainsFunc(l.raft.GetConfiguration().Configuration().Servers,
		func(s raft.Server) bool { return s.ID == a.node }) {
		c.events.add("end %v: %s was added back, leave it running", a.ep.kind, a.node)
		return
	}
	n := c.node(a.node)
	if c.current(n) == nil {
		return
	}
	c.events.add("end %v: shut %s down", a.ep.kind, a.node)
	c.crash(n)
}

// userSnapshot asks a server for a snapshot and maybe reads it back.
func (c *cluster) userSnapshot(a *activeEpisode) bool {
	e := a.ep
	if a.node == "" {
		a.node = c.leaderOrAny(e)
	}
	inc := c.current(c.node(a.node))
	if inc == nil || inc.raft.State() == raft.Shutdown {
		c.events.add("skip %v: %s is down", e.kind, a.node)
		return false
	}
	c.events.add("begin %v on %s", e.kind, inc.name)
	c.ops.Go(func() {
		f := inc.raft.Snapshot()
		err := f.Error()
		if err != nil {
			c.events.add("%v on %s: %v", e.kind, inc.name, err)
			return
		}
		c.stats.userSnapshots.Add(1)
		if !e.open {
			c.events.add("%v on %s: taken", e.kind, inc.name)
			return
		}
		meta, rc, err := f.Open()
		if err != nil {
			// A newer snapshot may have replaced it on the disk, or the
			// server crashed.
			c.events.add("%v on %s: taken, but not opened: %v", e.kind, inc.name, err)
			return
		}
		defer rc.Close()
		data, err := io.ReadAll(rc)
		if err != nil {
			c.check.violation("reading %s's user snapshot %s: %v", inc.name, meta.ID, err)
			return
		}
		if int64(len(data)) != meta.Size {
			c.check.violation("%s's user snapshot %s has %d bytes, but its meta says %d", inc.name, meta.ID, len(data), meta.Size)
		}
		var file kvSnapshotFile
		if err := json.Unmarshal(data, &file); err != nil {
			c.check.violation("%s's user snapshot %s does not decode: %v", inc.name, meta.ID, err)
			return
		}
		c.check.checkSnapshotState(fmt.Sprintf("%s's user snapshot %s, read back", inc.name, meta.ID), meta.Index, file)
		c.stats.openedSnapshots.Add(1)
		c.events.add("%v on %s: taken at index %d and read back", e.kind, inc.name, meta.Index)
	})
	return true
}

// changeMembership asks the leader for a membership change. The harness
// makes one at a time: the next waits until this one is answered (its
// outcome may still be unknown then, see minVoters).
func (c *cluster) changeMembership(a *activeEpisode) bool {
	e := a.ep
	if !c.changing.CompareAndSwap(false, true) {
		c.events.add("skip %v: a membership change is in progress", e.kind)
		return false
	}
	l := c.leader()
	if l == nil {
		c.changing.Store(false)
		c.events.add("skip %v: no leader", e.kind)
		return false
	}
	conf := l.raft.GetConfiguration().Configuration()
	target := c.pickMember(e, conf)
	if target == nil {
		c.changing.Store(false)
		c.events.add("skip %v: no server fits in %v", e.kind, conf.Servers)
		return false
	}
	a.node = target.id
	if (e.kind == opAddVoter || e.kind == opAddNonvoter) && c.current(target) == nil {
		// An operator adds a server that runs.
		c.restart(target)
	}
	c.events.add("begin %v: %s, through %s (configuration %v)", e.kind, target.id, l.name, conf.Servers)
	c.ops.Go(func() {
		defer c.changing.Store(false)
		var f raft.IndexFuture
		switch e.kind {
		case opAddVoter:
			f = l.raft.AddVoter(target.id, target.addr, 0, changeTimeout)
		case opAddNonvoter:
			f = l.raft.AddNonvoter(target.id, target.addr, 0, changeTimeout)
		case opRemove:
			f = l.raft.RemoveServer(target.id, 0, changeTimeout)
		case opDemote:
			f = l.raft.DemoteVoter(target.id, 0, changeTimeout)
		}
		c.changeAnswered(a, e.kind, target, l, f)
	})
	return true
}

// changeAnswered waits for a membership change's answer and records its
// outcome; kind is the change (remove-server for a removed-returns
// episode).
func (c *cluster) changeAnswered(a *activeEpisode, kind faultKind, target *node, l *incarnation, f raft.IndexFuture) {
	err := f.Error()
	switch {
	case err == nil:
		a.succeeded.Store(true)
		c.stats.changes[kind].Add(1)
		if f.Index() == 0 {
			c.check.violation("%v of %s through %s succeeded with index 0", kind, target.id, l.name)
		}
		c.events.add("%v of %s committed at index %d", kind, target.id, f.Index())
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		c.events.add("%v of %s refused: %v", kind, target.id, err)
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown):
		c.events.add("%v of %s: outcome unknown: %v", kind, target.id, err)
	default:
		c.check.violation("%v of %s through %s failed with an unexpected error: %v", kind, target.id, l.name, err)
	}
}

// pickMember chooses the target of a membership change in conf, or nil
// when none fits.
func (c *cluster) pickMember(e *episode, conf raft.Configuration) *node {
	suffrage := make(map[raft.ServerID]raft.ServerSuffrage)
	voters := 0
	for _, s := range conf.Servers {
		suffrage[s.ID] = s.Suffrage
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	var fit []*node
	for _, n := range c.nodes {
		s, member := suffrage[n.id]
		switch e.kind {
		case opAddVoter:
			if !member || s != raft.Voter {
				fit = append(fit, n)
			}
		case opAddNonvoter:
			if !member {
				fit = append(fit, n)
			}
		case opRemove:
			if member && (s != raft.Voter || voters > minVoters) {
				fit = append(fit, n)
			}
		case opDemote:
			if member && s == raft.Voter && voters > minVoters {
				fit = append(fit, n)
			}
		}
	}
	if len(fit) == 0 {
		return nil
	}
	return fit[e.pick%len(fit)]
}

// transferLeadership asks the leader to hand over leadership, to a server
// it chooses or to a named member (which may be a non-voter: the leader
// must cope). With activate set, it puts a in force on the network once
// a.node is final and before the request goes out (a late-timeout-now
// episode must be in force when the TimeoutNow is sent): the network's
// goroutines read an active episode's fields, so they must not change
// after it is activated.
func (c *cluster) transferLeadership(a *activeEpisode, activate bool) bool {
	e := a.ep
	l := c.leader()
	if l == nil {
		c.events.add("skip %v: no leader", e.kind)
		return false
	}
	var target *node
	if e.toServer {
		var others []*node
		for _, s := range l.raft.GetConfiguration().Configuration().Servers {
			if s.ID != l.node.id {
				others = append(others, c.node(s.ID))
			}
		}
		if len(others) == 0 {
			c.events.add("skip %v: %s is alone", e.kind, l.name)
			return false
		}
		target = others[e.pick%len(others)]
		// The network reads a.node under its lock; an episode that is
		// already in force must not change it without the lock.
		c.net.mu.Lock()
		a.node = target.id
		c.net.mu.Unlock()
		c.events.add("begin %v: %s to %s", e.kind, l.name, target.id)
	} else {
		c.events.add("begin %v: %s to its choice", e.kind, l.name)
	}
	if activate {
		c.net.activate(a)
	}
	c.ops.Go(func() {
		var f raft.Future
		if target != nil {
			f = l.raft.LeadershipTransferToServer(target.id, target.addr)
		} else {
			f = l.raft.LeadershipTransfer()
		}
		err, answered := wait(f, transferAnswerBound)
		switch {
		case !answered:
			if l.raft.State() != raft.Shutdown {
				c.check.violation("liveness: the leadership transfer from %s did not answer within %v", l.name, transferAnswerBound)
			}
		case err == nil:
			c.stats.transfers.Add(1)
			c.events.add("%v from %s: done", e.kind, l.name)
		default:
			c.events.add("%v from %s: %v", e.kind, l.name, err)
		}
	})
	return true
}

// transferOut asks the leader to hand its leadership to a non-voter of
// its configuration, or else to a server outside it. The library must
// refuse: a nil answer is a violation. The harness makes no membership
// change meanwhile, so the target cannot become a voter under it.
func (c *cluster) transferOut(a *activeEpisode) bool {
	e := a.ep
	if !c.changing.CompareAndSwap(false, true) {
		c.events.add("skip %v: a membership change is in progress", e.kind)
		return false
	}
	l := c.leader()
	if l == nil {
		c.changing.Store(false)
		c.events.add("skip %v: no leader", e.kind)
		return false
	}
	conf := members(l)
	var nonvoters, outside []*node
	for _, n := range c.nodes {
		i := slices.IndexFunc(conf, func(s raft.Server) bool { return s.ID == n.id })
		switch {
		case i < 0:
			outside = append(outside, n)
		case conf[i].Suffrage != raft.Voter:
			nonvoters = append(nonvoters, n)
		}
	}
	fit := nonvoters
	if len(fit) == 0 {
		fit = outside
	}
	if len(fit) == 0 {
		c.changing.Store(false)
		c.events.add("skip %v: every server is a voter", e.kind)
		return false
	}
	target := fit[e.pick%len(fit)]
	a.node = target.id
	c.events.add("begin %v: %s to %s", e.kind, l.name, target.id)
	c.ops.Go(func() {
		defer c.changing.Store(false)
		f := l.raft.LeadershipTransferToServer(target.id, target.addr)
		err, answered := wait(f, transferAnswerBound)
		switch {
		case !answered:
			if l.raft.State() != raft.Shutdown {
				c.check.violation("liveness: the leadership transfer from %s to non-voter %s did not answer within %v",
					l.name, target.id, transferAnswerBound)
			}
		case err == nil:
			c.check.violation("the leadership transfer from %s to %s, not a voter in %v, succeeded", l.name, target.id, conf)
		default:
			c.events.add("%v from %s to %s: %v", e.kind, l.name, target.id, err)
		}
	})
	return true
}

// members returns the servers of the configuration inc's server holds
// latest.
func members(inc *incarnation) []raft.Server {
	return inc.raft.GetConfiguration().Configuration().Servers
}
