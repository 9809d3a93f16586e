package raft

import "errors"

// Sentinel errors that callers branch on. The messages are part of the
// drop-in contract with github.com/hashicorp/raft: programs and peers compare
// some of them as text, so they must never change.
var (
	// ErrLeader is returned when an operation is refused because this node
	// is the leader.
	ErrLeader = errors.New("node is the leader")

	// ErrNotLeader is returned when an operation needs the leader and this
	// node is a follower or candidate. Retry on the node that Leader names.
	ErrNotLeader = errors.New("node is not the leader")

	// ErrNotVoter is returned when an operation needs a voting member and
	// this node is not one.
	ErrNotVoter = errors.New("node is not a voter")

	// ErrLeadershipLost is returned for an entry that was in flight when this
	// node stopped being the leader. The entry may or may not have been
	// committed: the outcome is unknown, and a caller that must know has to
	// read the state back after a new leader is elected.
	ErrLeadershipLost = errors.New("leadership lost while committing log")

	// ErrAbortedByRestore is returned for an entry that was in flight when a
	// user snapshot restore replaced the state it would have applied to.
	ErrAbortedByRestore = errors.New("snapshot restored while committing log")

	// ErrRaftShutdown is returned by every call made after Shutdown, and for
	// requests that the node never accepted before it shut down.
	ErrRaftShutdown = errors.New("raft is already shutdown")

	// ErrEnqueueTimeout is returned when a request could not be handed to the
	// node within the timeout the caller gave. The request was not started.
	ErrEnqueueTimeout = errors.New("timed out enqueuing operation")

	// ErrNothingNewToSnapshot is returned by Snapshot while the FSM has
	// been given nothing since the node started (see Raft.Snapshot).
	ErrNothingNewToSnapshot = errors.New("nothing new to snapshot")

	// ErrUnsupportedProtocol is returned when a request or RPC needs a
	// protocol version this node is not configured for.
	ErrUnsupportedProtocol = errors.New("operation not supported with current protocol version")

	// ErrCantBootstrap is returned when bootstrapping a node that already has
	// state. It is safe to ignore when several servers race to bootstrap.
	ErrCantBootstrap = errors.New("bootstrap only works on new clusters")

	// ErrLeadershipTransferInProgress is returned by the leader while it is
	// handing leadership to another server.
	ErrLeadershipTransferInProgress = errors.New("leadership transfer in progress")

	// ErrLeadershipTransferToNonVoter is returned by
	// LeadershipTransferToServer when the server named is not a voter: a
	// non-voter cannot be elected, so it cannot take leadership over. The
	// reference accepts such a transfer.
	ErrLeadershipTransferToNonVoter = errors.New("leadership transfer target is not a voter")

	// ErrIncompatibleLogStore is returned by NewRaft when the log store lacks
	// a capability the configuration asks for, such as RestoreCommittedLogs
	// without a CommitTrackingLogStore.
	ErrIncompatibleLogStore = errors.New("log store does not implement some required methods or malformed")

	// ErrTransportShutdown is returned by a transport used after Close.
	ErrTransportShutdown = errors.New("transport shutdown")

	// ErrPipelineShutdown is returned by an append pipeline used after Close.
	ErrPipelineShutdown = errors.New("append pipeline closed")

	// ErrLogNotFound is returned by a LogStore asked for an index it does
	// not hold.
	ErrLogNotFound = errors.New("log not found")

	// ErrPipelineReplicationNotSupported is returned by a transport that
	// cannot pipeline AppendEntries; replication then quietly uses one
	// request at a time.
	ErrPipelineReplicationNotSupported = errors.New("pipeline replication not supported")

	// ErrEntryTooLarge is returned by Apply and ApplyLog for an entry larger
	// than the transport can carry in one AppendEntries (see
	// WithMaxRPCBytes). The entry was not appended. This library's
	// addition: the reference takes such an entry, and replication then
	// fails on it for ever. The error returned wraps it with the sizes.
	ErrEntryTooLarge = errors.New("log entry too large for the transport")
)

// errNotFoundText is the exact text of a StableStore miss. Stores written
// for hashicorp/raft (raft-boltdb's ErrKeyNotFound among them) report a
// missing key with this message, and raft treats any error with this text as
// "absent" rather than as a failure.
const errNotFoundText = "not found"

// isNotFound reports whether err is a StableStore miss. It looks through
// wrapping so that a store that adds context with %w is still understood.
func isNotFound(err error) bool {
	for err != nil {
		if err.Error() == errNotFoundText {
			return true
		}
		err = errors.Unwrap(err)
	}
	return false
}

// errUnexpectedCommand is the text a node answers to an RPC it does not
// know. Candidates treat a pre-vote answered with this text as granted,
// because it comes from a peer that predates pre-vote.
const errUnexpectedCommand = "unexpected command"
