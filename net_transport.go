package raft

import (
	"crypto/x509"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-msgpack/v2/codec"
)

// The network transport carries RPCs over a StreamLayer (TCP, TLS, or
// anything else that gives byte streams) in the same format as
// hashicorp/raft's NetworkTransport, so that servers of both libraries can
// form one cluster (wire_codec.go; testdata/wire pins the bytes).
//
// How the work is split:
//   - Client side (net_client.go, net_conn_pool.go): each RPC borrows a
//     connection from a per-target pool (or dials one), writes the request,
//     reads the response and gives the connection back if the exchange went
//     cleanly. InstallSnapshot streams the snapshot after the request and
//     never gives its connection back. Pipelines (net_pipeline.go) own one
//     connection each, with a goroutine reading responses in order.
//   - Server side (net_server.go, net_server_answers.go): one goroutine
//     accepts connections; per connection, one goroutine reads requests and
//     hands them to the node (the Consumer channel, or the heartbeat
//     handler for heartbeats) without waiting for their answers, up to
//     serverReadAhead ahead, and another writes the answers back in
//     request order.
//   - Hostile input: the server side bounds every request's size before
//     decoding it (wire_value.go), the time a request may take to arrive
//     once started and the pace of snapshot bodies (net_server.go,
//     net_server_body.go), and the connections one remote IP may hold
//     (net_server_conns.go); it logs what it refuses at a limited rate
//     (net_log_limit.go). TLS handshakes and VerifyPeer run on each
//     connection's goroutine (net_peer_auth.go, tls_transport.go).
//
// Every goroutine the transport starts is counted in routines and stops
// once Close has returned and the connections it owns are closed.

const (
	// DefaultTimeoutScale is the default TimeoutScale of a NetworkTransport:
	// InstallSnapshot allows one Timeout for every this many bytes.
	DefaultTimeoutScale = 256 * 1024

	// DefaultMaxRPCsInFlight is the MaxRPCsInFlight used when the
	// configuration leaves it at zero.
	DefaultMaxRPCsInFlight = 2

	// DefaultMaxRPCBytes is the per-RPC size limit used when
	// NetworkTransportConfig.MaxRPCBytes is zero: 64 MiB.
	DefaultMaxRPCBytes = 64 << 20

	// DefaultFrameTimeout is the time a request may take to arrive, once
	// its first byte has, when NetworkTransportConfig.FrameTimeout is zero.
	DefaultFrameTimeout = 30 * time.Second

	// DefaultMaxConnsPerIP is the number of incoming connections one remote
	// IP may hold when NetworkTransportConfig.MaxConnsPerIP is zero.
	DefaultMaxConnsPerIP = 128

	// minInFlightForPipelining is the smallest MaxRPCsInFlight with which a
	// pipeline makes sense: the pipeline always lets one request be written
	// while the previous answer is awaited, so 2 is the least it can do.
	minInFlightForPipelining = 2

	// clientWriteBufferSize and serverReadBufferSize are the buffers on the
	// heavy direction of each connection (requests, entries, snapshots).
	// The light direction uses bufio's default size.
	clientWriteBufferSize = 256 * 1024
	serverReadBufferSize  = 256 * 1024

	// logName names the transport's default logger.
	logName = "raft-net"
)

