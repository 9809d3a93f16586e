package fuzzy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/quorumkit/raft"
)

// user-restore: Raft.Restore called on the leader with a state of the
// harness's making, often just as the leadership changes (a transfer, a
// crash or an isolation of the leader begins).
//
// How it is modelled:
//
//   - The user's snapshot is a kvSnapshotFile whose Restore field names
//     the restore (an ID unique to the run); its keys get values unique to
//     the run, or are left out (deleted). The library stores it at an
//     index of its choosing, R, above the leader's log; the disk sees it
//     land with that index (checker.onUserSnapshotStored), and every FSM
//     that restores it, the leader's or a follower's through an installed
//     snapshot, learns R from there.
//   - Every FSM knows which user restore its state descends from (its
//     base: set by restoring a user's snapshot, carried in the snapshots
//     it takes and restored from them). Every incarnation that applies a
//     committed command must apply it on the same base; one that applies
//     it on top of a restore the others never had, or without one they
//     had, has diverged (state machine safety).
//   - The restore counts as committed at R once Restore returned nil (its
//     no-op after R committed), or once a command was applied on top of
//     it by every incarnation that applied that command. A committed
//     restore is a position of the log of its own: no command may be
//     committed at R, the committed state at R and above starts from the
//     restored state, and every incarnation that goes past R must restore
//     it (or a snapshot above it) on the way. Snapshots are checked
//     against that state once the run is over, when every restore's fate
//     is known.
//   - A server that restarts loads its newest snapshot, which may be a
//     restore its cluster never committed (it led, adopted the restore,
//     lost the leadership and crashed). A leader's snapshot of the
//     committed history may then replace it, below its index: that is the
//     one restore allowed to take an FSM back, and only if the restore
//     never committed (checkStartReplacementsLocked).
//   - In the history, a restore is a write of every client key at once (the
//     value it sets, or a delete), called when Restore is called and
//     returning when it returns nil: it takes effect somewhere between.
//     The linearizability check goes key by key, so the restore is checked
//     per key, not as one atomic write of all of them. Restore answered
//     ErrNotLeader, ErrLeadershipTransferInProgress
//     or "cannot restore snapshot now" (a configuration change not yet
//     applied) did not take effect; any other error, ErrEnqueueTimeout
//     included (it also answers a no-op that did not commit in time),
//     leaves it unknown (it may take effect at any time after its call,
//     or never), as for a client's write. A client write that Restore
//     aborted (ErrAbortedByRestore) is unknown too: another leader may
//     have it and commit it.

// restoreClient is the porcupine client ID of user restores, apart from
// the clients'.
const restoreClient = 1 << 20

// userRestoreRec is one user restore.
type userRestoreRec struct {
	id    uint64
	state map[string]string
	// index and term are where its snapshot landed; 0 until it did.
	index, term uint64
	// why says why it counts as committed; "" while it does not.
	why string
}

// restoreBook tracks the user restores. Guarded by checker.mu.
type restoreBook struct {
	byID map[uint64]*userRestoreRec
	next uint64
	// at maps an index to the committed restore there, once settled.
	at map[uint64]*userRestoreRec
	// baseAt maps a command's index to the base it was first applied on;
	// disputed holds the indexes applied on different bases.
	baseAt   map[uint64]appliedBase
	disputed map[uint64]bool
	// reported holds the incarnations a divergence was reported for.
	reported map[string]bool
	// replacedAtStart lists the user restores loaded at start that a
	// later restore took back (checker.onRestoreLocked).
	replacedAtStart []startReplacement
}

// startReplacement is a user restore, loaded by incarnation inc as it
// started at index from, that a restore of a state at index to, below it,
// replaced.
type startReplacement struct {
	inc      string
	id       uint64
	from, to uint64
}

