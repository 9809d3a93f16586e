package fuzzy

import (
	"slices"
	"strings"
	"time"

	"github.com/quorumkit/raft"
)

// Playing a schedule: each episode begins at its time and ends after its
// length. Network episodes are rules the network model applies while they
// are active; crashes act on the cluster. Episodes that target "the
// leader" find it when they begin, and the event log says whom they hit.

// timelineStep is an episode beginning or ending.
type timelineStep struct {
	at    time.Duration
	ep    *episode
	begin bool
}

// play runs the schedule from start, returning when its last episode
// ended.
func (c *cluster) play(start time.Time) {
	var steps []timelineStep
	for _, e := range c.sched.episodes {
		steps = append(steps, timelineStep{e.at, e, true}, timelineStep{e.at + e.length, e, false})
	}
	slices.SortStableFunc(steps, func(a, b timelineStep) int { return int(a.at - b.at) })
	active := make(map[*episode]*activeEpisode)
	for _, s := range steps {
		if d := time.Until(start.Add(s.at)); d > 0 {
			time.Sleep(d) // fake time: lets the schedule play out
		}
		if s.begin {
			active[s.ep] = c.begin(s.ep)
			continue
		}
		if a := active[s.ep]; a != nil {
			c.end(a)
			delete(active, s.ep)
		}
	}
}

// begin starts an episode; it returns nil for one that had nothing to act
// on (a crash of a server that is already down).
func (c *cluster) begin(e *episode) *activeEpisode {
	a := &activeEpisode{ep: e, start: time.Now(), node: e.node}
	if e.kind >= firstOp {
		return c.beginOp(a)
	}
	if isTargeted(e.kind) {
		return c.beginTargeted(a)
	}
	switch e.kind {
	case faultPartition:
		a.cut = make(map[link]bool)
		in := make(map[raft.ServerID]bool)
		for _, id := range e.group {
			in[id] = true
		}
		for _, x := range c.sched.all() {
			for _, y := range c.sched.all() {
				if in[x] != in[y] {
					a.cut[link{x, y}] = true
				}
			}
		}
	case faultOneWay, faultFlap:
		a.cut = make(map[link]bool)
		for _, l := range e.links {
			a.cut[l] = true
		}
	case faultIsolateLeader, faultIsolateInbound:
		target := c.leaderOrAny(e)
		a.node = target
		a.cut = make(map[link]bool)
		for _, x := range c.sched.all() {
			if x == target {
				continue
			}
			a.cut[link{x, target}] = true
			if e.kind == faultIsolateLeader {
				a.cut[link{target, x}] = true
			}
		}
		c.events.add("begin %v: %s", e.kind, target)
	case faultCrash, faultCrashLeader:
		if e.kind == faultCrashLeader {
			a.node = c.leaderOrAny(e)
		}
		n := c.node(a.node)
		if c.current(n) == nil {
			c.events.add("skip %v: %s is already down", e.kind, a.node)
			return nil
		}
		c.events.add("begin %v: %s", e.kind, a.node)
		c.crash(n)
		return a
	case faultCrashMidWrite:
		// Slow every disk so that writes are in flight, wait for some to
		// start, then crash.
		n := c.node(a.node)
		if c.current(n) == nil {
			c.events.add("skip %v: %s is already down", e.kind, a.node)
			return nil
		}
		slow := &activeEpisode{ep: &episode{kind: faultSlowDisk, delay: e.delay}}
		c.net.activate(slow)
		time.Sleep(e.delay / 2)
		c.events.add("begin %v: %s", e.kind, a.node)
		c.crash(n)
		c.net.deactivate(slow)
		return a
	}
	if e.kind != faultIsolateLeader && e.kind != faultIsolateInbound {
		c.events.add("begin %s", e)
	}
	c.net.activate(a)
	return a
}

// end ends an episode.
func (c *cluster) end(a *activeEpisode) {
	if a.ep.kind >= firstOp {
		c.endOp(a)
		return
	}
	if isTargeted(a.ep.kind) {
		c.endTargeted(a)
		return
	}
	switch a.ep.kind {
	case faultDiskError:
		c.events.add("end %v", a.ep.kind)
		c.net.deactivate(a)
		c.reviveSelfStopped()
		return
	case faultCrash, faultCrashLeader, faultCrashMidWrite:
		n := c.node(a.node)
		if c.current(n) == nil {
			c.events.add("end %v: restart %s", a.ep.kind, n.id)
			c.restart(n)
		}
		return
	}
	c.events.add("end %v", a.ep.kind)
	c.net.deactivate(a)
}

// restart starts n again, recording a failure to start as a violation.
func (c *cluster) restart(n *node) {
	if n.uncommittedRestore.Load() {
		// As the raft package's README says of such a server: it is
		// wiped and added back, once the run heals (readmitWiped).
		c.events.add("%s stays down: it stopped holding a user restore the cluster did not commit", n.id)
		return
	}
	if err := c.start(n); err != nil {
		if strings.Contains(err.Error(), wipeMark) {
			// Its store holds no snapshot that fits its log
			// (restoreSnapshotOnStart in the raft package).
			c.events.add("%s stays down: %v", n.id, err)
			n.uncommittedRestore.Store(true)
			return
		}
		c.check.violation("restarting %s: %v", n.id, err)
	}
}

// leaderOrAny returns the current leader, or the episode's own server
// when there is none.
func (c *cluster) leaderOrAny(e *episode) raft.ServerID {
	if l := c.leader(); l != nil {
		return l.node.id
	}
	if e.node != "" {
		return e.node
	}
	all := c.sched.all()
	return all[int(e.at)%len(all)]
}
