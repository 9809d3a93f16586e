package fuzzy

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/quorumkit/raft"
)

// Faults aimed at a server's role, each built to reach one place of the
// write path or of leadership:
//
//   - campaign-write-error: the leader is cut off, so that the others
//     elect a new one while every disk is slow; a log write that starts or
//     completes while its server is a candidate, or a leader of less than
//     three election timeouts, fails (and may have landed anyway).
//   - wipe-disk: a non-voter (or, when there is none, a server outside the
//     configuration) loses its whole disk and comes back empty under the
//     same ID; the leader must repair its log.
//   - removed-returns: a voter is cut off for many election timeouts (its
//     term climbs unless it runs pre-vote), removed half-way through, and
//     let back soon after: it must not take the leadership away.
//   - stall-leader: the leader's log writes block for longer than
//     LogWriteStallTimeout, then complete.
//   - late-timeout-now: a leadership transfer whose TimeoutNow is
//     delivered again, late, to its target or to another server.
//   - slow-fsm: FSMs take time per entry while an open-loop load writes
//     without waiting for answers.

// isTargeted reports whether kind is one of the faults in this file.
func isTargeted(kind faultKind) bool {
	return kind >= faultCampaignWrite && kind < firstOp
}

// stallTimeout is the servers' LogWriteStallTimeout.
const stallTimeout = 10 * heartbeatTimeout

// beginTargeted starts a fault of this file; nil when it had nothing to
// act on.
func (c *cluster) beginTargeted(a *activeEpisode) *activeEpisode {
	e := a.ep
	switch e.kind {
	case faultCampaignWrite:
		// a.node stays empty: the slow disks are every server's.
		target := c.leaderOrAny(e)
		a.cut = make(map[link]bool)
		for _, x := range c.sched.all() {
			if x != target {
				a.cut[link{x, target}] = true
				a.cut[link{target, x}] = true
			}
		}
		c.events.add("begin %v: %s cut off", e.kind, target)
	case faultWipe:
		n := c.pickWipe(e)
		if n == nil {
			c.events.add("skip %v: no non-voter and no server outside the configuration", e.kind)
			return nil
		}
		a.node = n.id
		c.crash(n)
		c.wipe(n)
		c.events.add("begin %v: %s wiped", e.kind, n.id)
		return a
	case faultRemovedReturns:
		if !c.beginRemovedReturns(a) {
			return nil
		}
	case faultStallLeader:
		a.node = c.leaderOrAny(e)
		c.events.add("begin %v: %s's log writes block for %v", e.kind, a.node, e.length)
	case faultLateTimeoutNow:
		c.events.add("begin %v", e)
		if !c.transferLeadership(a, true) {
			return nil
		}
		return a
	case faultSlowFSM:
		c.events.add("begin %s", e)
		stop := make(chan struct{})
		a.stop = stop
		c.net.activate(a)
		c.ops.Go(func() { c.openLoop(e.rate, stop) })
		return a
	}
	c.net.activate(a)
	return a
}

// endTargeted ends a fault of this file.
func (c *cluster) endTargeted(a *activeEpisode) {
	c.events.add("end %v", a.ep.kind)
	c.net.deactivate(a)
	switch a.ep.kind {
	case faultWipe:
		if n := c.node(a.node); c.current(n) == nil {
			c.restart(n)
		}
	case faultSlowFSM:
		close(a.stop)
	}
}

// campaigning reports whether id is a candidate, or a leader since less
// than three election timeouts: the servers a campaign-write-error fails.
func (c *cluster) campaigning(id raft.ServerID) bool {
	n := c.node(id)
	inc := c.current(n)
	if inc == nil || inc.raft == nil {
		return false
	}
	switch inc.raft.State() {
	case raft.Candidate:
		return true
	case raft.Leader:
		since := inc.leaderSince.Load()
		return since != 0 && time.Since(time.Unix(0, since)) < 3*heartbeatTimeout
	}
	return false
}