// checkStartReplacementsLocked reports every user restore loaded at start
// and replaced by an older state although it committed: only a restore
// the cluster never committed may be dropped that way. It runs after
// settleLocked, once every restore's fate is known. The caller holds c.mu.
func (b *restoreBook) checkStartReplacementsLocked(c *checker) {
	for _, rep := range b.replacedAtStart {
		if r := b.byID[rep.id]; r != nil && r.why != "" {
			c.violationLocked("%s loaded user restore %d at index %d as it started, which committed (%s), then restored a snapshot whose last command is at index %d",
				rep.inc, rep.id, rep.from, r.why, rep.to)
		}
	}
}

// appliedBase is the base one incarnation applied a command on.
type appliedBase struct {
	base uint64
	inc  string
}

func newRestoreBook() restoreBook {
	return restoreBook{
		byID:     make(map[uint64]*userRestoreRec),
		at:       make(map[uint64]*userRestoreRec),
		baseAt:   make(map[uint64]appliedBase),
		disputed: make(map[uint64]bool),
		reported: make(map[string]bool),
	}
}

// newUserRestore registers a restore whose state build returns, given
// the restore's ID, and returns the ID and the state.
func (c *checker) newUserRestore(build func(id uint64) map[string]string) (uint64, map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := &c.restores
	b.next++
	r := &userRestoreRec{id: b.next, state: build(b.next)}
	b.byID[r.id] = r
	return r.id, r.state
}

// onUserSnapshotStored records where a user's snapshot landed on a disk.
func (c *checker) onUserSnapshotStored(id raft.ServerID, meta *raft.SnapshotMeta, file kvSnapshotFile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.restores.byID[file.Restore]
	switch {
	case r == nil:
		c.violationLocked("%s stored snapshot %s of an unknown user restore %d", id, meta.ID, file.Restore)
	case !maps.Equal(r.state, file.Data):
		c.violationLocked("%s stored snapshot %s of user restore %d holding %v, but the user gave %v", id, meta.ID, r.id, file.Data, r.state)
	case r.index == 0:
		r.index, r.term = meta.Index, meta.Term
	case r.index != meta.Index || r.term != meta.Term:
		c.violationLocked("%s stored user restore %d at (%d, %d), but it landed at (%d, %d) before",
			id, r.id, meta.Index, meta.Term, r.index, r.term)
	}
}

// onUserRestored records that incarnation inc's FSM restored user restore
// id, as it started when atStart is set, and returns the index it stands
// at.
func (c *checker) onUserRestored(inc string, id uint64, atStart bool) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.restores.byID[id]
	if r == nil || r.index == 0 {
		c.violationLocked("%s restored user restore %d, whose snapshot never landed on a disk", inc, id)
		return 0, false
	}
	startUser := uint64(0)
	if atStart {
		startUser = id
	}
	c.onRestoreLocked(inc, r.index, startUser)
	return r.index, true
}

// restoreReturned records that Restore of id returned nil.
func (c *checker) restoreReturned(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.restores.byID[id]; r != nil && r.why == "" {
		r.why = "Restore returned nil"
	}
}

// onApplyLocked notes that inc applied the committed command l on a state
// that descends from user restore base. Every incarnation that applies a
// command must apply it on the same state, so on the same base: one that
// applied it on top of a restore the others never had (or without one they
// had) diverged. A command applied on top of a restore, by everyone who
// applied it, commits the restore (settleLocked). The caller holds c.mu.
func (b *restoreBook) onApplyLocked(c *checker, inc string, l *raft.Log, base uint64) {
	prev, ok := b.baseAt[l.Index]
	switch {
	case !ok:
		b.baseAt[l.Index] = appliedBase{base: base, inc: inc}
	case prev.base != base && !b.disputed[l.Index]:
		b.disputed[l.Index] = true
		// One report per incarnation: every command after the first
		// disputed one would repeat it.
		if b.reported[inc] {
			return
		}
		b.reported[inc] = true
		c.violationLocked("state machine safety: %s applied index %d on a state descending from %s, %s on one descending from %s",
			inc, l.Index, b.describe(base), prev.inc, b.describe(prev.base))
	}
}

// describe names a base.
func (b *restoreBook) describe(base uint64) string {
	r := b.byID[base]
	if r == nil {
		return "no user restore"
	}
	return fmt.Sprintf("user restore %d (at index %d)", r.id, r.index)
}

