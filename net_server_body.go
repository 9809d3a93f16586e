package raft

import (
	"bufio"
	"net"
	"time"
)

// bodyReader reads the snapshot bytes that follow an InstallSnapshot
// request, and makes the sender keep them coming: every TimeoutScale bytes
// must arrive within FrameTimeout of the previous ones, the first within
// FrameTimeout of the node's first read. A deadline scaled by the Size the
// request claims would not do, since a peer could claim a huge Size and
// then trickle. Waiting for the node to start reading costs the sender
// nothing, as waiting for any answer does.
//
// It is read by the node's goroutine while the connection's goroutine
// waits for the answer, and then by the connection's goroutine to drain
// what the node left; never by both at once.
type bodyReader struct {
	conn    net.Conn
	r       *bufio.Reader
	timeout time.Duration // FrameTimeout; 0 means no deadline
	scale   int           // TimeoutScale
	// untilExtend is how many more bytes may arrive before the deadline
	// moves; the deadline is set on the first read.
	untilExtend int
	started     bool
}

func (n *NetworkTransport) newBodyReader(c *serverConn) *bodyReader {
	scale := n.TimeoutScale
	if scale <= 0 {
		scale = DefaultTimeoutScale
	}
	return &bodyReader{conn: c.conn, r: c.r, timeout: n.frameTimeout, scale: scale}
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if !b.started || b.untilExtend <= 0 {
		var deadline time.Time
		if b.timeout > 0 {
			deadline = time.Now().Add(b.timeout)
		}
		_ = b.conn.SetReadDeadline(deadline)
		b.started, b.untilExtend = true, b.scale
	}
	if len(p) > b.untilExtend {
		p = p[:b.untilExtend]
	}
	var n int
	var err error
	if b.r.Buffered() > 0 {
		n, err = b.r.Read(p)
	} else {
		// Nothing is buffered ahead: reading the connection itself saves
		// copying the bytes through the buffer when p is smaller than it,
		// as it is whenever the allowance above is partly used.
		n, err = b.conn.Read(p)
	}
	b.untilExtend -= n
	return n, err
}