// pickWipe chooses the server a wipe-disk episode wipes: a non-voter of
// the leader's configuration, or else a server outside it. A voter is
// never wiped: its lost vote could elect a leader that lacks committed
// entries, which the library documents by requiring a wiped voter to be
// removed and added back (README.md); removing and adding it back is what
// remove-server and add-voter already do.
func (c *cluster) pickWipe(e *episode) *node {
	l := c.leader()
	if l == nil {
		return nil
	}
	conf := members(l)
	var nonvoters, outside []*node
	for _, n := range c.nodes {
		i := slices.IndexFunc(conf, func(s raft.Server) bool { return s.ID == n.id })
		switch {
		case c.countedAsVoter(n.id):
			// Some server still counts it as a voter (it lags behind the
			// removal or demotion): wiping it would lose the votes and the
			// log that server's quorums rely on, which Raft cannot survive
			// (soak seed 7319672431220895631: a removed server that lagged
			// behind two removals won term 7 with the vote of the other,
			// wiped, while the cluster's leader held term 7 too).
		case i < 0:
			outside = append(outside, n)
		case conf[i].Suffrage != raft.Voter && n.id != l.node.id:
			nonvoters = append(nonvoters, n)
		}
	}
	if len(nonvoters) > 0 {
		return nonvoters[e.pick%len(nonvoters)]
	}
	if len(outside) > 0 {
		return outside[e.pick%len(outside)]
	}
	return nil
}

// countedAsVoter reports whether a server other than id counts id as a
// voter in its latest configuration: a running one as it says, one that
// is down as its disk says (it restarts with that configuration).
func (c *cluster) countedAsVoter(id raft.ServerID) bool {
	voter := func(conf []raft.Server) bool {
		return slices.ContainsFunc(conf, func(s raft.Server) bool { return s.ID == id && s.Suffrage == raft.Voter })
	}
	for _, n := range c.nodes {
		if n.id == id {
			continue
		}
		if inc := c.current(n); inc != nil {
			if voter(members(inc)) {
				return true
			}
			continue
		}
		if voter(c.diskOf(n).latestConfiguration()) {
			return true
		}
	}
	return false
}

// wipe gives n an empty disk. The checker forgets the votes and terms of
// its earlier life: a server with an empty disk is a new voter as far as
// terms go, which is why only a non-voter or a non-member is wiped.
func (c *cluster) wipe(n *node) {
	d := newDisk(n.id, c.net.disk, c.check)
	d.logFaults = c.net
	c.mu.Lock()
	n.disk = d
	c.mu.Unlock()
	n.maxTerm.Store(0)
	c.check.forgetVotes(n.id)
	c.stats.wipes.Add(1)
}

// beginRemovedReturns cuts a voter off (restarting it with the episode's
// pre-vote setting), and removes it half-way through the episode; the
// episode's end lets it back.
func (c *cluster) beginRemovedReturns(a *activeEpisode) bool {
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
	var voters []*node
	for _, s := range members(l) {
		if s.Suffrage == raft.Voter {
			voters = append(voters, c.node(s.ID))
		}
	}
	// The server is cut off already, so its removal leaves the cluster
	// as fault-tolerant as it was; a three-voter cluster goes down to two.
	if len(voters) < minVoters {
		c.changing.Store(false)
		c.events.add("skip %v: only %d voters", e.kind, len(voters))
		return false
	}
	others := slices.DeleteFunc(voters, func(n *node) bool { return n == l.node })
	target := others[e.pick%len(others)]
	a.node = target.id
	a.cut = make(map[link]bool)
	for _, x := range c.sched.all() {
		if x != target.id {
			a.cut[link{x, target.id}] = true
			a.cut[link{target.id, x}] = true
		}
	}
	c.net.activate(a)
	c.setPreVote(target.id, e.preVote)
	if c.current(target) != nil {
		c.crash(target)
	}
	c.restart(target)
	c.events.add("begin %v: %s cut off, pre-vote=%v", e.kind, target.id, e.preVote)
	c.ops.Go(func() {
		defer c.changing.Store(false)
		time.Sleep(e.length / 2)
		// Other faults may have left no leader just then: wait a little.
		var l *incarnation
		c.waitFor(e.length/4, func() bool {
			l = c.leader()
			return l != nil
		})
		if l == nil {
			c.events.add("%v: no leader to remove %s", e.kind, target.id)
			return
		}
		c.events.add("%v: remove %s through %s", e.kind, target.id, l.name)
		c.changeAnswered(a, opRemove, target, l, l.raft.RemoveServer(target.id, 0, changeTimeout))
		// Let it back soon after its removal, while the leader may still
		// be retiring its replication to it.
		time.Sleep(c.net.rnd.duration(0, 3*heartbeatTimeout))
		c.events.add("%v: let %s back", e.kind, target.id)
		watch := c.watchRemoved(a)
		c.net.deactivate(a)
		// The watch runs while changing is still set, so that no other
		// membership change adds the server back meanwhile: once a member
		// again, its term would rightly depose the leader.
		watch()
	})
	return true
}