// settleLocked decides, once the run is over, which restores committed,
// and checks them: one per index, and no command committed at the same
// index. The caller holds c.mu.
func (b *restoreBook) settleLocked(c *checker) {
	for _, index := range slices.Sorted(maps.Keys(b.baseAt)) {
		ab := b.baseAt[index]
		if r := b.byID[ab.base]; r != nil && r.why == "" && !b.disputed[index] {
			r.why = fmt.Sprintf("index %d was applied on top of it", index)
		}
	}
	clear(b.at)
	for _, id := range slices.Sorted(maps.Keys(b.byID)) {
		r := b.byID[id]
		if r.why == "" || r.index == 0 {
			continue
		}
		if other := b.at[r.index]; other != nil {
			c.violationLocked("state machine safety: user restores %d (%s) and %d (%s) both committed at index %d",
				other.id, other.why, r.id, r.why, r.index)
			continue
		}
		b.at[r.index] = r
		if e, ok := c.committed[r.index]; ok {
			c.violationLocked("state machine safety: user restore %d committed at index %d (%s), where %q (term %d) was applied",
				r.id, r.index, r.why, e.data, e.term)
		}
	}
}

// committedAt returns the committed restore at index, if any.
func (b *restoreBook) committedAt(index uint64) *userRestoreRec { return b.at[index] }

// committed returns the committed restores.
func (b *restoreBook) committed() []*userRestoreRec {
	return slices.Collect(maps.Values(b.at))
}

// restoreCount returns how many restores were made and how many committed.
func (c *checker) restoreCount() (made, committed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.restores.byID), len(c.restores.at)
}

// droppedAtStartCount returns how many user restores loaded at a start
// were replaced by an older committed state (checkStartReplacementsLocked).
func (c *checker) droppedAtStartCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.restores.replacedAtStart)
}

// userRestore calls Restore on the leader with a fresh state.
func (c *cluster) userRestore(a *activeEpisode) bool {
	e := a.ep
	l := c.leader()
	if l == nil {
		c.events.add("skip %v: no leader", e.kind)
		return false
	}
	a.node = l.node.id
	rnd := c.net.rnd
	var keys []string
	keep := make(map[string]bool)
	for i := range c.sched.keys {
		k := fmt.Sprintf("k%d", i)
		keys = append(keys, k)
		keep[k] = rnd.chance(0.7)
	}
	// Its values name the restore, so they are unique to the run.
	id, state := c.check.newUserRestore(func(id uint64) map[string]string {
		state := make(map[string]string)
		for _, k := range keys {
			if keep[k] {
				state[k] = fmt.Sprintf("restore%d-%s", id, k)
			}
		}
		return state
	})
	data, err := json.Marshal(kvSnapshotFile{Restore: id, Data: state})
	if err != nil {
		c.check.violation("encoding user restore %d: %v", id, err)
		return false
	}
	c.events.add("begin %v %d on %s: %v", e.kind, id, l.name, state)
	call := c.hist.stamp()
	c.ops.Go(func() {
		meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: int64(len(data))}
		err := l.raft.Restore(meta, bytes.NewReader(data), changeTimeout)
		how := unknown
		switch {
		case err == nil:
			how = done
			c.check.restoreReturned(id)
			c.stats.restores.Add(1)
			c.events.add("%v %d on %s: restored", e.kind, id, l.name)
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress),
			strings.Contains(err.Error(), "cannot restore snapshot now"):
			how = failed
			c.events.add("%v %d on %s refused: %v", e.kind, id, l.name, err)
		default:
			c.events.add("%v %d on %s: outcome unknown: %v", e.kind, id, l.name, err)
		}
		ret := c.hist.stamp()
		if how == failed {
			c.hist.record(restoreClient+int(id), kvInput{Op: opRestore}, kvOutput{}, call, ret, how)
			return
		}
		for _, k := range keys {
			v, ok := state[k]
			c.hist.record(restoreClient+int(id), kvInput{Op: opRestore, Key: k, Value: v, Exists: ok}, kvOutput{}, call, ret, how)
		}
	})
	return true
}

