package raft

import (
	"errors"
	"syscall"
)

// The ReadIndex RPC: a follower asks its leader for a read index
// (follower_read.go). It is an addition of this library; hashicorp/raft
// has no such RPC, so a transport offers it through WithReadIndex, and a
// peer running the reference never receives it unless a follower of ours
// probes it (see ErrReadIndexUnsupported).

// ReadIndexRequest asks the leader for an index at which a follower may
// serve a linearizable read. The header names the follower.
type ReadIndexRequest struct {
	RPCHeader

	// Term is the follower's current term when it sent the request, after
	// every read the request serves began. A leader of that term counts the
	// request as the follower's acknowledgment of its leadership
	// (follower_read.go). Zero, from a sender that does not set it, counts
	// for nothing.
	Term uint64
}

// GetRPCHeader returns the request's header.
func (r *ReadIndexRequest) GetRPCHeader() RPCHeader { return r.RPCHeader }

// ReadIndexResponse answers a ReadIndexRequest.
type ReadIndexResponse struct {
	RPCHeader

	// Term is the answering server's current term.
	Term uint64

	// ReadIndex is the leader's commit index when it took the request,
	// valid only when Success is set.
	ReadIndex uint64

	// Success is set when the server led its term, and a quorum of voters
	// confirmed that, after it took the request. Unset, the server does
	// not lead (or no longer does).
	Success bool
}

// GetRPCHeader returns the response's header.
func (r *ReadIndexResponse) GetRPCHeader() RPCHeader { return r.RPCHeader }

// WithReadIndex is implemented by a transport that can carry ReadIndex
// requests. Without it, ReadIndex on a follower answers ErrNotLeader, as it
// did before follower reads existed. NetworkTransport and InmemTransport
// implement it; the request reaches the peer's Consumer like any other RPC,
// with a *ReadIndexRequest as its Command.
type WithReadIndex interface {
	// ReadIndex sends a ReadIndex request and waits for the answer. When
	// the target cannot take the request at all (a peer that does not
	// know the RPC), the error wraps ErrReadIndexUnsupported.
	ReadIndex(id ServerID, target ServerAddress, args *ReadIndexRequest, resp *ReadIndexResponse) error
}

// ErrReadIndexUnsupported is wrapped by the error a WithReadIndex transport
// returns when the target does not know the ReadIndex RPC, as a server
// running hashicorp/raft does: its network transport closes the connection
// on the unknown request type. A follower that sees it stops asking that
// leader for the rest of its term and answers ReadIndex with ErrNotLeader.
var ErrReadIndexUnsupported = errors.New("peer does not support the ReadIndex RPC")

// peerClosedWithoutAnswer reports whether err shows that the peer closed
// the connection after the request was sent, before any byte of an
// answer: what a reference server does on a request type it does not know.
func peerClosedWithoutAnswer(err error) bool {
	return errors.Is(err, errNoAnswer) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