// watchRemoved runs as a removed-returns episode lets its server back,
// soon after its removal; the function it returns watches, and returns
// when the watch is over.
// When its removal committed and its term has climbed well above every
// member's (it ran without pre-vote), no member may reach that term in the
// next few election timeouts: the cluster's own elections cannot raise its
// terms that fast (one per election timeout at most), so a member that
// does took it from the removed server, which has deposed a leader.
func (c *cluster) watchRemoved(a *activeEpisode) (watch func()) {
	none := func() {}
	if !a.succeeded.Load() {
		return none
	}
	removed := c.current(c.node(a.node))
	l := c.leader()
	if removed == nil || l == nil {
		c.events.add("%v: %s down or no leader, nothing to watch", a.ep.kind, a.node)
		return none
	}
	high := removed.raft.CurrentTerm()
	var memberMax uint64
	var watched []*node
	for _, s := range members(l) {
		if s.ID == a.node {
			c.events.add("%v: %s was added back", a.ep.kind, a.node)
			return none
		}
		n := c.node(s.ID)
		watched = append(watched, n)
		if inc := c.current(n); inc != nil {
			memberMax = max(memberMax, inc.raft.CurrentTerm())
		}
	}
	const margin = 10
	const window = 5 * heartbeatTimeout
	if high < memberMax+margin {
		c.events.add("%v: %s comes back in term %d, members at most in term %d", a.ep.kind, removed.name, high, memberMax)
		return none
	}
	c.events.add("%v: %s comes back in term %d, members at most in term %d: watching", a.ep.kind, removed.name, high, memberMax)
	lagging := c.laggingBehindRemovals()
	return func() {
		var hit *incarnation
		c.waitFor(window, func() bool {
			for _, n := range watched {
				if inc := c.current(n); inc != nil && inc.raft.CurrentTerm() >= high {
					hit = inc
					return true
				}
			}
			return false
		})
		if hit != nil {
			// A member that lags behind the removal (it was down or cut
			// off when the removal committed) may take the removed
			// server's term: the case checkStable excuses too
			// (laggingBehindRemovals).
			for _, p := range append(lagging, c.laggingBehindRemovals()...) {
				if p.removed == a.node {
					c.events.add("%v: %s reached term %d, excused: %s", a.ep.kind, hit.name, hit.raft.CurrentTerm(), p.why)
					return
				}
			}
			c.check.violation("removed server %s came back in term %d (members were at most in term %d) and %s reached term %d within %v: "+
				"a server outside the configuration deposed the leader", removed.name, high, memberMax, hit.name, hit.raft.CurrentTerm(), window)
		}
	}
}

