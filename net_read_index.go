package raft

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// ReadIndex sends a ReadIndex request to target and waits for the answer
// (WithReadIndex). A peer that closes the connection after taking the
// request and before answering anything is taken for one that does not
// know the RPC, as a server running hashicorp/raft closes it on a request
// type it does not know: the error then wraps ErrReadIndexUnsupported.
//
// That conclusion needs a connection the peer cannot have closed for
// another reason, such as its idle timeout. So the first request to an
// address goes on a connection dialed for it, and costs a peer without
// the RPC one connection and one request. Once the address has answered
// one, requests use pooled connections, and one that fails so, or on
// which the request cannot be written, is followed by one attempt on a
// fresh connection (a read index may be asked for twice).
func (n *NetworkTransport) ReadIndex(id ServerID, target ServerAddress, args *ReadIndexRequest, resp *ReadIndexResponse) error {
	addr := n.dialAddress(id, target)
	if n.IsShutdown() {
		return ErrTransportShutdown
	}
	if _, known := n.readIndexPeers.Load(addr); known {
		if c := n.pool.take(addr); c != nil {
			err := n.readIndexOn(c, args, resp)
			if err == nil || !(peerClosedWithoutAnswer(err) || errors.Is(err, errSendFailed)) {
				return err
			}
		}
	}
	c, err := n.dialConn(addr)
	if err != nil {
		return err
	}
	err = n.readIndexOn(c, args, resp)
	if peerClosedWithoutAnswer(err) {
		n.readIndexPeers.Delete(addr)
		return fmt.Errorf("%w: %s closed the connection without answering (%v)", ErrReadIndexUnsupported, addr, err)
	}
	var remote remoteError
	if errors.As(err, &remote) && string(remote) == errUnexpectedCommand {
		// A peer whose transport hands unknown requests to its node,
		// which refuses them so.
		n.readIndexPeers.Delete(addr)
		return fmt.Errorf("%w: %s answered %q", ErrReadIndexUnsupported, addr, errUnexpectedCommand)
	}
	if err == nil {
		n.readIndexPeers.Store(addr, struct{}{})
	}
	return err
}

// errNoAnswer marks a connection that ended before the first byte of an
// answer; errSendFailed one on which the request could not be written.
var (
	errNoAnswer   = errors.New("connection closed before any answer")
	errSendFailed = errors.New("request not sent")
)

// readIndexOn runs one ReadIndex exchange on c, within one Timeout, and
// pools c again if the exchange completed.
func (n *NetworkTransport) readIndexOn(c *netConn, args *ReadIndexRequest, resp *ReadIndexResponse) error {
	if n.timeout > 0 {
		_ = c.conn.SetDeadline(time.Now().Add(n.timeout))
	}
	if err := c.enc.writeRequest(rpcReadIndex, args); err != nil {
		_ = c.Release()
		return fmt.Errorf("sending to %s: %w: %w", c.target, errSendFailed, err)
	}
	var errText string
	if err := c.dec.decode(&errText); err != nil {
		_ = c.Release()
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: %w", errNoAnswer, err)
		}
		return fmt.Errorf("reading response error from %s: %w", c.target, err)
	}
	if err := c.dec.decode(resp); err != nil {
		_ = c.Release()
		return fmt.Errorf("reading response from %s: %w", c.target, err)
	}
	n.returnConn(c)
	if errText != "" {
		return remoteError(errText)
	}
	return nil
}
