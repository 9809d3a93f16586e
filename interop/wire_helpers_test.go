package interop

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"reflect"
	"sync"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
	qraft "github.com/quorumkit/raft"
)

// The helpers of the wire tests: a TCP stream layer that records what each
// side writes, one wrapper per library around its NetworkTransport, and a
// converter between the two libraries' identical message structs. The
// tests speak our types; the reference's side converts at its edge.

// wireRecorder keeps the bytes written on a set of connections.
type wireRecorder struct {
	mu  sync.Mutex // connections of several goroutines write
	buf bytes.Buffer
}

func (r *wireRecorder) record(p []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf.Write(p)
}

// take returns what was recorded since the last take.
func (r *wireRecorder) take() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]byte(nil), r.buf.Bytes()...)
	r.buf.Reset()
	return out
}

// wireRecConn records every byte written before it goes out.
type wireRecConn struct {
	net.Conn
	rec *wireRecorder
}

func (c *wireRecConn) Write(p []byte) (int, error) {
	c.rec.record(p)
	return c.Conn.Write(p)
}

// wireRecordingLayer is a loopback TCP stream layer that records the bytes its
// outgoing connections write (requests) and those its incoming
// connections write (responses).
type wireRecordingLayer struct {
	ln       net.Listener
	dialed   wireRecorder
	accepted wireRecorder
}

func newWireRecordingLayer(t *testing.T) *wireRecordingLayer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &wireRecordingLayer{ln: ln}
}

func (l *wireRecordingLayer) Accept() (net.Conn, error) {
	c, err := l.ln.Accept()
	if err != nil {
		return nil, err
	}
	return &wireRecConn{Conn: c, rec: &l.accepted}, nil
}

func (l *wireRecordingLayer) dial(address string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", address, timeout)
	if err != nil {
		return nil, err
	}
	return &wireRecConn{Conn: c, rec: &l.dialed}, nil
}

func (l *wireRecordingLayer) Close() error   { return l.ln.Close() }
func (l *wireRecordingLayer) Addr() net.Addr { return l.ln.Addr() }

// The two libraries' StreamLayer interfaces differ only in the type of
// Dial's address.
type wireOurLayer struct{ *wireRecordingLayer }

func (l wireOurLayer) Dial(a qraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return l.dial(string(a), timeout)
}

type wireRefLayer struct{ *wireRecordingLayer }

func (l wireRefLayer) Dial(a hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return l.dial(string(a), timeout)
}

// wireNode is a NetworkTransport of either library, driven with our types.
type wireNode struct {
	lib   string // "ours" or "reference"
	layer *wireRecordingLayer
	addr  string
	// received gets every request the node's consumer or heartbeat
	// handler saw, converted to our types, and the handler's name.
	received chan wireReceivedRPC

	ours *qraft.NetworkTransport
	ref  *hraft.NetworkTransport
}

type wireReceivedRPC struct {
	via     string // "consumer" or "heartbeat"
	command interface{}
	body    []byte // InstallSnapshot data
}

// newWireNode starts a transport of lib with the given time format; its
// consumer answers with wireAnswer().
func newWireNode(t *testing.T, lib string, newTimeFormat bool) *wireNode {
	t.Helper()
	n := &wireNode{lib: lib, layer: newWireRecordingLayer(t), received: make(chan wireReceivedRPC, 100)}
	n.addr = n.layer.Addr().String()
	switch lib {
	case "ours":
		n.ours = qraft.NewNetworkTransportWithConfig(&qraft.NetworkTransportConfig{
			Stream: wireOurLayer{n.layer}, MaxPool: 2, Timeout: 10 * time.Second,
			MsgpackUseNewTimeFormat: newTimeFormat, Logger: wireQuietLogger(),
		})
		go n.consumeOurs()
	case "reference":
		n.ref = hraft.NewNetworkTransportWithConfig(&hraft.NetworkTransportConfig{
			Stream: wireRefLayer{n.layer}, MaxPool: 2, Timeout: 10 * time.Second,
			MsgpackUseNewTimeFormat: newTimeFormat, Logger: wireQuietLogger(),
		})
		go n.consumeRef()
	}
	t.Cleanup(n.close)
	return n
}

func (n *wireNode) close() {
	if n.ours != nil {
		n.ours.Close()
	} else {
		n.ref.Close()
	}
}

func (n *wireNode) consumeOurs() {
	for rpc := range wireChanUntil(n.ours.Consumer(), n.ours.IsShutdown) {
		var body []byte
		if rpc.Reader != nil {
			body, _ = io.ReadAll(rpc.Reader)
		}
		n.received <- wireReceivedRPC{via: "consumer", command: rpc.Command, body: body}
		resp, err := wireAnswer(rpc.Command)
		rpc.Respond(resp, err)
	}
}

