package fuzzy

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"testing"

	"github.com/quorumkit/raft"
)

// The end-of-run stability check: with every fault healed and every server
// running, the leader that committed the final barrier keeps its role and
// term, except for the disruptions Raft itself implies, each named and
// bounded.

// stableFor is how long a healed cluster must keep its leader and term.
const stableFor = 20 * heartbeatTimeout

// stabilityBase is what the check knows right after a barrier committed.
type stabilityBase struct {
	// higher maps each member of the leader's configuration (voter or
	// not, the leader left out) that held a term above the leader's then,
	// or was writing one (disk.termInFlight), to that term.
	higher map[raft.ServerID]uint64
	// mark is the number of elections the checker had seen start then
	// (checker.onElection).
	mark int
}

// stabilityBaseline reads the cluster right after leader committed a
// barrier in term.
func (c *cluster) stabilityBaseline(leader *incarnation, term uint64) stabilityBase {
	base := stabilityBase{higher: make(map[raft.ServerID]uint64), mark: c.check.electionCount()}
	for _, s := range members(leader) {
		if s.ID == leader.node.id {
			continue
		}
		n := c.node(s.ID)
		if inc := c.current(n); inc != nil {
			// A term still being written counts: the member is past
			// its pre-vote round and will enter that term.
			if t := max(inc.raft.CurrentTerm(), c.diskOf(n).termInFlight()); t > term {
				base.higher[s.ID] = t
			}
		}
	}
	return base
}

// checkStable checks that, with every fault healed and every server
// running (removed ones included, whatever their terms), leader keeps its
// role and its term for stableFor: nothing outside a healthy quorum may
// take the leadership away. term is the one leader held when it committed
// the barrier; base was read right after.
//
// Two kinds of loss are excused, each naming the server that caused it,
// and each server at most once, so the check ends after as many
// re-elections as there are servers:
//
//   - a member of the leader's configuration already held a higher term
//     when the barrier committed (a server with pre-vote off that
//     campaigned while cut off, or one that took such a term from it, or a
//     candidate that passed a pre-vote and was cut off before it won). The
//     leader's next AppendEntries to it carries a lower term; its answer
//     carries its own, and the leader steps down. That is Raft, whatever
//     the library: terms never go down. The first election in a term above
//     the leader's must then be in a term above that member's too.
//   - the first election above the leader's term was started by a member
//     with pre-vote off: its election timer ran out before the leader's
//     heartbeats reached it again after the heal (the leader's replicator
//     may still be backing off from the failures). Pre-vote exists to
//     avoid exactly this; without it Raft allows it.
//
// After an excused loss, the check starts again with the next leader that
// commits a barrier. A pair of lagging (laggingBehindRemovals) whose
// removed server is outside the final configuration, and whose term is
// above the leader's when the loss is seen, also excuses the loss, and
// ends the check (see README.md).
func (c *cluster) checkStable(leader *incarnation, term uint64, base stabilityBase, lagging []laggingPair) {
	excused := make(map[raft.ServerID]bool)
	for {
		moved := c.waitFor(stableFor, func() bool {
			return leader.raft.State() != raft.Leader || leader.raft.CurrentTerm() != term
		})
		if !moved {
			return
		}
		if why, ok := c.laggingExcuse(leader, term, lagging); ok {
			c.events.add("%s lost the leadership of term %d, excused: %s", leader.name, term, why)
			return
		}
		cause, why, ok := c.disruption(leader, term, base, excused)
		if !ok {
			l := c.leader()
			now := "nobody"
			if l != nil {
				now = fmt.Sprintf("%s in term %d", l.name, l.raft.CurrentTerm())
			}
			c.check.violation("liveness: with every fault healed, %s lost the leadership of term %d within %v; now %s leads; %s\n%s",
				leader.name, term, stableFor, now, why, c.describe())
			return
		}
		excused[cause] = true
		c.events.add("%s lost the leadership of term %d, excused: %s; checking the next leader", leader.name, term, why)
		next, _, nextTerm, committed := c.commitBarrier(recoveryTimeout)
		if !committed {
			c.check.violation("liveness: after %s lost the leadership of term %d (%s), no leader committed an entry within %v\n%s",
				leader.name, term, why, recoveryTimeout, c.describe())
			return
		}
		c.events.add("barrier committed again by %s in term %d", next.name, nextTerm)
		leader, term = next, nextTerm
		base = c.stabilityBaseline(leader, term)
	}
}