// onLeaderChecks runs as inc becomes leader: a non-voter never leads, and
// a server whose log writes have been stalled past LogWriteStallTimeout
// does not stand for election.
//
// A server may lead while its latest configuration removes or demotes it,
// as long as it was a voter in the configuration that one replaces: it
// holds that change, not committed, and may be the only server that can
// win an election (the campaign rule in election.go); it leads until the
// change commits. So a leader must be a voter in its latest configuration
// or in the one before it on its disk (the latest entry may not have
// landed yet, so the newest two on the disk are looked at).
func (c *cluster) onLeaderChecks(inc *incarnation, term uint64) {
	inc.leaderSince.Store(time.Now().UnixNano())
	isVoter := func(conf []raft.Server) bool {
		return slices.ContainsFunc(conf, func(s raft.Server) bool { return s.ID == inc.node.id && s.Suffrage == raft.Voter })
	}
	conf := members(inc)
	if !isVoter(conf) {
		onDisk := c.diskOf(inc.node).newestConfigurations(2)
		if !slices.ContainsFunc(onDisk, isVoter) {
			c.check.violation("%s leads term %d but is not a voter in its latest configuration %v, nor in the one before it (newest on its disk: %v)",
				inc.name, term, conf, onDisk)
		} else {
			c.events.add("%s leads term %d holding the uncommitted change that leaves it out of the voters (%v)", inc.name, term, conf)
		}
	}
	if d := c.diskOf(inc.node).stalledFor(); d > stallTimeout {
		c.check.violation("%s leads term %d while one of its log writes has been stalled for %v (LogWriteStallTimeout %v)",
			inc.name, term, d, stallTimeout)
	}
}

// lateTimeoutNow delivers a TimeoutNow again after up to the active
// late-timeout-now episode's delay, to its target or to another server;
// it does nothing when no such episode is active. send delivers the copy
// to an address.
func (c *cluster) lateTimeoutNow(from raft.ServerID, target raft.ServerAddress, send func(raft.ServerAddress) error) {
	delay := c.net.lateTimeoutNowDelay()
	if delay == 0 {
		return
	}
	rnd := c.net.rnd
	wait := rnd.duration(0, delay)
	to := target
	if rnd.chance(0.5) {
		all := c.sched.all()
		to = c.node(all[rnd.intN(len(all))]).addr
	}
	c.net.goFlight(func() {
		time.Sleep(wait)
		toID := c.net.id(to)
		if !c.net.linkUp(from, toID) {
			return
		}
		inc := c.current(c.node(toID))
		var before uint64
		if inc != nil {
			before = inc.raft.CurrentTerm()
		}
		err := send(to)
		c.stats.lateTimeoutNows.Add(1)
		if inc != nil && err == nil && inc.raft.CurrentTerm() > before {
			c.stats.lateTimeoutNowsObeyed.Add(1)
			c.events.add("a TimeoutNow from %s delivered %v late to %s was obeyed (term %d → %d)",
				from, wait, inc.name, before, inc.raft.CurrentTerm())
		}
	})
}

// openLoop writes to keys no client reads, at rate writes per second,
// without waiting for answers, until stop closes. The writes are not in
// the history; their entries are checked like every other (apply order,
// snapshots, convergence).
func (c *cluster) openLoop(rate int, stop <-chan struct{}) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	seq := 0
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		l := c.leader()
		if l == nil {
			continue
		}
		seq++
		data, err := json.Marshal(kvCommand{Op: opPut, Key: "load", Value: strconv.Itoa(seq)})
		if err != nil {
			panic(err)
		}
		f := l.raft.Apply(data, enqueueTimeout)
		c.stats.openLoopWrites.Add(1)
		c.ops.Go(func() {
			if err := f.Error(); err != nil {
				c.stats.openLoopFailed.Add(1)
			}
		})
		if b, ok := heldBytes(l); ok {
			for {
				old := c.stats.maxHeldBytes.Load()
				if b <= old || c.stats.maxHeldBytes.CompareAndSwap(old, b) {
					break
				}
			}
		}
	}
}

// heldBytes returns the bytes a server holds in committed-but-unapplied
// and accepted-but-unwritten entries, and whether the library exposes
// them. It does not yet: this is the hook where, once it does, a slow-fsm
// run records the most held and checks it against the configured bounds.
func heldBytes(_ *incarnation) (int64, bool) { return 0, false }
