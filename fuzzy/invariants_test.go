package fuzzy

import (
	"fmt"
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
//     commands in index order with none missing (checked at the end);
//   - leader completeness: once a leader stored its first entry (the
//     no-op of its term), its log holds every entry applied below it, and
//     nothing of an earlier term was applied above it (disks);
//   - durable terms and votes: a server never grants votes to two
//     candidates in one term, across its restarts too (the transports see
//     every grant), and a restarted server starts from a term no lower than
//     any it had published (the cluster's restarts).
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
	// applied lists, per incarnation, the indexes its FSM applied, in order.
	applied map[string][]uint64
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
		applied:   make(map[string][]uint64),
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

// onApply records that incarnation inc of a node applied l.
func (c *checker) onApply(inc string, l *raft.Log) {
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
	if n := len(seq); n > 0 && seq[n-1] >= l.Index {
		c.violationLocked("%s applied index %d after index %d", inc, l.Index, seq[n-1])
	}
	c.applied[inc] = append(seq, l.Index)
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

// onStored is called by a disk, holding its lock, after a batch of entries
// landed on it. When the batch holds the no-op that opens a term this
// server leads, everything before the no-op is on this disk (the log writer
// stores in order), and it is the log the server was elected with. So
// every entry applied anywhere below the no-op must be on this disk, and no
// entry of an earlier term may have been applied at or above it (Raft paper
// §5.4, leader completeness).
//
// Entries of the leader's own term or later ones may be applied before the
// no-op lands here: followers can commit them without the leader's own
// write, and a former leader may store its old no-op again, as a follower,
// long after.
func (c *checker) onStored(d *disk, batch []raft.Log) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range batch {
		e := &batch[i]
		if e.Type != raft.LogNoop || c.leaders[e.Term] != d.id {
			continue
		}
		for index, want := range c.committed {
			if index >= e.Index {
				if want.term < e.Term {
					c.violationLocked("leader completeness: %s opened term %d with a no-op at index %d, but index %d of the earlier term %d was applied",
						d.id, e.Term, e.Index, index, want.term)
				}
				continue
			}
			got, ok := d.entryLocked(index)
			switch {
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
// applied, with none skipped.
func (c *checker) checkApplySequences() {
	c.mu.Lock()
	defer c.mu.Unlock()
	all := make([]uint64, 0, len(c.committed))
	for i := range c.committed {
		all = append(all, i)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	for inc, seq := range c.applied {
		for i, index := range seq {
			if i >= len(all) || all[i] != index {
				want := uint64(0)
				if i < len(all) {
					want = all[i]
				}
				c.violationLocked("%s's %dth applied command is index %d, but the committed command there is index %d",
					inc, i+1, index, want)
				break
			}
		}
	}
}

// appliedCount returns how many distinct commands were applied.
func (c *checker) appliedCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.committed)
}
