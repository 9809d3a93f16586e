package fuzzy

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"

	"github.com/quorumkit/raft"
)

// checker asserts the Raft invariants while a run goes on (Raft paper §5.2,
// §5.3, §5.4, figure 3), from what the nodes report through observers, the
// FSMs and the disks:
//
//   - election safety: at most one leader per term (observers);
//   - state machine safety: no two nodes apply different entries at the
//     same index (FSM hooks), and every incarnation applies the committed
//     commands in index order with none missing, where restoring a
//     snapshot stands for the commands it covers and never goes back
//     (checked at the end);
//   - snapshots hold committed state: every snapshot that lands on a disk
//     (taken locally, by the user or installed from the leader) holds
//     exactly the state that applying the committed commands up to its
//     index gives (disks);
//   - leader completeness: once a leader stored its first entry (the
//     no-op of its term), its log and its snapshots hold every entry
//     applied below it, and nothing of an earlier term was applied above it
//     (disks);
//   - durable terms and votes: a server never grants votes to two
//     candidates in one term, across its restarts too (the transports see
//     every grant), and a restarted server starts from a term no lower than
//     any it had published (the cluster's restarts).
//
// Membership changes need nothing more: with one change at a time and a
// new leader committing an entry of its own term before it changes the
// configuration, each of these holds as it does in a fixed cluster (Raft
// thesis §4.1 and its errata). The end of a run checks the rest against
// the final configuration: its members converge, and servers it left out
// are not waited for.
//
// Violations are collected, not fatal at once, so a run's report shows them
// all with the schedule that led to them.
type checker struct {
	mu sync.Mutex
	// The fields below are guarded by mu.
	failures []string
	// leaders maps a term to the one node that led in it.
	leaders map[uint64]raft.ServerID
	// committed maps an index to the command entry applied there.
	committed map[uint64]appliedEntry
	// votes maps a server and a term to the candidate it granted its vote.
	votes map[raft.ServerID]map[uint64]string
	// applied lists, per incarnation, the commands its FSM applied and the
	// snapshots it restored, in order.
	applied map[string][]applyEvent
	// decoded caches the commands of committed entries, by index.
	decoded map[uint64]kvCommand
	// replay is the state the committed commands up to replayAt give, and
	// replayLast the last command index at or below it; snapshots, mostly
	// taken at growing indexes, are checked against it.
	replay     map[string]string
	replayAt   uint64
	replayLast uint64
	// snapshots counts the snapshots that landed on disks.
	snapshots int
	// elections lists the elections started (vote requests sent), each
	// (candidate, term) once, in the order they were first sent.
	elections []electionStart
	// electionSeen holds the (candidate, term) pairs in elections.
	electionSeen map[electionStart]bool
	// restores tracks the user restores (restore_test.go).
	restores restoreBook
	// snapshotChecks are the snapshots to check against the committed
	// state once the run is over, when every user restore's fate is known.
	snapshotChecks []snapshotCheck
}

// snapshotCheck is a snapshot whose state checkSnapshots compares with
// the committed state at its index.
type snapshotCheck struct {
	what  string
	index uint64
	file  kvSnapshotFile
}

// electionStart is an election a candidate started: it sent a vote request
// in term. preVote is the candidate's pre-vote setting.
type electionStart struct {
	id      raft.ServerID
	term    uint64
	preVote bool
}

// applyEvent is a command an FSM applied at index, or, when restore is
// set, a snapshot it restored whose last command is at index. startUser
// names the user restore of a snapshot the incarnation loaded as it
// started, 0 for any other event.
type applyEvent struct {
	index     uint64
	restore   bool
	startUser uint64
}

// appliedEntry identifies an entry's content.
type appliedEntry struct {
	term uint64
	data string
}

func newChecker() *checker {
	return &checker{
		leaders:   make(map[uint64]raft.ServerID),
		committed: make(map[uint64]appliedEntry),
		votes:     make(map[raft.ServerID]map[uint64]string),
		applied:   make(map[string][]applyEvent),
		decoded:   make(map[uint64]kvCommand),
		replay:    make(map[string]string),

		electionSeen: make(map[electionStart]bool),
		restores:     newRestoreBook(),
	}
}