// disruption names the server that cost leader its leadership of term, if
// the loss is one checkStable excuses, with the reason; otherwise it says
// what it saw.
func (c *cluster) disruption(leader *incarnation, term uint64, base stabilityBase, excused map[raft.ServerID]bool) (cause raft.ServerID, why string, ok bool) {
	first, found := c.check.firstElectionAbove(base.mark, term)
	return blame(members(leader), term, base, excused, first, found)
}

// blame is disruption's decision, from the leader's configuration conf,
// the term it lost, what the check saw at the barrier, and the first
// election above term recorded after it (if found).
//
// An election is recorded when its vote requests go out, after the
// candidate wrote its new term and its own vote. A member that won a
// pre-vote round before the barrier may have written the term before the
// barrier (it is in base.higher) and its vote after (a slow disk), so its
// election in that very term is recorded after the barrier: that is the
// term it already held, not a new election above the leader (soak seed
// 229745966249759311: n4 won its pre-vote for term 22 at 21.098s, before
// the heal, while a campaign-write-error slowed every disk; its term write
// and vote write took until 21.427s, after n0 had won term 21 and committed
// the barrier).
func blame(conf []raft.Server, term uint64, base stabilityBase, excused map[raft.ServerID]bool, first electionStart, found bool) (cause raft.ServerID, why string, ok bool) {
	member := func(id raft.ServerID) bool {
		return slices.ContainsFunc(conf, func(s raft.Server) bool { return s.ID == id })
	}
	var higherMax uint64
	var holder raft.ServerID
	for _, id := range slices.Sorted(maps.Keys(base.higher)) {
		if excused[id] || !member(id) {
			continue
		}
		if t := base.higher[id]; t > higherMax {
			higherMax, holder = t, id
		}
	}
	switch {
	case found && !excused[first.id] && member(first.id) && base.higher[first.id] >= first.term:
		return first.id, fmt.Sprintf("%s already held term %d, above the leader's, when the barrier committed; its election in term %d "+
			"had begun then (its vote requests went out after)", first.id, base.higher[first.id], first.term), true
	case found && (holder == "" || first.term <= higherMax):
		// The first election above the leader's term did not start from
		// a higher term the cluster already held: its candidate caused
		// the loss.
		switch {
		case first.preVote:
			return "", fmt.Sprintf("%s started the first election above it (term %d) with pre-vote on", first.id, first.term), false
		case !member(first.id):
			return "", fmt.Sprintf("%s, outside the configuration, started the first election above it (term %d)", first.id, first.term), false
		case excused[first.id]:
			return "", fmt.Sprintf("%s, whose earlier disruption was already excused, started the first election above it (term %d)", first.id, first.term), false
		}
		return first.id, fmt.Sprintf("%s, running without pre-vote, started an election in term %d before the leader's heartbeats reached it", first.id, first.term), true
	case holder != "":
		return holder, fmt.Sprintf("%s already held term %d, above the leader's, when the barrier committed", holder, higherMax), true
	}
	return "", "no member held a higher term when the barrier committed and nobody started an election above it", false
}

// laggingExcuse reports whether a pair of lagging explains leader's loss of
// term: the pair's removed server is outside leader's configuration, and
// its term is now above the leader's (only so can the lagging member take
// a term that deposes the leader).
func (c *cluster) laggingExcuse(leader *incarnation, term uint64, lagging []laggingPair) (why string, ok bool) {
	final := members(leader)
	for _, p := range lagging {
		if slices.ContainsFunc(final, func(s raft.Server) bool { return s.ID == p.removed }) {
			continue
		}
		inc := c.current(c.node(p.removed))
		if inc == nil {
			continue
		}
		if t := inc.raft.CurrentTerm(); t > term {
			return fmt.Sprintf("%s (now in term %d)", p.why, t), true
		}
	}
	return "", false
}

