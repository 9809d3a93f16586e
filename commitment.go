package raft

import "slices"

// Commitment: deciding how far the leader may commit (Raft paper §5.3 and
// §5.4.2). These are pure functions of the leader's bookkeeping, called by
// the run loop whenever a match index moves; they do no I/O and keep no
// state, so they are tested directly.

// quorumSize returns how many of n voters make a majority.
func quorumSize(n int) int { return n/2 + 1 }

// quorumMatchIndex returns the highest index that a majority of voters have
// stored, given each voter's match index. A voter missing from match counts
// as having stored nothing. With no voters it returns 0.
func quorumMatchIndex(voters []ServerID, match map[ServerID]uint64) uint64 {
	return quorumMatchIndexInto(nil, voters, match)
}

// quorumMatchIndexInto is quorumMatchIndex using buf's storage, so that the
// leader's hot path does not allocate.
func quorumMatchIndexInto(buf []uint64, voters []ServerID, match map[ServerID]uint64) uint64 {
	if len(voters) == 0 {
		return 0
	}
	indexes := buf[:0]
	for _, id := range voters {
		indexes = append(indexes, match[id])
	}
	slices.Sort(indexes)
	// With the indexes ascending, the one at len-quorum is held by exactly
	// a quorum of voters (itself and every one above it).
	return indexes[len(indexes)-quorumSize(len(indexes))]
}

// nextCommitIndex returns the leader's commit index once a majority holds
// everything up to quorumIndex. A leader only counts replicas for entries
// of its own term, which begin at termStart (its first entry, the no-op):
// committing them commits every earlier entry too, while counting replicas
// of an older term's entry is unsafe (Raft paper §5.4.2, figure 8). The
// commit index never moves back.
func nextCommitIndex(current, quorumIndex, termStart uint64) uint64 {
	if quorumIndex < termStart || quorumIndex <= current {
		return current
	}
	return quorumIndex
}