// violation records a broken invariant.
func (c *checker) violation(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.violationLocked(format, args...)
}

func (c *checker) violationLocked(format string, args ...any) {
	const maxFailures = 50
	if len(c.failures) < maxFailures {
		c.failures = append(c.failures, fmt.Sprintf(format, args...))
	}
}

// violations returns what was found so far.
func (c *checker) violations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.failures...)
}

// onLeader records that id became leader in term.
func (c *checker) onLeader(id raft.ServerID, term uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if other, ok := c.leaders[term]; ok && other != id {
		c.violationLocked("election safety: %s and %s both led term %d", other, id, term)
		return
	}
	c.leaders[term] = id
}

// onApply records that incarnation inc of a node applied l to a state that
// descends from user restore base (0: none).
func (c *checker) onApply(inc string, l *raft.Log, base uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := appliedEntry{term: l.Term, data: string(l.Data)}
	if prev, ok := c.committed[l.Index]; ok && prev != got {
		c.violationLocked("state machine safety: %s applied %q (term %d) at index %d, where %q (term %d) was applied before",
			inc, got.data, got.term, l.Index, prev.data, prev.term)
	} else if !ok {
		c.committed[l.Index] = got
	}
	seq := c.applied[inc]
	if n := len(seq); n > 0 && seq[n-1].index >= l.Index {
		c.violationLocked("%s applied index %d after index %d", inc, l.Index, seq[n-1].index)
	}
	c.applied[inc] = append(seq, applyEvent{index: l.Index})
	c.restores.onApplyLocked(c, inc, l, base)
}

// onRestore records that incarnation inc restored a snapshot whose last
// command is at index. A restore never takes an FSM back.
func (c *checker) onRestore(inc string, index uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onRestoreLocked(inc, index, 0)
}

// onRestoreLocked is onRestore with mu held; startUser is the user
// restore of a snapshot loaded at start, else 0.
//
// A restore never takes an FSM back, with one exception: an incarnation
// that loaded, as it started, a user restore its cluster never committed
// (its leader adopted it and lost the leadership before the no-op after
// it committed, then crashed) holds that state, unconfirmed, until a
// leader replaces it by a snapshot of the committed history, which may
// lie below it (unconfirmed_snapshot.go in the library). That is recorded
// here and checked once the run is over, when it is known whether the
// restore committed (checkStartReplacements): replacing a committed
// restore by an older state is a violation.
func (c *checker) onRestoreLocked(inc string, index, startUser uint64) {
	seq := c.applied[inc]
	if n := len(seq); n > 0 && seq[n-1].index > index {
		if last := seq[n-1]; last.startUser != 0 {
			c.restores.replacedAtStart = append(c.restores.replacedAtStart,
				startReplacement{inc: inc, id: last.startUser, from: last.index, to: index})
		} else {
			c.violationLocked("%s restored a snapshot whose last command is at index %d after reaching index %d",
				inc, index, seq[n-1].index)
		}
	}
	c.applied[inc] = append(seq, applyEvent{index: index, restore: true, startUser: startUser})
}

// onSnapshotStored checks a snapshot as it lands on server id's disk: its
// state must be the committed state at its index. Every command at or
// below that index was applied somewhere before the snapshot was taken, so
// the checker has seen them all.
func (c *checker) onSnapshotStored(id raft.ServerID, meta *raft.SnapshotMeta, data []byte) {
	c.mu.Lock()
	c.snapshots++
	c.mu.Unlock()
	var file kvSnapshotFile
	if err := json.Unmarshal(data, &file); err != nil {
		c.violation("%s stored snapshot %s, which does not decode: %v", id, meta.ID, err)
		return
	}
	if file.Restore != 0 {
		// A user's snapshot copied by Restore, or installed from a
		// leader that restored it: it holds what the user gave.
		c.onUserSnapshotStored(id, meta, file)
		return
	}
	c.checkSnapshotState(fmt.Sprintf("%s's snapshot %s", id, meta.ID), meta.Index, file)
}