// laggingPair is a member that, as everything heals, still counts a removed
// server as a voter. If its log is no more up to date than that server's,
// no library can tell that server from a legitimate candidate there, so the
// member may grant it its vote and take its term, and its next answer to
// the leader's AppendEntries deposes the leader (the reference does the
// same). If its log is ahead, it refuses the removed server's vote requests
// without taking their term (the library's rule, tested in the root
// package); but when it does not hear the leader soon enough after its
// restart it runs a pre-vote round of its own, and the removed server's
// refusal carried its higher term, which a candidate adopted (as the
// reference's does); since a pre-vote candidate no longer adopts a term
// from an answer and a restarted server holds its vote for a heartbeat
// timeout (the raft package's election.go and vote_hold.go), what is left
// is a member that knows no leader for longer than that while the removed
// server reaches it (README.md). One that already holds the removal
// refuses the removed server before looking at any term.
type laggingPair struct {
	member, removed raft.ServerID
	why             string
}

// laggingBehindRemovals finds the laggingPairs among the running servers:
// removed is a voter in its own latest configuration and in member's, but
// not in that of some other running server whose log went past removed's.
// checkStable (laggingExcuse) excuses a lost leadership only when removed
// is outside the final configuration and its term is above the leader's;
// watchRemoved excuses a member reaching the removed server's term.
func (c *cluster) laggingBehindRemovals() []laggingPair {
	type view struct {
		inc        *incarnation
		conf       []raft.Server
		last, term uint64
	}
	var views []view
	for _, inc := range c.running() {
		st := inc.raft.Stats()
		last, _ := strconv.ParseUint(st["last_log_index"], 10, 64)
		term, _ := strconv.ParseUint(st["last_log_term"], 10, 64)
		views = append(views, view{inc, members(inc), last, term})
	}
	voter := func(v view, id raft.ServerID) bool {
		return slices.ContainsFunc(v.conf, func(s raft.Server) bool { return s.ID == id && s.Suffrage == raft.Voter })
	}
	after := func(a, b view) bool {
		return a.term > b.term || (a.term == b.term && a.last > b.last)
	}
	var out []laggingPair
	for _, r := range views {
		id := r.inc.node.id
		// A witness of the removal: a server whose configuration leaves
		// r out, and whose log went past r's (the removal is an entry r
		// does not hold).
		removedBy := func(w view) bool {
			return len(w.conf) > 0 && !voter(w, id) && after(w, r)
		}
		if !voter(r, id) || !slices.ContainsFunc(views, removedBy) {
			continue
		}
		for _, m := range views {
			if m.inc == r.inc || !voter(m, id) {
				continue
			}
			how := "its log was not ahead"
			if after(m, r) {
				// See laggingPair: its own (pre-)vote round can take the
				// removed server's term from a refusal.
				how = "its log was ahead, but a refusal of its own (pre-)vote request carries the removed server's term"
			}
			p := laggingPair{member: m.inc.node.id, removed: id, why: fmt.Sprintf(
				"as everything healed, %s (last log %d in term %d) still counted %s (last log %d in term %d) as a voter; %s",
				m.inc.name, m.last, m.term, r.inc.name, r.last, r.term, how)}
			c.events.add("lagging member: %s", p.why)
			out = append(out, p)
		}
	}
	return out
}

// TestBlameOwnElectionInHeldTerm: a member that held a term above the
// leader's at the barrier, and whose vote requests in that very term went
// out only after it (its vote write was slow), is the holder excuse, not a
// pre-vote member starting a new election above the leader (soak seed
// 229745966249759311). An election by another member into that term is
// still blamed on its candidate.
func TestBlameOwnElectionInHeldTerm(t *testing.T) {
	conf := []raft.Server{{ID: "n0"}, {ID: "n2"}, {ID: "n4"}}
	base := stabilityBase{higher: map[raft.ServerID]uint64{"n4": 22}}
	cause, why, ok := blame(conf, 21, base, map[raft.ServerID]bool{}, electionStart{id: "n4", term: 22, preVote: true}, true)
	if !ok || cause != "n4" {
		t.Errorf("n4's own election in the term it held: got cause %q ok %v (%s), want n4 excused", cause, ok, why)
	}
	cause, why, ok = blame(conf, 21, base, map[raft.ServerID]bool{}, electionStart{id: "n2", term: 22, preVote: true}, true)
	if ok {
		t.Errorf("n2's pre-vote election into n4's term: got cause %q excused (%s), want a violation", cause, why)
	}
	cause, why, ok = blame(conf, 21, base, map[raft.ServerID]bool{"n4": true}, electionStart{id: "n4", term: 22, preVote: true}, true)
	if ok {
		t.Errorf("n4 already excused once: got cause %q excused (%s), want a violation", cause, why)
	}
}
