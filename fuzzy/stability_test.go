package fuzzy

import (
	"fmt"
	"maps"
	"slices"

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
	// not, the leader left out) that held a term above the leader's then
	// to that term.
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
		if inc := c.current(c.node(s.ID)); inc != nil {
			if t := inc.raft.CurrentTerm(); t > term {
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
// commits a barrier. A member that restarted behind a removal, still
// counting the removed server as a voter, is no excuse: its startup hold
// and then the leader's heartbeats keep it from taking that server's term
// (leader stickiness in the raft package's election.go and vote_hold.go).
func (c *cluster) checkStable(leader *incarnation, term uint64, base stabilityBase) {
	excused := make(map[raft.ServerID]bool)
	for {
		moved := c.waitFor(stableFor, func() bool {
			return leader.raft.State() != raft.Leader || leader.raft.CurrentTerm() != term
		})
		if !moved {
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
	conf := members(leader)
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
	first, found := c.check.firstElectionAbove(base.mark, term)
	switch {
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