// checkSnapshotState queues the check that file is the committed state at
// index, for checkSnapshots.
func (c *checker) checkSnapshotState(what string, index uint64, file kvSnapshotFile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.snapshotChecks = append(c.snapshotChecks, snapshotCheck{what: what, index: index, file: file})
}

// checkSnapshots checks, once the run is over, every snapshot queued by
// checkSnapshotState, in index order. It runs after checkApplySequences,
// which settles which user restores committed.
func (c *checker) checkSnapshots() {
	c.mu.Lock()
	defer c.mu.Unlock()
	checks := c.snapshotChecks
	c.snapshotChecks = nil
	sort.SliceStable(checks, func(a, b int) bool { return checks[a].index < checks[b].index })
	for _, sc := range checks {
		c.checkSnapshotStateLocked(sc.what, sc.index, sc.file)
	}
}

// checkSnapshotStateLocked checks that file is the committed state at
// index. The caller holds mu.
func (c *checker) checkSnapshotStateLocked(what string, index uint64, file kvSnapshotFile) {
	want, last := c.stateAtLocked(index)
	if file.Index != last {
		c.violationLocked("%s at index %d holds the commands up to index %d, but the last command committed at or below it is at index %d",
			what, index, file.Index, last)
		return
	}
	if len(file.Data) != len(want) || !maps.Equal(file.Data, want) {
		c.violationLocked("%s at index %d holds %v, but the committed commands up to it give %v", what, index, file.Data, want)
	}
}

// stateAtLocked returns the state the committed commands up to index give,
// and the index of the last of them. The caller holds mu.
func (c *checker) stateAtLocked(index uint64) (map[string]string, uint64) {
	if index < c.replayAt {
		clear(c.replay)
		c.replayAt, c.replayLast = 0, 0
	}
	for i := c.replayAt + 1; i <= index; i++ {
		if r := c.restores.committedAt(i); r != nil {
			// A user restore committed here replaces the whole state.
			c.replay = maps.Clone(r.state)
			c.replayLast = i
			continue
		}
		e, ok := c.committed[i]
		if !ok {
			continue
		}
		cmd, ok := c.decoded[i]
		if !ok {
			if err := json.Unmarshal([]byte(e.data), &cmd); err != nil {
				continue // reported when applied
			}
			c.decoded[i] = cmd
		}
		switch cmd.Op {
		case opPut:
			c.replay[cmd.Key] = cmd.Value
		case opDelete:
			delete(c.replay, cmd.Key)
		case opCAS:
			if v, ok := c.replay[cmd.Key]; ok && v == cmd.Expect {
				c.replay[cmd.Key] = cmd.Value
			}
		}
		c.replayLast = i
	}
	c.replayAt = max(c.replayAt, index)
	return c.replay, c.replayLast
}

// onVote records that server id granted its vote to cand in term.
func (c *checker) onVote(id raft.ServerID, term uint64, cand string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	byTerm := c.votes[id]
	if byTerm == nil {
		byTerm = make(map[uint64]string)
		c.votes[id] = byTerm
	}
	if prev, ok := byTerm[term]; ok && prev != cand {
		c.violationLocked("election safety: %s granted its vote to both %s and %s in term %d", id, prev, cand, term)
		return
	}
	byTerm[term] = cand
}

// onElection records that id, whose pre-vote setting is preVote, sent a
// vote request in term.
func (c *checker) onElection(id raft.ServerID, term uint64, preVote bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := electionStart{id: id, term: term, preVote: preVote}
	if !c.electionSeen[e] {
		c.electionSeen[e] = true
		c.elections = append(c.elections, e)
	}
}

// electionCount returns how many elections were recorded so far.
func (c *checker) electionCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.elections)
}

// firstElectionAbove returns the first election recorded after the first
// mark ones whose term is above term.
func (c *checker) firstElectionAbove(mark int, term uint64) (electionStart, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.elections[mark:] {
		if e.term > term {
			return e, true
		}
	}
	return electionStart{}, false
}

