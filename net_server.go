package raft

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-metrics"
)

// The server side. One goroutine accepts connections; each accepted
// connection gets one goroutine that reads its requests: wait for a
// request's first byte (no deadline, or IdleTimeout), read the rest within
// FrameTimeout, hand the RPC to the node, and loop without waiting for the
// answer, up to serverReadAhead requests ahead of it. A second goroutine
// per connection waits for the node's answers and writes them, each within
// FrameTimeout, in the order of the requests (net_server_answers.go). Anything wrong with a
// request (unknown type, bytes that are not msgpack, more than MaxRPCBytes,
// a stall, a ServerID that VerifyPeer did not bind) closes the connection
// without an answer, as hashicorp/raft does for the cases it checks.

const (
	// acceptBackoffBase and acceptBackoffMax bound the pause after a failed
	// Accept, which doubles while failures continue.
	acceptBackoffBase = 5 * time.Millisecond
	acceptBackoffMax  = time.Second
)

// Metric labels per kind of request, built once.
var rpcLabels = func() map[string][]metrics.Label {
	labels := make(map[string][]metrics.Label)
	for _, name := range []string{"AppendEntries", "Heartbeat", "RequestVote", "RequestPreVote", "InstallSnapshot", "TimeoutNow", "ReadIndex"} {
		labels[name] = []metrics.Label{{Name: "rpcType", Value: name}}
	}
	return labels
}()

// acceptLoop accepts connections until the transport is closed.
func (n *NetworkTransport) acceptLoop() {
	var backoff time.Duration
	for {
		conn, err := n.stream.Accept()
		if err != nil {
			if n.IsShutdown() {
				return
			}
			backoff = min(max(2*backoff, acceptBackoffBase), acceptBackoffMax)
			n.logger.Error("failed to accept connection", "error", err)
			if !n.pause(backoff) {
				return
			}
			continue
		}
		backoff = 0

		c := &serverConn{conn: conn, remoteIP: remoteIP(conn.RemoteAddr())}
		if err := n.server.add(c, n.maxConnsPerIP); err != nil {
			_ = conn.Close()
			if errors.Is(err, ErrTransportShutdown) {
				return
			}
			n.limitLog.log(hclog.Warn, "too-many-conns", "refusing connection",
				"remote-address", conn.RemoteAddr().String(), "error", err)
			continue
		}
		n.logger.Debug("accepted connection", "local-address", n.LocalAddr(), "remote-address", conn.RemoteAddr().String())
		n.goFunc(func() { n.serveConn(c) })
	}
}

// pause waits for d, or reports false if the transport closes first.
func (n *NetworkTransport) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-n.shutdownCh:
		return false
	}
}

// serveConn serves one incoming connection until it ends. This goroutine
// reads requests and hands them to the node; a second one
// (net_server_answers.go) writes the answers, in request order. Up to
// serverReadAhead requests may be read before the first of them is
// answered, so the requests of a pipeline all reach the node while the
// oldest is still being made durable, and the node can store them
// together.
func (n *NetworkTransport) serveConn(c *serverConn) {
	defer n.server.remove(c)
	if err := n.admitPeer(c); err != nil {
		n.logConnEnd(c, err)
		return
	}
	c.r = bufio.NewReaderSize(c.conn, serverReadBufferSize)
	c.enc = newWireEncoder(bufio.NewWriter(c.conn), n.encodeHandle)
	c.dec = newWireDecoder(c.r, n.maxRPCBytes, n.decodeHandle)
	q := newAnswerQueue(serverReadAhead)
	n.goFunc(func() { n.writeAnswers(c, q) })
	err := n.readRequests(c, q)
	q.close()
	<-q.done
	if q.err == nil {
		// Otherwise the writer failed first, logged why and closed the
		// connection under the reader.
		n.logConnEnd(c, err)
	}
}

// readRequests reads requests and hands them to the node until the
// connection ends, and returns why it ended. Before starting on a request
// it takes one of the queue's slots, which the writer gives back once the
// request is answered: that bounds the requests read ahead.
func (n *NetworkTransport) readRequests(c *serverConn, q *answerQueue) error {
	for {
		select {
		case q.slots <- struct{}{}:
		case <-q.done:
			return errAnswersFailed
		}
		a, err := n.serveRequest(c, q)
		if err != nil {
			return err
		}
		if a.resume != nil {
			// The snapshot body comes before the next request: wait until
			// the node has read it and the rest is drained.
			select {
			case <-a.resume:
			case <-q.done:
				return errAnswersFailed
			}
		}
	}
}

// Reasons a connection ends that are not failures of the peer.
var (
	errIdleTimeout   = errors.New("connection idle for longer than IdleTimeout")
	errStreamsClosed = errors.New("connection closed by CloseStreams or Close")
	errAnswersFailed = errors.New("writing answers failed")
)

// errUnknownRPCType is a request whose type byte names no RPC.
type errUnknownRPCType byte

func (e errUnknownRPCType) Error() string { return fmt.Sprintf("unknown rpc type %d", byte(e)) }

// errWrongPeer is a request whose header names another server than the
// one VerifyPeer bound the connection to.
type errWrongPeer struct {
	bound ServerID
	got   []byte
}

func (e errWrongPeer) Error() string {
	return fmt.Sprintf("request header carries server ID %q on a connection bound to %q", e.got, e.bound)
}

