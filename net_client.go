package raft

import (
	"fmt"
	"io"
	"math"
	"time"
)

// AppendEntries sends an AppendEntries RPC to target and waits for the
// answer. An error is a failure to reach target or to get its answer within
// the transport's Timeout, or the error the target answered with.
func (n *NetworkTransport) AppendEntries(id ServerID, target ServerAddress, args *AppendEntriesRequest, resp *AppendEntriesResponse) error {
	return n.genericRPC(id, target, rpcAppendEntries, args, resp)
}

// RequestVote sends a RequestVote RPC to target and waits for the answer.
func (n *NetworkTransport) RequestVote(id ServerID, target ServerAddress, args *RequestVoteRequest, resp *RequestVoteResponse) error {
	return n.genericRPC(id, target, rpcRequestVote, args, resp)
}

// RequestPreVote sends a RequestPreVote RPC to target and waits for the
// answer.
func (n *NetworkTransport) RequestPreVote(id ServerID, target ServerAddress, args *RequestPreVoteRequest, resp *RequestPreVoteResponse) error {
	return n.genericRPC(id, target, rpcRequestPreVote, args, resp)
}

// TimeoutNow sends a TimeoutNow RPC to target and waits for the answer.
func (n *NetworkTransport) TimeoutNow(id ServerID, target ServerAddress, args *TimeoutNowRequest, resp *TimeoutNowResponse) error {
	return n.genericRPC(id, target, rpcTimeoutNow, args, resp)
}

// genericRPC runs one request and answer on a pooled or new connection,
// all within one Timeout, and pools the connection again if the exchange
// completed.
func (n *NetworkTransport) genericRPC(id ServerID, target ServerAddress, t rpcType, args, resp interface{}) error {
	c, err := n.getConn(n.dialAddress(id, target))
	if err != nil {
		return err
	}
	if n.timeout > 0 {
		_ = c.conn.SetDeadline(time.Now().Add(n.timeout))
	}
	if err := c.enc.writeRequest(t, args); err != nil {
		_ = c.Release()
		return fmt.Errorf("sending to %s: %w", c.target, err)
	}
	reusable, err := c.readResponse(resp)
	if reusable {
		n.returnConn(c)
	} else {
		_ = c.Release()
	}
	return err
}

// InstallSnapshot sends an InstallSnapshot RPC followed by args.Size bytes
// read from data, and waits for the answer. The bytes are streamed, never
// held in memory whole. The deadline is one Timeout per TimeoutScale bytes,
// and at least one Timeout. The connection is closed afterwards whatever
// happened, since a broken stream leaves it in an unknown state.
func (n *NetworkTransport) InstallSnapshot(id ServerID, target ServerAddress, args *InstallSnapshotRequest, resp *InstallSnapshotResponse, data io.Reader) error {
	c, err := n.getConn(n.dialAddress(id, target))
	if err != nil {
		return err
	}
	defer func() { _ = c.Release() }()

	if d := scaledTimeout(n.timeout, args.Size, n.TimeoutScale); d > 0 {
		_ = c.conn.SetDeadline(time.Now().Add(d))
	}
	if err := c.enc.writeRequest(rpcInstallSnapshot, args); err != nil {
		return fmt.Errorf("sending to %s: %w", c.target, err)
	}
	if args.Size > 0 {
		sent, err := sendSnapshotBody(c.enc.w, data, args.Size)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return fmt.Errorf("snapshot data ended after %d of %d bytes", sent, args.Size)
		}
		if err != nil {
			return fmt.Errorf("streaming snapshot to %s after %d bytes: %w", c.target, sent, err)
		}
	}
	if err := c.enc.w.Flush(); err != nil {
		return fmt.Errorf("streaming snapshot to %s: %w", c.target, err)
	}
	_, err = c.readResponse(resp)
	return err
}

// snapshotSendChunk is how much of a snapshot is read before it is written
// to the connection: a chunk larger than the connection's write buffer goes
// to the socket in one call, without being copied into the buffer, and the
// FileSnapshotStore's reader fills it with one read of the file.
const snapshotSendChunk = 1 << 20

// sendSnapshotBody writes size bytes read from data to w, in chunks of
// snapshotSendChunk. A chunk is written only once it was read whole, so a
// reader that fails instead of returning its last bytes (such as a
// snapshot whose CRC does not match) leaves the receiver short of the size
// it was promised. It returns how many bytes it read from data, which
// after a failed write is how many it wrote. An error from data ending
// early is io.EOF or io.ErrUnexpectedEOF.
func sendSnapshotBody(w io.Writer, data io.Reader, size int64) (int64, error) {
	buf := make([]byte, min(size, snapshotSendChunk))
	var sent int64
	for sent < size {
		chunk := buf[:min(size-sent, int64(len(buf)))]
		if n, err := io.ReadFull(data, chunk); err != nil {
			return sent + int64(n), err
		}
		n, err := w.Write(chunk)
		sent += int64(n)
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// scaledTimeout returns base once for every scale bytes of size, and at
// least once, as hashicorp/raft scales its deadlines (net_transport_test.go
// checks the rule). It returns 0, meaning
// no deadline, when base is 0 or the product would overflow.
func scaledTimeout(base time.Duration, size int64, scale int) time.Duration {
	if base <= 0 {
		return 0
	}
	if scale <= 0 {
		scale = DefaultTimeoutScale
	}
	factor := size / int64(scale)
	if factor <= 1 {
		return base
	}
	if factor > math.MaxInt64/int64(base) {
		return 0
	}
	return base * time.Duration(factor)
}