// forgetVotes forgets the votes id granted: its disk was wiped, and as
// far as terms and votes go it is a new server.
func (c *checker) forgetVotes(id raft.ServerID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.votes, id)
}

// onStored is called by a disk, holding its lock, after a batch of entries
// landed on it. When the batch holds the no-op that opens a term this
// server leads, everything before the no-op is on this disk (the log writer
// stores in order), and it is the log the server was elected with. So
// every entry applied anywhere below the no-op must be on this disk, in its
// log or under one of its snapshots (whose states are checked as they
// land), and no entry of an earlier term may have been applied at or above
// it (Raft paper §5.4, leader completeness).
//
// Entries of the leader's own term or later ones may be applied before the
// no-op lands here: followers can commit them without the leader's own
// write, and a former leader may store its old no-op again, as a follower,
// long after, or its own write of it may land late, once a later leader
// has committed other entries below it; only entries of earlier terms are
// checked.
func (c *checker) onStored(d *disk, batch []raft.Log) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range batch {
		e := &batch[i]
		if e.Type != raft.LogNoop || c.leaders[e.Term] != d.id {
			continue
		}
		snapIndex := d.snapshotIndexLocked()
		for index, want := range c.committed {
			if index >= e.Index {
				if want.term < e.Term {
					c.violationLocked("leader completeness: %s opened term %d with a no-op at index %d, but index %d of the earlier term %d was applied",
						d.id, e.Term, e.Index, index, want.term)
				}
				continue
			}
			if want.term > e.Term {
				// Committed in a later term than this leader's: a leader
				// holds what was committed before its term, and its own
				// no-op can land late (a stalled disk) after a later
				// leader committed other entries below it.
				continue
			}
			got, ok := d.entryLocked(index)
			switch {
			case !ok && index <= snapIndex:
				// Compacted: the snapshot holds it.
			case !ok:
				c.violationLocked("leader completeness: leader %s of term %d lacks applied index %d", d.id, e.Term, index)
			case got.Term != want.term || string(got.Data) != want.data:
				c.violationLocked("leader completeness: leader %s of term %d holds %q (term %d) at index %d, where %q (term %d) was applied",
					d.id, e.Term, got.Data, got.Term, index, want.data, want.term)
			}
		}
	}
}

// checkApplySequences verifies, once the run is over, that every
// incarnation applied exactly the committed commands up to the last one it
// applied, with none skipped; a restored snapshot stands for the commands
// up to its last one. A committed user restore is a position of its own:
// an incarnation that goes past it must have restored it (or a snapshot
// above it). It first settles which user restores committed, and checks
// them (restoreBook.settleLocked).
func (c *checker) checkApplySequences() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.restores.settleLocked(c)
	c.restores.checkStartReplacementsLocked(c)
	all := make([]uint64, 0, len(c.committed))
	for i := range c.committed {
		all = append(all, i)
	}
	for _, r := range c.restores.committed() {
		all = append(all, r.index)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	all = slices.Compact(all)
	for inc, seq := range c.applied {
		pos := 0
		for _, ev := range seq {
			if ev.restore {
				pos = sort.Search(len(all), func(i int) bool { return all[i] > ev.index })
				continue
			}
			if pos < len(all) && all[pos] < ev.index && c.restores.committedAt(all[pos]) != nil {
				c.violationLocked("%s applied index %d without restoring the user snapshot committed at index %d",
					inc, ev.index, all[pos])
				break
			}
			if pos >= len(all) || all[pos] != ev.index {
				want := uint64(0)
				if pos < len(all) {
					want = all[pos]
				}
				c.violationLocked("%s applied index %d where the next committed command is at index %d",
					inc, ev.index, want)
				break
			}
			pos++
		}
	}
}

// snapshotCount returns how many snapshots landed on disks.
func (c *checker) snapshotCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snapshots
}

// appliedCount returns how many distinct commands were applied.
func (c *checker) appliedCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.committed)
}