// NetworkTransportConfig holds the settings of a NetworkTransport. The
// fields up to MsgpackUseNewTimeFormat are hashicorp/raft's; the ones after
// it are this library's additions, and each one's zero value means the
// documented default.
type NetworkTransportConfig struct {
	// ServerAddressProvider, if set, gives the address to dial for a
	// ServerID, overriding the address raft passes in. When it fails, the
	// transport logs a warning and uses raft's address.
	ServerAddressProvider ServerAddressProvider

	// Logger receives the transport's log lines. Nil means a logger named
	// "raft-net" writing to stderr.
	Logger hclog.Logger

	// Stream is the connection layer: where connections are accepted and
	// how peers are dialed.
	Stream StreamLayer

	// MaxPool is how many idle connections are kept per target address for
	// reuse. Zero keeps none: every RPC dials.
	MaxPool int

	// MaxRPCsInFlight bounds how many AppendEntries a pipeline may have
	// sent without an answer. Zero means DefaultMaxRPCsInFlight (2). One
	// turns pipelining off: AppendEntriesPipeline then returns
	// ErrPipelineReplicationNotSupported and replication sends one request
	// at a time. Values above 2 help only on links with high latency; with
	// raft's batching they tend to raise commit latency under load.
	MaxRPCsInFlight int

	// Timeout bounds each outgoing RPC: dialing, and then sending the
	// request and receiving its answer. InstallSnapshot gets one Timeout
	// per TimeoutScale bytes of snapshot, and at least one. Zero means no
	// deadline.
	Timeout time.Duration

	// MsgpackUseNewTimeFormat writes times (Log.AppendedAt) in msgpack's
	// timestamp format, as go-msgpack v1.1.5 did, instead of the 15-byte
	// binary form. Set it only if every peer runs a version that reads it;
	// decoding always accepts both forms.
	MsgpackUseNewTimeFormat bool

	// MaxRPCBytes bounds the size of one incoming request (and of one
	// response to our own requests) as encoded on the wire, plus 128 bytes
	// for every array element in it, which stands for the memory an element
	// can take once decoded. A larger request closes its connection. It
	// does not bound the snapshot bytes that follow an InstallSnapshot
	// request. Zero means DefaultMaxRPCBytes (64 MiB), far above what
	// hashicorp/raft or this library send: an AppendEntries holds at most
	// MaxAppendEntries (at most 1024) entries, and raft suggests entries
	// of at most 512 KiB. Negative means no limit.
	MaxRPCBytes int64

	// FrameTimeout bounds, on the server side, the time from a request's
	// first byte to its last, the time to write an answer, and the TLS
	// handshake. The snapshot bytes after an InstallSnapshot request must
	// keep coming: each TimeoutScale bytes (256 KiB) within FrameTimeout of
	// the previous ones, counted from the node's first read. A peer that
	// starts a request and stalls is disconnected once it passes; idle
	// time between requests does not count (see IdleTimeout). Zero means
	// DefaultFrameTimeout (30s), longer than the per-RPC timeouts raft
	// deployments use (a hashicorp/raft sender gives up after its own
	// Timeout). Negative means no limit, as in hashicorp/raft.
	FrameTimeout time.Duration

	// IdleTimeout closes an incoming connection on which no request has
	// started for this long. Peers keep idle connections in their pools and
	// expect them to work when they pick them up again; a connection closed
	// under them fails that RPC once. Zero means no limit, as in
	// hashicorp/raft: idle connections are bounded by MaxConnsPerIP.
	IdleTimeout time.Duration

	// MaxConnsPerIP bounds the incoming connections one remote IP may hold
	// open at once; further ones are closed as they are accepted. A server
	// of either library holds a handful per peer (its pool, a pipeline, a
	// snapshot), so even nine servers on one host stay far below the
	// default. Zero means DefaultMaxConnsPerIP (128). Negative means no
	// limit.
	MaxConnsPerIP int

	// VerifyPeer, if set, is called on the server side for every incoming
	// connection once its TLS handshake has verified the client's
	// certificate, with that certificate and the remote address. Returning
	// an error refuses the connection before any RPC is read. Returning a
	// non-empty ServerID binds the connection to it: every request on that
	// connection must then carry that ID in its header, and a request with
	// another ID closes the connection. Connections that are not TLS, or
	// carry no verified certificate, are refused when VerifyPeer is set.
	VerifyPeer func(cert *x509.Certificate, remote net.Addr) (ServerID, error)
}