// serveRequest reads one request, queues it for the writer and hands it to
// the node, and returns what the writer needs to answer it. Any error ends
// the connection.
func (n *NetworkTransport) serveRequest(c *serverConn, q *answerQueue) (*pendingAnswer, error) {
	waitStart := time.Now()
	t, err := n.awaitRequest(c)
	if err != nil {
		return nil, err
	}
	if !c.beginRequest() {
		return nil, errStreamsClosed
	}
	if n.frameTimeout > 0 {
		_ = c.conn.SetReadDeadline(time.Now().Add(n.frameTimeout))
	}
	metrics.MeasureSince(keyNetGetRPCType, waitStart)

	decodeStart := time.Now()
	rpc, label, heartbeat, err := n.readRequest(c, t)
	if err != nil {
		return nil, err
	}
	labels := rpcLabels[label]
	metrics.MeasureSinceWithLabels(keyNetRPCDecode, decodeStart, labels)

	enqueueStart := time.Now()
	a := &pendingAnswer{body: rpc.Reader, labels: labels, enqueued: enqueueStart, respCh: make(chan RPCResponse, 1)}
	if rpc.Reader != nil {
		a.resume = make(chan struct{})
	}
	// The node answers through Respond, which hands the answer to the
	// queue (rpcAnswerer): the writer sleeps until the oldest request is
	// answered, and the request costs it no wake-up now. Code written for
	// the reference may send on RespChan instead; the writer takes such
	// an answer once the request is the oldest (writeAnswers).
	rpc.answerer = a
	rpc.RespChan = a.respCh
	q.push(a) // the slots bound what is queued
	if fn := n.heartbeatHandler(); heartbeat && fn != nil {
		fn(rpc)
	} else {
		select {
		case n.consumeCh <- rpc:
		case <-n.shutdownCh:
			return nil, ErrTransportShutdown
		case <-q.done:
			return nil, errAnswersFailed
		}
	}
	metrics.MeasureSinceWithLabels(keyNetRPCEnqueue, enqueueStart, labels)
	return a, nil
}

// awaitRequest waits for the type byte that opens the next request: for as
// long as it takes, or IdleTimeout.
func (n *NetworkTransport) awaitRequest(c *serverConn) (rpcType, error) {
	var idleDeadline time.Time
	if n.idleTimeout > 0 {
		idleDeadline = time.Now().Add(n.idleTimeout)
	}
	_ = c.conn.SetReadDeadline(idleDeadline)
	b, err := c.r.ReadByte()
	switch {
	case err == nil:
		return rpcType(b), nil
	case c.isClosing():
		return 0, errStreamsClosed
	case errors.Is(err, os.ErrDeadlineExceeded):
		return 0, errIdleTimeout
	default:
		return 0, err
	}
}

// readRequest decodes the request that follows a type byte and prepares
// its RPC (serveRequest adds RespChan). It reports the metric label and whether the
// request is a heartbeat for the fast path.
func (n *NetworkTransport) readRequest(c *serverConn, t rpcType) (rpc RPC, label string, heartbeat bool, err error) {
	req := t.newRequest()
	if req == nil {
		return RPC{}, "", false, errUnknownRPCType(t)
	}
	if err := c.dec.decode(req); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return RPC{}, "", false, fmt.Errorf("decoding %s request: %w", t, err)
	}
	if c.boundID != "" {
		if id := req.(WithRPCHeader).GetRPCHeader().ID; ServerID(id) != c.boundID {
			return RPC{}, "", false, errWrongPeer{bound: c.boundID, got: id}
		}
	}
	rpc = RPC{Command: req}
	label = t.String()
	switch req := req.(type) {
	case *AppendEntriesRequest:
		if isHeartbeat(req) {
			label, heartbeat = "Heartbeat", true
		}
	case *InstallSnapshotRequest:
		rpc.Reader = io.LimitReader(n.newBodyReader(c), req.Size)
	}
	return rpc, label, heartbeat, nil
}

// logConnEnd logs why a connection ended: quietly when it is the normal
// course of things, at a limited rate when a peer misbehaved.
func (n *NetworkTransport) logConnEnd(c *serverConn, err error) {
	remote := c.conn.RemoteAddr().String()
	var unknown errUnknownRPCType
	var wrongPeer errWrongPeer
	var refused errPeerRefused
	switch {
	case n.IsShutdown(), c.isClosing(), errors.Is(err, errStreamsClosed), errors.Is(err, ErrTransportShutdown):
		n.logger.Trace("connection closed", "remote-address", remote)
	case errors.Is(err, io.EOF):
		n.logger.Trace("connection closed by peer", "remote-address", remote)
	case errors.Is(err, errIdleTimeout):
		n.logger.Debug("closing idle connection", "remote-address", remote, "idle-timeout", n.idleTimeout)
	case errors.As(err, &unknown):
		n.limitLog.log(hclog.Error, "unknown-rpc-type", "failed to decode incoming command", "remote-address", remote, "error", err)
	case errors.Is(err, errValueTooLarge):
		n.limitLog.log(hclog.Error, "oversized", "closing connection: request too large", "remote-address", remote, "max-rpc-bytes", n.maxRPCBytes, "error", err)
	case errors.Is(err, errMalformedValue):
		n.limitLog.log(hclog.Error, "malformed", "failed to decode incoming command", "remote-address", remote, "error", err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		n.limitLog.log(hclog.Error, "stalled", "closing connection: request or answer stalled", "remote-address", remote, "frame-timeout", n.frameTimeout, "error", err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		n.limitLog.log(hclog.Error, "truncated", "failed to decode incoming command: connection closed mid-request", "remote-address", remote, "error", err)
	case errors.As(err, &wrongPeer):
		n.limitLog.log(hclog.Error, "wrong-peer", "closing connection: request from another server than the certificate's", "remote-address", remote, "error", err)
	case errors.As(err, &refused):
		n.limitLog.log(hclog.Error, "peer-refused", "refusing connection", "remote-address", remote, "error", err)
	default:
		n.limitLog.log(hclog.Error, "conn-error", "closing connection", "remote-address", remote, "error", err)
	}
}
