package raft

import (
	"bufio"
	"fmt"
	"net"
	"sync"
)

// netConn is an outgoing connection with its encoder and decoder. It is
// used by one RPC (or one pipeline) at a time: whoever took it from the
// pool or dialed it owns it until it gives it back or releases it.
type netConn struct {
	target ServerAddress
	conn   net.Conn
	enc    *wireEncoder
	dec    *wireDecoder
}

// Release closes the connection.
func (c *netConn) Release() error {
	return c.conn.Close()
}

// readResponse reads an answer: the error text, then the response into
// resp. The connection may be reused afterwards only if reusable is true,
// which is the case whenever both values were read, whatever the remote
// error was.
func (c *netConn) readResponse(resp interface{}) (reusable bool, err error) {
	errText, err := c.dec.decodeErrText()
	if err != nil {
		return false, fmt.Errorf("reading response error from %s: %w", c.target, err)
	}
	if err := c.dec.decode(resp); err != nil {
		return false, fmt.Errorf("reading response from %s: %w", c.target, err)
	}
	if errText != "" {
		// The peer's text, unchanged: callers match on it (a pre-vote
		// answered "unexpected command" counts as granted).
		return true, remoteError(errText)
	}
	return true, nil
}

// remoteError is an error reported by the peer, carried as its text.
type remoteError string

func (e remoteError) Error() string { return string(e) }

// connPool keeps idle outgoing connections per target address, most
// recently returned first.
type connPool struct {
	// mu guards the fields below: RPC goroutines take and return
	// connections concurrently, and Close and CloseStreams empty the pool.
	mu    sync.Mutex
	conns map[ServerAddress][]*netConn
	// closed is set by shutdown; nothing is pooled afterwards.
	closed bool
}

func (p *connPool) init() {
	p.conns = make(map[ServerAddress][]*netConn)
}

// take returns the most recently returned idle connection to target, or
// nil.
func (p *connPool) take(target ServerAddress) *netConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	conns := p.conns[target]
	if len(conns) == 0 {
		return nil
	}
	last := len(conns) - 1
	c := conns[last]
	conns[last] = nil
	p.conns[target] = conns[:last]
	return c
}

// put keeps c for reuse if its target has fewer than max idle connections
// and the pool is open; otherwise it closes c.
func (p *connPool) put(c *netConn, max int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	conns := p.conns[c.target]
	if p.closed || len(conns) >= max {
		_ = c.Release()
		return
	}
	p.conns[c.target] = append(conns, c)
}

// closeAll closes and forgets every idle connection.
func (p *connPool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeAllLocked()
}

// shutdown closes every idle connection and refuses any more.
func (p *connPool) shutdown() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.closeAllLocked()
}

func (p *connPool) closeAllLocked() {
	for target, conns := range p.conns {
		for _, c := range conns {
			_ = c.Release()
		}
		delete(p.conns, target)
	}
}

// getConn returns an idle pooled connection to target, or dials one.
func (n *NetworkTransport) getConn(target ServerAddress) (*netConn, error) {
	if n.IsShutdown() {
		return nil, ErrTransportShutdown
	}
	if c := n.pool.take(target); c != nil {
		return c, nil
	}
	return n.dialConn(target)
}

// dialConn dials a new connection to target.
func (n *NetworkTransport) dialConn(target ServerAddress) (*netConn, error) {
	conn, err := n.stream.Dial(target, n.timeout)
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", target, err)
	}
	w := bufio.NewWriterSize(conn, clientWriteBufferSize)
	return &netConn{
		target: target,
		conn:   conn,
		enc:    newWireEncoder(w, n.encodeHandle),
		dec:    newWireDecoder(bufio.NewReader(conn), n.maxRPCBytes, n.decodeHandle),
	}, nil
}

// returnConn gives c back to the pool, or closes it if the pool is full
// or the transport is shut down.
func (n *NetworkTransport) returnConn(c *netConn) {
	n.pool.put(c, n.maxPool)
}