// NetworkTransport is a Transport that carries RPCs over a StreamLayer in
// hashicorp/raft's wire format. Build it with NewTCPTransport,
// NewTLSTransport or NewNetworkTransportWithConfig.
//
// A request is one type byte and the msgpack-encoded request; the answer is
// a msgpack error string and the msgpack-encoded response. InstallSnapshot
// sends the snapshot's bytes right after the request on the same
// connection, which is then closed.
type NetworkTransport struct {
	// TimeoutScale is the number of snapshot bytes that earn one more
	// Timeout when sending an InstallSnapshot; when receiving one, it is
	// the number of bytes that must arrive within each FrameTimeout. It
	// starts at DefaultTimeoutScale; set it before the transport is used.
	TimeoutScale int

	stream   StreamLayer
	logger   hclog.Logger
	limitLog *limitedLogger

	// Settings, fixed at construction.
	maxPool         int
	maxInFlight     int
	timeout         time.Duration
	maxRPCBytes     int64
	frameTimeout    time.Duration
	idleTimeout     time.Duration
	maxConnsPerIP   int
	verifyPeer      func(cert *x509.Certificate, remote net.Addr) (ServerID, error)
	addressProvider ServerAddressProvider
	encodeHandle    *codec.MsgpackHandle
	decodeHandle    *codec.MsgpackHandle

	// consumeCh carries incoming RPCs to the node. The connection
	// goroutines send; the node receives. It is never closed: senders give
	// up when shutdownCh closes.
	consumeCh chan RPC

	// heartbeatMu guards heartbeatFn, which SetHeartbeatHandler may change
	// while connection goroutines read it.
	heartbeatMu sync.Mutex
	heartbeatFn func(RPC)

	// shutdownCh is closed by Close, once; everything that waits selects
	// on it.
	shutdownCh   chan struct{}
	shutdownOnce sync.Once

	// pool holds the idle outgoing connections.
	pool connPool
	// readIndexPeers holds the addresses (ServerAddress keys) that have
	// answered a ReadIndex request (net_read_index.go).
	readIndexPeers sync.Map

	// pipelines are the open pipelines, closed with the transport.
	pipelines pipelineSet

	// server holds the incoming connections.
	server serverConns

	// routines counts the goroutines the transport started.
	routines sync.WaitGroup
}

// NewNetworkTransport returns a transport over stream that keeps up to
// maxPool idle connections per peer, applies timeout to outgoing RPCs, and
// logs to logOutput (stderr if nil).
func NewNetworkTransport(stream StreamLayer, maxPool int, timeout time.Duration, logOutput io.Writer) *NetworkTransport {
	return NewNetworkTransportWithConfig(&NetworkTransportConfig{
		Stream:  stream,
		MaxPool: maxPool,
		Timeout: timeout,
		Logger:  newTransportLogger(logOutput),
	})
}

// NewNetworkTransportWithLogger is NewNetworkTransport with a logger
// instead of an output.
func NewNetworkTransportWithLogger(stream StreamLayer, maxPool int, timeout time.Duration, logger hclog.Logger) *NetworkTransport {
	return NewNetworkTransportWithConfig(&NetworkTransportConfig{
		Stream:  stream,
		MaxPool: maxPool,
		Timeout: timeout,
		Logger:  logger,
	})
}

// NewNetworkTransportWithConfig returns a transport with the given
// settings and starts accepting connections on config.Stream. A nil Logger
// in config is replaced by the default one, in config too, as
// hashicorp/raft does.
func NewNetworkTransportWithConfig(config *NetworkTransportConfig) *NetworkTransport {
	if config.Logger == nil {
		config.Logger = newTransportLogger(nil)
	}
	n := &NetworkTransport{
		TimeoutScale:    DefaultTimeoutScale,
		stream:          config.Stream,
		logger:          config.Logger,
		limitLog:        newLimitedLogger(config.Logger, limitedLogInterval),
		maxPool:         config.MaxPool,
		maxInFlight:     config.MaxRPCsInFlight,
		timeout:         config.Timeout,
		maxRPCBytes:     config.MaxRPCBytes,
		frameTimeout:    config.FrameTimeout,
		idleTimeout:     config.IdleTimeout,
		maxConnsPerIP:   config.MaxConnsPerIP,
		verifyPeer:      config.VerifyPeer,
		addressProvider: config.ServerAddressProvider,
		encodeHandle:    newWireEncodeHandle(config.MsgpackUseNewTimeFormat),
		decodeHandle:    newWireDecodeHandle(),
		consumeCh:       make(chan RPC),
		shutdownCh:      make(chan struct{}),
	}
	if n.maxInFlight == 0 {
		n.maxInFlight = DefaultMaxRPCsInFlight
	}
	switch {
	case n.maxRPCBytes == 0:
		n.maxRPCBytes = DefaultMaxRPCBytes
	case n.maxRPCBytes < 0:
		n.maxRPCBytes = 0 // valueReader: no limit
	}
	switch {
	case n.frameTimeout == 0:
		n.frameTimeout = DefaultFrameTimeout
	case n.frameTimeout < 0:
		n.frameTimeout = 0 // no deadline
	}
	if n.idleTimeout < 0 {
		n.idleTimeout = 0
	}
	switch {
	case n.maxConnsPerIP == 0:
		n.maxConnsPerIP = DefaultMaxConnsPerIP
	case n.maxConnsPerIP < 0:
		n.maxConnsPerIP = 0 // no limit
	}
	n.pool.init()
	n.server.init()
	n.goFunc(n.acceptLoop)
	return n
}

