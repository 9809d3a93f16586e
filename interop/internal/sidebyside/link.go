package sidebyside

import (
	"errors"
	"net"
	"sync"
	"time"
)

// ErrSevered is what a crashed node's link answers every dial with.
var ErrSevered = errors.New("sidebyside: link severed")

// Link is the connection layer under a node's network transport: a TCP
// listener on a free port of 127.0.0.1 and a dialer, which remembers
// every connection it made or accepted. Sever cuts the node off the way
// a crash would: every connection drops, the port closes and no new
// connection is made. Close closes everything too, so that no connection
// (and no goroutine of either library serving one) outlives a run.
//
// Each library adapts it to its own StreamLayer interface; connections
// are handed over unwrapped, so it costs nothing per read or write.
type Link struct {
	ln net.Listener

	mu      sync.Mutex
	conns   []net.Conn
	severed bool
	closed  bool
	done    chan struct{} // closed by Close
}

// Listen opens a link on a free port of 127.0.0.1.
func Listen() (*Link, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &Link{ln: ln, done: make(chan struct{})}, nil
}

// Accept returns the next incoming connection. Once the link is severed
// it blocks until Close, as a dead process accepts nothing.
func (l *Link) Accept() (net.Conn, error) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			l.mu.Lock()
			severed, closed := l.severed, l.closed
			l.mu.Unlock()
			if severed && !closed {
				<-l.done
			}
			return nil, err
		}
		if l.keep(c) {
			return c, nil
		}
	}
}

// Dial connects to addr within timeout.
func (l *Link) Dial(addr string, timeout time.Duration) (net.Conn, error) {
	l.mu.Lock()
	refused := l.severed || l.closed
	l.mu.Unlock()
	if refused {
		return nil, ErrSevered
	}
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	if !l.keep(c) {
		return nil, ErrSevered
	}
	return c, nil
}

// keep records c, or closes it if the link was cut meanwhile.
func (l *Link) keep(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.severed || l.closed {
		c.Close()
		return false
	}
	// A run makes a handful of connections (transports pool and reuse
	// them), so the list is kept whole, closed ones included.
	l.conns = append(l.conns, c)
	return true
}

// Addr is the listener's address.
func (l *Link) Addr() net.Addr { return l.ln.Addr() }

// Sever cuts the link: it closes the listener and every connection, and
// refuses new ones.
func (l *Link) Sever() {
	l.mu.Lock()
	l.severed = true
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()
	l.ln.Close()
	for _, c := range conns {
		c.Close()
	}
}

// Close closes the listener and every connection the link made or
// accepted.
func (l *Link) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()
	l.ln.Close() // an error only says Sever closed it first
	for _, c := range conns {
		c.Close()
	}
	return nil
}
