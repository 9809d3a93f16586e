package raft

// RaftState is the role a node plays in the cluster.
type RaftState uint32

const (
	// Follower is the initial role: the node accepts entries from a leader
	// and starts an election if it stops hearing from one.
	Follower RaftState = iota

	// Candidate is the role of a node that is asking for votes.
	Candidate

	// Leader is the role of the node that accepts writes for its term.
	Leader

	// Shutdown is the role of a node after Shutdown; it never changes again.
	Shutdown
)

func (s RaftState) String() string {
	switch s {
	case Follower:
		return "Follower"
	case Candidate:
		return "Candidate"
	case Leader:
		return "Leader"
	case Shutdown:
		return "Shutdown"
	default:
		return "Unknown"
	}
}