// newTransportLogger builds the default logger, writing to out (stderr if
// nil).
func newTransportLogger(out io.Writer) hclog.Logger {
	if out == nil {
		out = os.Stderr
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:   logName,
		Output: out,
		Level:  hclog.DefaultLevel,
	})
}

// goFunc runs f on a goroutine counted in routines.
func (n *NetworkTransport) goFunc(f func()) {
	n.routines.Add(1)
	go func() {
		defer n.routines.Done()
		f()
	}()
}

// SetHeartbeatHandler registers cb as the fast path for heartbeats: an
// AppendEntries with a term and a leader address but no entries, no
// previous entry and no commit index is handed to cb on the connection's
// own goroutine instead of going through Consumer, so heartbeats are never
// queued behind slow requests. cb must answer the RPC. Nil removes the
// fast path.
func (n *NetworkTransport) SetHeartbeatHandler(cb func(rpc RPC)) {
	n.heartbeatMu.Lock()
	defer n.heartbeatMu.Unlock()
	n.heartbeatFn = cb
}

func (n *NetworkTransport) heartbeatHandler() func(RPC) {
	n.heartbeatMu.Lock()
	defer n.heartbeatMu.Unlock()
	return n.heartbeatFn
}

// Consumer returns the channel of incoming RPCs. Each must be answered
// with Respond.
func (n *NetworkTransport) Consumer() <-chan RPC {
	return n.consumeCh
}

// LocalAddr returns the address of the stream layer, as peers should dial
// it.
func (n *NetworkTransport) LocalAddr() ServerAddress {
	return ServerAddress(n.stream.Addr().String())
}

// EncodePeer returns the address bytes raft puts in RPC headers: the
// ServerAddressProvider's address for id if there is one, else p.
func (n *NetworkTransport) EncodePeer(id ServerID, p ServerAddress) []byte {
	return []byte(n.dialAddress(id, p))
}

// DecodePeer returns the address that EncodePeer encoded.
func (n *NetworkTransport) DecodePeer(buf []byte) ServerAddress {
	return ServerAddress(buf)
}

// dialAddress returns the address to reach id at.
func (n *NetworkTransport) dialAddress(id ServerID, fallback ServerAddress) ServerAddress {
	if n.addressProvider == nil {
		return fallback
	}
	addr, err := n.addressProvider.ServerAddr(id)
	if err != nil {
		n.logger.Warn("unable to get address for server, using fallback address",
			"id", id, "fallback", fallback, "error", err)
		return fallback
	}
	return addr
}

// IsShutdown reports whether Close has been called.
func (n *NetworkTransport) IsShutdown() bool {
	select {
	case <-n.shutdownCh:
		return true
	default:
		return false
	}
}

// MaxRPCBytes returns the most one incoming request may take, as
// NetworkTransportConfig.MaxRPCBytes counts it, or 0 when there is no
// limit. It makes NetworkTransport a WithMaxRPCBytes.
func (n *NetworkTransport) MaxRPCBytes() int64 { return n.maxRPCBytes }

// CloseStreams closes every idle pooled connection, and every incoming
// connection once the request it is serving, if any, has been answered.
// The transport keeps working: new RPCs dial new connections.
func (n *NetworkTransport) CloseStreams() {
	n.pool.closeAll()
	n.server.closeStreams()
}

// Close stops the transport: it stops accepting connections, closes the
// incoming ones, the pooled ones and the open pipelines, and makes later
// RPCs fail with ErrTransportShutdown. RPCs in progress fail once their
// connection or deadline gives out. Calling Close again does nothing.
func (n *NetworkTransport) Close() error {
	n.shutdownOnce.Do(func() {
		close(n.shutdownCh)
		if err := n.stream.Close(); err != nil {
			n.logger.Debug("closing the stream layer", "error", err)
		}
		n.server.closeAll()
		n.pool.shutdown()
		n.pipelines.closeAll()
	})
	return nil
}