// uncommittedRestoreMark is in the error a server logs when it stops
// because its log starts from a snapshot the cluster did not commit
// (unconfirmed_snapshot.go in the raft package).
const uncommittedRestoreMark = "which the cluster did not commit"

// wipeMark ends the error of a server that cannot start or go on without
// being wiped and added back.
const wipeMark = "wipe its data and add it back"

// restoreStopWatch passes a server's log lines to the ring and notes when
// the server stops for an uncommitted restore.
type restoreStopWatch struct {
	ring *logRing
	n    *node
}

func (w restoreStopWatch) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(uncommittedRestoreMark)) {
		w.n.uncommittedRestore.Store(true)
	}
	return w.ring.Write(p)
}

// watchingLogger returns n's logger, which writes to the ring and watches
// for a stop for an uncommitted restore (logged as an error, so seen at
// any level up to it).
func (r *logRing) watchingLogger(name string, n *node) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: min(r.level, hclog.Error), Output: restoreStopWatch{r, n}, TimeFn: time.Now})
}

// readmitWiped does what the raft package's README asks of an operator
// for a server that stopped itself holding a user restore the cluster did
// not commit: once the run healed, it is removed from the configuration,
// its disk is wiped, and it is started and added back with the suffrage it
// had. Until then it stayed down (restart).
func (c *cluster) readmitWiped() {
	for _, n := range c.nodes {
		if !n.uncommittedRestore.Load() {
			continue
		}
		if !c.waitFor(recoveryTimeout, func() bool { return c.changing.CompareAndSwap(false, true) }) {
			c.check.violation("liveness: a membership change was not answered within %v of healing\n%s", recoveryTimeout, c.describe())
			return
		}
		err := c.readmit(n)
		c.changing.Store(false)
		if err != nil && c.leader() == nil {
			if why, lost := c.quorumLostToRestoreStops(); lost {
				// What the README's "Recovering a cluster that lost its
				// quorum" asks of an operator; the harness does not play
				// it. Safety is still checked (run_test.go).
				c.quorumStopped = why
				c.stats.quorumLostToStops.Add(1)
				c.events.add("readmit %s: %s; the cluster waits for an operator's recovery", n.id, why)
				return
			}
		}
		if err != nil {
			c.check.violation("liveness: readmitting %s, which stopped holding an uncommitted user restore: %v\n%s", n.id, err, c.describe())
			return
		}
	}
}

// quorumLostToRestoreStops reports whether no leader can be elected
// because servers stopped for an uncommitted user restore (and kept down
// until readmitted) are voters that the newest configuration needs for a
// quorum: the outcome the README describes for a two-voter cluster whose
// restoring leader was deposed. The newest configuration is the one of the
// running server with the longest log (any server that could win holds
// it). It says why.
func (c *cluster) quorumLostToRestoreStops() (string, bool) {
	var newest *incarnation
	for _, n := range c.nodes {
		if inc := c.current(n); inc != nil && (newest == nil || inc.raft.LastIndex() > newest.raft.LastIndex()) {
			newest = inc
		}
	}
	if newest == nil {
		return "", false
	}
	voters, up := 0, 0
	var stopped []raft.ServerID
	for _, s := range members(newest) {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		m := c.node(s.ID)
		switch {
		case m != nil && m.uncommittedRestore.Load():
			stopped = append(stopped, s.ID)
		case m != nil && c.current(m) != nil:
			up++
		}
	}
	if len(stopped) == 0 || up >= voters/2+1 {
		return "", false
	}
	return fmt.Sprintf("quorum lost: voters %v stopped for an uncommitted user restore; %d of the %d voters of %s's configuration run",
		stopped, up, voters, newest.name), true
}

