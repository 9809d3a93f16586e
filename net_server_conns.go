package raft

import (
	"bufio"
	"fmt"
	"net"
	"sync"
)

// serverConn is an incoming connection. Its reading goroutine (serveConn)
// owns r and dec, its writing goroutine (writeAnswers) owns enc; only the
// close bookkeeping under mu is shared.
type serverConn struct {
	conn     net.Conn
	remoteIP string

	// Owned by the reading goroutine, except that an InstallSnapshot body
	// is read through r by the node and then by the writing goroutine while
	// the reading goroutine waits (net_server_answers.go); enc is the
	// writing goroutine's.
	r   *bufio.Reader
	enc *wireEncoder
	dec *wireDecoder
	// boundID, if set by VerifyPeer at the handshake, is the ServerID every
	// request on this connection must carry.
	boundID ServerID

	// mu guards busy and closing: CloseStreams marks connections from the
	// caller's goroutine while their own goroutines serve requests.
	mu sync.Mutex
	// busy counts the requests between their first byte and the end of
	// their answer.
	busy int
	// closing asks the goroutines to stop once the requests started, if
	// any, are answered.
	closing bool
}

// remoteIP returns the host part of addr, which is what MaxConnsPerIP
// counts; an address without a port counts as a whole.
func remoteIP(addr net.Addr) string {
	if addr == nil {
		return ""
	}
	s := addr.String()
	if host, _, err := net.SplitHostPort(s); err == nil {
		return host
	}
	return s
}

// beginRequest counts one more request started, or reports false if the
// connection should close instead.
func (c *serverConn) beginRequest() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.busy++
	return true
}

// endRequest counts one request answered. If that was the last one and
// the connection was asked to close, it closes it, which stops the reading
// goroutine.
func (c *serverConn) endRequest() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.busy--
	if c.closing && c.busy == 0 {
		_ = c.conn.Close()
	}
}

// closeWhenIdle closes the connection now if no request is started and
// unanswered, or has it closed after the last such answer.
func (c *serverConn) closeWhenIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closing = true
	if c.busy == 0 {
		_ = c.conn.Close()
	}
}

// isClosing reports whether the connection was asked to close.
func (c *serverConn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// serverConns is the set of open incoming connections, counted per remote
// IP.
type serverConns struct {
	// mu guards the fields below: the accept loop adds connections, their
	// goroutines remove them, and Close and CloseStreams walk the set.
	mu    sync.Mutex
	open  map[*serverConn]struct{}
	perIP map[string]int
	// closed is set by closeAll; no connection is added afterwards.
	closed bool
}

func (s *serverConns) init() {
	s.open = make(map[*serverConn]struct{})
	s.perIP = make(map[string]int)
}

// errTooManyConns refuses a connection beyond MaxConnsPerIP.
type errTooManyConns struct {
	ip  string
	max int
}

func (e errTooManyConns) Error() string {
	return fmt.Sprintf("remote %s already holds %d connections, the most allowed", e.ip, e.max)
}

// add records c, unless the transport is closed (ErrTransportShutdown) or
// c's remote IP already holds maxPerIP connections (maxPerIP 0: no limit).
func (s *serverConns) add(c *serverConn, maxPerIP int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrTransportShutdown
	}
	if maxPerIP > 0 && s.perIP[c.remoteIP] >= maxPerIP {
		return errTooManyConns{ip: c.remoteIP, max: maxPerIP}
	}
	s.open[c] = struct{}{}
	s.perIP[c.remoteIP]++
	return nil
}

// remove forgets c and closes it.
func (s *serverConns) remove(c *serverConn) {
	_ = c.conn.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.open[c]; !ok {
		return
	}
	delete(s.open, c)
	if s.perIP[c.remoteIP]--; s.perIP[c.remoteIP] <= 0 {
		delete(s.perIP, c.remoteIP)
	}
}

// count returns the number of open connections from ip.
func (s *serverConns) count(ip string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perIP[ip]
}

// closeStreams asks every open connection to close once it is idle.
func (s *serverConns) closeStreams() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.open {
		c.closeWhenIdle()
	}
}

// closeAll closes every open connection at once and refuses new ones. The
// goroutines notice and remove their connections.
func (s *serverConns) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.open {
		c.mu.Lock()
		c.closing = true
		c.mu.Unlock()
		_ = c.conn.Close()
	}
}