func (n *wireNode) consumeRef() {
	for rpc := range wireChanUntil(n.ref.Consumer(), n.ref.IsShutdown) {
		var body []byte
		if rpc.Reader != nil {
			body, _ = io.ReadAll(rpc.Reader)
		}
		cmd := wireToOurs(rpc.Command)
		n.received <- wireReceivedRPC{via: "consumer", command: cmd, body: body}
		resp, err := wireAnswer(cmd)
		rpc.Respond(wireToRef(resp), err)
	}
}

// wireChanUntil relays ch until stopped reports true (checked every 50ms), so
// that consumer goroutines end after their transport closes.
func wireChanUntil[T any](ch <-chan T, stopped func() bool) <-chan T {
	out := make(chan T)
	go func() {
		defer close(out)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case v := <-ch:
				out <- v
			case <-tick.C:
				if stopped() {
					return
				}
			}
		}
	}()
	return out
}

// setHeartbeatHandler routes heartbeats to received, marked as such.
func (n *wireNode) setHeartbeatHandler() {
	if n.ours != nil {
		n.ours.SetHeartbeatHandler(func(rpc qraft.RPC) {
			n.received <- wireReceivedRPC{via: "heartbeat", command: rpc.Command}
			resp, err := wireAnswer(rpc.Command)
			rpc.Respond(resp, err)
		})
		return
	}
	n.ref.SetHeartbeatHandler(func(rpc hraft.RPC) {
		cmd := wireToOurs(rpc.Command)
		n.received <- wireReceivedRPC{via: "heartbeat", command: cmd}
		resp, err := wireAnswer(cmd)
		rpc.Respond(wireToRef(resp), err)
	})
}

// answer is the consumers' deterministic response to a request.
func wireAnswer(cmd interface{}) (interface{}, error) {
	h := qraft.RPCHeader{ProtocolVersion: 3, ID: []byte("server"), Addr: []byte("server-addr")}
	switch req := cmd.(type) {
	case *qraft.AppendEntriesRequest:
		return &qraft.AppendEntriesResponse{RPCHeader: h, Term: req.Term, LastLog: req.PrevLogEntry + uint64(len(req.Entries)), Success: true, NoRetryBackoff: true}, nil
	case *qraft.RequestVoteRequest:
		return &qraft.RequestVoteResponse{RPCHeader: h, Term: req.Term, Peers: []byte{0x90}, Granted: true}, nil
	case *qraft.RequestPreVoteRequest:
		if req.Term == 666 {
			return nil, fmt.Errorf("operation not supported with current protocol version")
		}
		return &qraft.RequestPreVoteResponse{RPCHeader: h, Term: req.Term, Granted: true}, nil
	case *qraft.InstallSnapshotRequest:
		return &qraft.InstallSnapshotResponse{RPCHeader: h, Term: req.Term, Success: true}, nil
	case *qraft.TimeoutNowRequest:
		return &qraft.TimeoutNowResponse{RPCHeader: h}, nil
	}
	return nil, fmt.Errorf("unexpected command")
}

// call sends req (one of our request types) from n to target and fills
// resp (our response type).
func (n *wireNode) call(target string, req, resp interface{}, data []byte) error {
	if n.ours != nil {
		t, a := n.ours, qraft.ServerAddress(target)
		switch req := req.(type) {
		case *qraft.AppendEntriesRequest:
			return t.AppendEntries("x", a, req, resp.(*qraft.AppendEntriesResponse))
		case *qraft.RequestVoteRequest:
			return t.RequestVote("x", a, req, resp.(*qraft.RequestVoteResponse))
		case *qraft.RequestPreVoteRequest:
			return t.RequestPreVote("x", a, req, resp.(*qraft.RequestPreVoteResponse))
		case *qraft.InstallSnapshotRequest:
			return t.InstallSnapshot("x", a, req, resp.(*qraft.InstallSnapshotResponse), bytes.NewReader(data))
		case *qraft.TimeoutNowRequest:
			return t.TimeoutNow("x", a, req, resp.(*qraft.TimeoutNowResponse))
		}
		panic(fmt.Sprintf("no call for %T", req))
	}
	t, a := n.ref, hraft.ServerAddress(target)
	refResp := wireToRef(resp)
	var err error
	switch req := wireToRef(req).(type) {
	case *hraft.AppendEntriesRequest:
		err = t.AppendEntries("x", a, req, refResp.(*hraft.AppendEntriesResponse))
	case *hraft.RequestVoteRequest:
		err = t.RequestVote("x", a, req, refResp.(*hraft.RequestVoteResponse))
	case *hraft.RequestPreVoteRequest:
		err = t.RequestPreVote("x", a, req, refResp.(*hraft.RequestPreVoteResponse))
	case *hraft.InstallSnapshotRequest:
		err = t.InstallSnapshot("x", a, req, refResp.(*hraft.InstallSnapshotResponse), bytes.NewReader(data))
	case *hraft.TimeoutNowRequest:
		err = t.TimeoutNow("x", a, req, refResp.(*hraft.TimeoutNowResponse))
	default:
		panic(fmt.Sprintf("no call for %T", req))
	}
	convertFields(reflect.ValueOf(resp).Elem(), reflect.ValueOf(refResp).Elem())
	return err
}

