package raft

// The RPC messages exchanged between servers. Their field names and types
// are the wire format shared with hashicorp/raft: the network transport
// encodes each struct as a msgpack map keyed by field name, so fields must
// never be renamed, retyped or removed. Fields marked deprecated are still
// filled in so that servers running old protocol versions understand us.

// RPCHeader is carried by every request and response.
type RPCHeader struct {
	// ProtocolVersion is the sender's configured protocol version.
	ProtocolVersion ProtocolVersion
	// ID is the sender's ServerID.
	ID []byte
	// Addr is the sender's address, as encoded by its transport's
	// EncodePeer.
	Addr []byte
}

// WithRPCHeader is implemented by every RPC message.
type WithRPCHeader interface {
	GetRPCHeader() RPCHeader
}

// AppendEntriesRequest asks a follower to append entries after the entry at
// PrevLogEntry, and tells it how far the leader has committed. Without
// entries it serves as a heartbeat.
type AppendEntriesRequest struct {
	RPCHeader

	// Term is the leader's term.
	Term uint64

	// Leader is the leader's address.
	//
	// Deprecated: use RPCHeader.Addr.
	Leader []byte

	// PrevLogEntry and PrevLogTerm identify the entry just before Entries;
	// the follower accepts Entries only if its log holds that entry.
	PrevLogEntry uint64
	PrevLogTerm  uint64

	// Entries are the entries to append, in index order.
	Entries []*Log

	// LeaderCommitIndex is the leader's commit index.
	LeaderCommitIndex uint64
}

// GetRPCHeader returns the request's header.
func (r *AppendEntriesRequest) GetRPCHeader() RPCHeader { return r.RPCHeader }

// AppendEntriesResponse answers an AppendEntriesRequest.
type AppendEntriesResponse struct {
	RPCHeader

	// Term is the follower's term, so that a stale leader learns it.
	Term uint64

	// LastLog is a hint for the leader: the follower's log holds nothing
	// useful past it, so the next attempt should start no later than
	// LastLog+1.
	LastLog uint64

	// Success is true when the entries were appended.
	Success bool

	// NoRetryBackoff tells the leader that the refusal was a log mismatch,
	// not a failure, so it may retry at once with earlier entries.
	NoRetryBackoff bool
}

// GetRPCHeader returns the response's header.
func (r *AppendEntriesResponse) GetRPCHeader() RPCHeader { return r.RPCHeader }

// RequestVoteRequest asks for a server's vote in an election.
type RequestVoteRequest struct {
	RPCHeader

	// Term is the candidate's new term.
	Term uint64

	// Candidate is the candidate's address.
	//
	// Deprecated: use RPCHeader.Addr.
	Candidate []byte

	// LastLogIndex and LastLogTerm describe the end of the candidate's log,
	// so that voters refuse a candidate whose log is behind theirs.
	LastLogIndex uint64
	LastLogTerm  uint64

	// LeadershipTransfer is set when the current leader asked the candidate
	// to take over; voters then vote even though they know a leader.
	LeadershipTransfer bool
}

// GetRPCHeader returns the request's header.
func (r *RequestVoteRequest) GetRPCHeader() RPCHeader { return r.RPCHeader }

// RequestVoteResponse answers a RequestVoteRequest.
type RequestVoteResponse struct {
	RPCHeader

	// Term is the voter's term.
	Term uint64

	// Peers is the voter's membership in the legacy encoding, sent only by
	// servers running protocol versions below 2.
	//
	// Deprecated: kept for protocol versions below 2.
	Peers []byte

	// Granted is true when the vote was given.
	Granted bool
}

// GetRPCHeader returns the response's header.
func (r *RequestVoteResponse) GetRPCHeader() RPCHeader { return r.RPCHeader }

// RequestPreVoteRequest asks whether a server would vote for the sender in
// the next term, without anyone changing their term.
type RequestPreVoteRequest struct {
	RPCHeader

	// Term is the term the candidate would campaign in: its current term
	// plus one.
	Term uint64

	// LastLogIndex and LastLogTerm describe the end of the candidate's log.
	LastLogIndex uint64
	LastLogTerm  uint64
}

// GetRPCHeader returns the request's header.
func (r *RequestPreVoteRequest) GetRPCHeader() RPCHeader { return r.RPCHeader }

// RequestPreVoteResponse answers a RequestPreVoteRequest.
type RequestPreVoteResponse struct {
	RPCHeader

	// Term is the term the candidate asked about, or the responder's own
	// term when that is newer.
	Term uint64

	// Granted is true when the responder would vote for the candidate.
	Granted bool
}

// GetRPCHeader returns the response's header.
func (r *RequestPreVoteResponse) GetRPCHeader() RPCHeader { return r.RPCHeader }

// InstallSnapshotRequest sends a snapshot to a follower whose missing
// entries the leader no longer has. The snapshot's Size bytes follow the
// request on the transport's stream.
type InstallSnapshotRequest struct {
	RPCHeader

	// SnapshotVersion is the version of the snapshot's format.
	SnapshotVersion SnapshotVersion

	// Term is the leader's term.
	Term uint64

	// Leader is the leader's address.
	//
	// Deprecated: use RPCHeader.Addr.
	Leader []byte

	// LastLogIndex and LastLogTerm are the index and term of the last entry
	// the snapshot includes.
	LastLogIndex uint64
	LastLogTerm  uint64

	// Peers is the snapshot's membership in the legacy encoding.
	//
	// Deprecated: kept for protocol versions below 3; use Configuration.
	Peers []byte

	// Configuration is the membership at the snapshot, encoded with
	// EncodeConfiguration, and ConfigurationIndex the index it was
	// appended at.
	Configuration      []byte
	ConfigurationIndex uint64

	// Size is the snapshot's length in bytes.
	Size int64
}

// GetRPCHeader returns the request's header.
func (r *InstallSnapshotRequest) GetRPCHeader() RPCHeader { return r.RPCHeader }

// InstallSnapshotResponse answers an InstallSnapshotRequest.
type InstallSnapshotResponse struct {
	RPCHeader

	// Term is the follower's term.
	Term uint64

	// Success is true when the snapshot was installed.
	Success bool
}

// GetRPCHeader returns the response's header.
func (r *InstallSnapshotResponse) GetRPCHeader() RPCHeader { return r.RPCHeader }

// TimeoutNowRequest tells a server to start an election at once, skipping
// pre-vote, as the last step of a leadership transfer.
type TimeoutNowRequest struct {
	RPCHeader
}

// GetRPCHeader returns the request's header.
func (r *TimeoutNowRequest) GetRPCHeader() RPCHeader { return r.RPCHeader }

// TimeoutNowResponse answers a TimeoutNowRequest.
type TimeoutNowResponse struct {
	RPCHeader
}

// GetRPCHeader returns the response's header.
func (r *TimeoutNowResponse) GetRPCHeader() RPCHeader { return r.RPCHeader }
