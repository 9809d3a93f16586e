package raft

import (
	"io"
	"net"
	"time"
)

// RPC is a request delivered by a Transport to the node, with the means to
// answer it.
type RPC struct {
	// Command is a pointer to one of the request types of commands.go.
	Command interface{}
	// Reader streams the snapshot's bytes; it is set only for an
	// InstallSnapshotRequest.
	Reader io.Reader
	// RespChan receives exactly one RPCResponse. Transports make it
	// buffered so that answering never blocks. Respond sends on it, or,
	// on this package's NetworkTransport, hands the answer over without
	// it, which costs the connection one wake-up less; a send on RespChan
	// works there too.
	RespChan chan<- RPCResponse

	// answerer, when a transport sets it, takes the answer instead of
	// RespChan.
	answerer rpcAnswerer
}

// rpcAnswerer takes the answer to an RPC without blocking
// (net_server_answers.go).
type rpcAnswerer interface {
	deliver(RPCResponse)
}

// RPCResponse is the answer to an RPC: a response message, an error, or
// both.
type RPCResponse struct {
	Response interface{}
	Error    error
}

// Respond answers the RPC.
func (r *RPC) Respond(resp interface{}, err error) {
	if r.answerer != nil {
		r.answerer.deliver(RPCResponse{resp, err})
		return
	}
	r.RespChan <- RPCResponse{resp, err}
}

// Transport carries RPCs between servers. The node reads incoming requests
// from Consumer and sends its own through the other methods, which block
// until the peer answered or the transport's timeout passed.
type Transport interface {
	// Consumer returns the channel of incoming requests.
	Consumer() <-chan RPC

	// LocalAddr returns this server's address.
	LocalAddr() ServerAddress

	// AppendEntriesPipeline returns a pipeline for sending AppendEntries to
	// target without waiting for each answer, or
	// ErrPipelineReplicationNotSupported.
	AppendEntriesPipeline(id ServerID, target ServerAddress) (AppendPipeline, error)

	// AppendEntries sends an AppendEntries RPC and waits for the answer.
	AppendEntries(id ServerID, target ServerAddress, args *AppendEntriesRequest, resp *AppendEntriesResponse) error

	// RequestVote sends a RequestVote RPC and waits for the answer.
	RequestVote(id ServerID, target ServerAddress, args *RequestVoteRequest, resp *RequestVoteResponse) error

	// InstallSnapshot sends a snapshot, streaming its bytes from data, and
	// waits for the answer.
	InstallSnapshot(id ServerID, target ServerAddress, args *InstallSnapshotRequest, resp *InstallSnapshotResponse, data io.Reader) error

	// EncodePeer turns a server's address into the bytes used in RPC
	// headers.
	EncodePeer(id ServerID, addr ServerAddress) []byte

	// DecodePeer turns bytes made by EncodePeer back into an address.
	DecodePeer([]byte) ServerAddress

	// SetHeartbeatHandler registers a fast path for heartbeats: a transport
	// that supports it hands heartbeats to cb instead of queueing them
	// behind other requests on Consumer. Transports may ignore it.
	SetHeartbeatHandler(cb func(rpc RPC))

	// TimeoutNow sends a TimeoutNow RPC and waits for the answer.
	TimeoutNow(id ServerID, target ServerAddress, args *TimeoutNowRequest, resp *TimeoutNowResponse) error
}

// WithClose is implemented by a transport that can be shut down. Raft
// closes its transport when the node shuts down.
type WithClose interface {
	// Close releases the transport; it must be safe to call twice.
	Close() error
}

// WithPreVote is implemented by a transport that can carry pre-vote
// requests. Without it, nodes campaign without a pre-vote round.
type WithPreVote interface {
	RequestPreVote(id ServerID, target ServerAddress, args *RequestPreVoteRequest, resp *RequestPreVoteResponse) error
}

// WithMaxRPCBytes is implemented by a transport that carries requests only
// up to a size, as NetworkTransport does (NetworkTransportConfig.MaxRPCBytes).
// A node then refuses, at Apply, an entry that could never fit in one
// AppendEntries, and sizes its AppendEntries to fit. Every server of a
// cluster should allow the same size: the limit a node reads is its own
// transport's, and the receiving end is the one that refuses.
type WithMaxRPCBytes interface {
	// MaxRPCBytes returns the most a request may take, counted as the
	// network transport counts it (its encoded bytes plus 128 for each
	// array element); zero or less means no limit.
	MaxRPCBytes() int64
}

// WithPeers is implemented by transports whose routes are set up by hand,
// as in tests.
type WithPeers interface {
	Connect(peer ServerAddress, t Transport) // Connect routes requests for peer to t.
	Disconnect(peer ServerAddress)           // Disconnect removes the route to peer.
	DisconnectAll()                          // DisconnectAll removes every route.
}

// LoopbackTransport is an in-process transport with manual routing.
type LoopbackTransport interface {
	Transport
	WithPeers
	WithClose
	WithPreVote
}

// AppendPipeline sends AppendEntries RPCs to one peer without waiting for
// each answer; answers come back in order on Consumer.
type AppendPipeline interface {
	// AppendEntries sends a request and returns a future for its answer.
	// It may block when too many requests are in flight.
	AppendEntries(args *AppendEntriesRequest, resp *AppendEntriesResponse) (AppendFuture, error)

	// Consumer returns the channel on which answered futures arrive, in the
	// order their requests were sent.
	Consumer() <-chan AppendFuture

	// Close stops the pipeline; later sends fail with ErrPipelineShutdown.
	Close() error
}

// AppendFuture is the pending answer to a pipelined AppendEntries.
type AppendFuture interface {
	Future

	// Start returns when the request was sent.
	Start() time.Time

	// Request returns the request that was sent.
	Request() *AppendEntriesRequest

	// Response returns the answer; valid once Error returned nil.
	Response() *AppendEntriesResponse
}

// StreamLayer is the connection layer under a NetworkTransport: a listener
// for incoming connections and a way to dial peers.
type StreamLayer interface {
	net.Listener

	// Dial opens a connection to address within timeout.
	Dial(address ServerAddress, timeout time.Duration) (net.Conn, error)
}

// ServerAddressProvider lets a NetworkTransport find a server's current
// address from its ServerID, for clusters whose addresses change.
type ServerAddressProvider interface {
	ServerAddr(id ServerID) (ServerAddress, error)
}

// isHeartbeat reports whether req is a heartbeat in hashicorp/raft's exact
// sense: a term and a leader address, and nothing else (the transports'
// fast path and testdata/wire/heartbeat_request.hex depend on it).
func isHeartbeat(req *AppendEntriesRequest) bool {
	leader := req.Addr
	if len(leader) == 0 {
		leader = req.Leader
	}
	return req.Term != 0 && leader != nil &&
		req.PrevLogEntry == 0 && req.PrevLogTerm == 0 &&
		len(req.Entries) == 0 && req.LeaderCommitIndex == 0
}