// readmit removes n, wipes it, starts it and adds it back.
func (c *cluster) readmit(n *node) error {
	suffrage, member := raft.Voter, false
	if l := c.awaitLeader(); l != nil {
		for _, s := range members(l) {
			if s.ID == n.id {
				suffrage, member = s.Suffrage, true
			}
		}
	}
	c.events.add("readmit %s (member %v, %v): remove, wipe, start, add", n.id, member, suffrage)
	err := c.changeUntil(func(l *incarnation) raft.IndexFuture {
		if !slices.ContainsFunc(members(l), func(s raft.Server) bool { return s.ID == n.id }) {
			return nil
		}
		return l.raft.RemoveServer(n.id, 0, changeTimeout)
	})
	if err != nil {
		return fmt.Errorf("removing it: %w", err)
	}
	// No server may still count it as a voter once its votes are gone
	// (wipe): one that lags behind a removal may for ever, and the
	// server then stays down, out of the configuration.
	if !c.waitFor(changeTimeout, func() bool { return !c.countedAsVoter(n.id) }) {
		c.events.add("readmit %s: a server still counts it as a voter; it stays down", n.id)
		return nil
	}
	c.wipe(n)
	n.uncommittedRestore.Store(false)
	c.restart(n)
	if !member {
		return nil
	}
	err = c.changeUntil(func(l *incarnation) raft.IndexFuture {
		if slices.ContainsFunc(members(l), func(s raft.Server) bool { return s.ID == n.id && s.Suffrage == suffrage }) {
			return nil
		}
		if suffrage == raft.Voter {
			return l.raft.AddVoter(n.id, n.addr, 0, changeTimeout)
		}
		return l.raft.AddNonvoter(n.id, n.addr, 0, changeTimeout)
	})
	if err != nil {
		return fmt.Errorf("adding it back: %w", err)
	}
	return nil
}

// awaitLeader waits for a leader, for at most recoveryTimeout.
func (c *cluster) awaitLeader() *incarnation {
	var l *incarnation
	c.waitFor(recoveryTimeout, func() bool {
		l = c.leader()
		return l != nil
	})
	return l
}

// changeUntil asks the leader for the change change returns until change
// returns nil (nothing left to do), for at most recoveryTimeout.
func (c *cluster) changeUntil(change func(l *incarnation) raft.IndexFuture) error {
	deadline := time.Now().Add(recoveryTimeout)
	var last error
	for time.Now().Before(deadline) {
		l := c.awaitLeader()
		if l == nil {
			return errors.New("no leader")
		}
		f := change(l)
		if f == nil {
			return nil
		}
		if last = f.Error(); last != nil {
			c.events.add("readmit: %v; retrying", last)
			c.waitFor(heartbeatTimeout, func() bool { return false })
		}
	}
	return fmt.Errorf("not done within %v: %v", recoveryTimeout, last)
}

// passUnconfirmedRestores makes the leader's log reach past every
// server's applied index once the clients stopped, and waits until every
// member caught up with it or stopped. A server whose FSM holds a user
// restore the cluster did not commit has applied past the leader's log,
// and learns that the restore is not the cluster's (and stops) only once
// the leader's log has an entry at its index; until then it refuses the
// entries below it, and its FSM would hold a state that is not the
// cluster's at the end of the run. Barriers move the log on.
func (c *cluster) passUnconfirmedRestores() {
	l := c.awaitLeader()
	if l == nil {
		return
	}
	var ahead uint64
	for _, inc := range c.running() {
		ahead = max(ahead, inc.raft.AppliedIndex())
	}
	if last := l.raft.LastIndex(); ahead > last {
		c.events.add("a server applied up to %d, past the leader %s's log at %d: %d barriers", ahead, l.name, last, ahead-last)
		var f raft.Future
		for range ahead - last {
			f = l.raft.Barrier(changeTimeout)
		}
		if err := f.Error(); err != nil {
			return
		}
	}
	last := l.raft.LastIndex()
	c.waitFor(recoveryTimeout/2, func() bool {
		for _, s := range members(l) {
			inc := c.current(c.node(s.ID))
			if inc != nil && inc.raft.State() != raft.Shutdown && inc.raft.AppliedIndex() < last {
				return false
			}
		}
		return true
	})
	c.reviveSelfStopped()
}