// pipeline sends reqs through an AppendEntries pipeline from n to target
// and returns the answers in the order they came back.
func (n *wireNode) pipeline(target string, reqs []*qraft.AppendEntriesRequest) ([]*qraft.AppendEntriesResponse, error) {
	var out []*qraft.AppendEntriesResponse
	if n.ours != nil {
		p, err := n.ours.AppendEntriesPipeline("x", qraft.ServerAddress(target))
		if err != nil {
			return nil, err
		}
		defer p.Close()
		go func() {
			for _, r := range reqs {
				if _, err := p.AppendEntries(r, &qraft.AppendEntriesResponse{}); err != nil {
					return
				}
			}
		}()
		for range reqs {
			f := <-p.Consumer()
			if err := f.Error(); err != nil {
				return out, err
			}
			out = append(out, f.Response())
		}
		return out, nil
	}
	p, err := n.ref.AppendEntriesPipeline("x", hraft.ServerAddress(target))
	if err != nil {
		return nil, err
	}
	defer p.Close()
	go func() {
		for _, r := range reqs {
			if _, err := p.AppendEntries(wireToRef(r).(*hraft.AppendEntriesRequest), &hraft.AppendEntriesResponse{}); err != nil {
				return
			}
		}
	}()
	for range reqs {
		f := <-p.Consumer()
		if err := f.Error(); err != nil {
			return out, err
		}
		out = append(out, wireToOurs(f.Response()).(*qraft.AppendEntriesResponse))
	}
	return out, nil
}

// Pairs of identical message types, ours first.
var wireTypePairs = [][2]interface{}{
	{qraft.AppendEntriesRequest{}, hraft.AppendEntriesRequest{}},
	{qraft.AppendEntriesResponse{}, hraft.AppendEntriesResponse{}},
	{qraft.RequestVoteRequest{}, hraft.RequestVoteRequest{}},
	{qraft.RequestVoteResponse{}, hraft.RequestVoteResponse{}},
	{qraft.RequestPreVoteRequest{}, hraft.RequestPreVoteRequest{}},
	{qraft.RequestPreVoteResponse{}, hraft.RequestPreVoteResponse{}},
	{qraft.InstallSnapshotRequest{}, hraft.InstallSnapshotRequest{}},
	{qraft.InstallSnapshotResponse{}, hraft.InstallSnapshotResponse{}},
	{qraft.TimeoutNowRequest{}, hraft.TimeoutNowRequest{}},
	{qraft.TimeoutNowResponse{}, hraft.TimeoutNowResponse{}},
}

// wireToRef and wireToOurs convert a pointer to a message of one library into the
// same message of the other; nil stays nil.
func wireToRef(v interface{}) interface{}  { return convertWireMessage(v, 0, 1) }
func wireToOurs(v interface{}) interface{} { return convertWireMessage(v, 1, 0) }

func convertWireMessage(v interface{}, from, to int) interface{} {
	if v == nil || reflect.ValueOf(v).IsNil() {
		return nil
	}
	src := reflect.ValueOf(v).Elem()
	for _, pair := range wireTypePairs {
		if reflect.TypeOf(pair[from]) == src.Type() {
			dst := reflect.New(reflect.TypeOf(pair[to]))
			convertFields(dst.Elem(), src)
			return dst.Interface()
		}
	}
	panic(fmt.Sprintf("no counterpart for %T", v))
}

// convert copies src into dst field by field, by name: the two libraries'
// structs have the same fields with types of the same shape.
func convertFields(dst, src reflect.Value) {
	switch src.Kind() {
	case reflect.Ptr:
		if src.IsNil() {
			dst.Set(reflect.Zero(dst.Type()))
			return
		}
		dst.Set(reflect.New(dst.Type().Elem()))
		convertFields(dst.Elem(), src.Elem())
	case reflect.Struct:
		if src.Type() == reflect.TypeOf(time.Time{}) {
			dst.Set(src)
			return
		}
		for i := 0; i < src.NumField(); i++ {
			if f := src.Type().Field(i); f.IsExported() {
				convertFields(dst.FieldByName(f.Name), src.Field(i))
			}
		}
	case reflect.Slice:
		if src.IsNil() {
			dst.Set(reflect.Zero(dst.Type()))
			return
		}
		dst.Set(reflect.MakeSlice(dst.Type(), src.Len(), src.Len()))
		for i := 0; i < src.Len(); i++ {
			convertFields(dst.Index(i), src.Index(i))
		}
	default:
		dst.Set(src.Convert(dst.Type()))
	}
}
