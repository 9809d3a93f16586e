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

// recorder keeps the bytes written on a set of connections.
type recorder struct {
	mu  sync.Mutex // connections of several goroutines write
	buf bytes.Buffer
}

func (r *recorder) record(p []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf.Write(p)
}

// take returns what was recorded since the last take.
func (r *recorder) take() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]byte(nil), r.buf.Bytes()...)
	r.buf.Reset()
	return out
}

// recConn records every byte written before it goes out.
type recConn struct {
	net.Conn
	rec *recorder
}

func (c *recConn) Write(p []byte) (int, error) {
	c.rec.record(p)
	return c.Conn.Write(p)
}

// recordingLayer is a loopback TCP stream layer that records the bytes its
// outgoing connections write (requests) and those its incoming
// connections write (responses).
type recordingLayer struct {
	ln       net.Listener
	dialed   recorder
	accepted recorder
}

func newRecordingLayer(t *testing.T) *recordingLayer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &recordingLayer{ln: ln}
}

func (l *recordingLayer) Accept() (net.Conn, error) {
	c, err := l.ln.Accept()
	if err != nil {
		return nil, err
	}
	return &recConn{Conn: c, rec: &l.accepted}, nil
}

func (l *recordingLayer) dial(address string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", address, timeout)
	if err != nil {
		return nil, err
	}
	return &recConn{Conn: c, rec: &l.dialed}, nil
}

func (l *recordingLayer) Close() error   { return l.ln.Close() }
func (l *recordingLayer) Addr() net.Addr { return l.ln.Addr() }

// The two libraries' StreamLayer interfaces differ only in the type of
// Dial's address.
type ourLayer struct{ *recordingLayer }

func (l ourLayer) Dial(a qraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return l.dial(string(a), timeout)
}

type refLayer struct{ *recordingLayer }

func (l refLayer) Dial(a hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return l.dial(string(a), timeout)
}

// node is a NetworkTransport of either library, driven with our types.
type node struct {
	lib   string // "ours" or "reference"
	layer *recordingLayer
	addr  string
	// received gets every request the node's consumer or heartbeat
	// handler saw, converted to our types, and the handler's name.
	received chan receivedRPC

	ours *qraft.NetworkTransport
	ref  *hraft.NetworkTransport
}

type receivedRPC struct {
	via     string // "consumer" or "heartbeat"
	command interface{}
	body    []byte // InstallSnapshot data
}

// newNode starts a transport of lib with the given time format; its
// consumer answers with answer().
func newNode(t *testing.T, lib string, newTimeFormat bool) *node {
	t.Helper()
	n := &node{lib: lib, layer: newRecordingLayer(t), received: make(chan receivedRPC, 100)}
	n.addr = n.layer.Addr().String()
	switch lib {
	case "ours":
		n.ours = qraft.NewNetworkTransportWithConfig(&qraft.NetworkTransportConfig{
			Stream: ourLayer{n.layer}, MaxPool: 2, Timeout: 10 * time.Second,
			MsgpackUseNewTimeFormat: newTimeFormat, Logger: quietLogger(),
		})
		go n.consumeOurs()
	case "reference":
		n.ref = hraft.NewNetworkTransportWithConfig(&hraft.NetworkTransportConfig{
			Stream: refLayer{n.layer}, MaxPool: 2, Timeout: 10 * time.Second,
			MsgpackUseNewTimeFormat: newTimeFormat, Logger: quietLogger(),
		})
		go n.consumeRef()
	}
	t.Cleanup(n.close)
	return n
}

func (n *node) close() {
	if n.ours != nil {
		n.ours.Close()
	} else {
		n.ref.Close()
	}
}

func (n *node) consumeOurs() {
	for rpc := range chanUntil(n.ours.Consumer(), n.ours.IsShutdown) {
		var body []byte
		if rpc.Reader != nil {
			body, _ = io.ReadAll(rpc.Reader)
		}
		n.received <- receivedRPC{via: "consumer", command: rpc.Command, body: body}
		resp, err := answer(rpc.Command)
		rpc.Respond(resp, err)
	}
}

func (n *node) consumeRef() {
	for rpc := range chanUntil(n.ref.Consumer(), n.ref.IsShutdown) {
		var body []byte
		if rpc.Reader != nil {
			body, _ = io.ReadAll(rpc.Reader)
		}
		cmd := toOurs(rpc.Command)
		n.received <- receivedRPC{via: "consumer", command: cmd, body: body}
		resp, err := answer(cmd)
		rpc.Respond(toRef(resp), err)
	}
}

// chanUntil relays ch until stopped reports true (checked every 50ms), so
// that consumer goroutines end after their transport closes.
func chanUntil[T any](ch <-chan T, stopped func() bool) <-chan T {
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
func (n *node) setHeartbeatHandler() {
	if n.ours != nil {
		n.ours.SetHeartbeatHandler(func(rpc qraft.RPC) {
			n.received <- receivedRPC{via: "heartbeat", command: rpc.Command}
			resp, err := answer(rpc.Command)
			rpc.Respond(resp, err)
		})
		return
	}
	n.ref.SetHeartbeatHandler(func(rpc hraft.RPC) {
		cmd := toOurs(rpc.Command)
		n.received <- receivedRPC{via: "heartbeat", command: cmd}
		resp, err := answer(cmd)
		rpc.Respond(toRef(resp), err)
	})
}

// answer is the consumers' deterministic response to a request.
func answer(cmd interface{}) (interface{}, error) {
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
func (n *node) call(target string, req, resp interface{}, data []byte) error {
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
	refResp := toRef(resp)
	var err error
	switch req := toRef(req).(type) {
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
	convert(reflect.ValueOf(resp).Elem(), reflect.ValueOf(refResp).Elem())
	return err
}

// pipeline sends reqs through an AppendEntries pipeline from n to target
// and returns the answers in the order they came back.
func (n *node) pipeline(target string, reqs []*qraft.AppendEntriesRequest) ([]*qraft.AppendEntriesResponse, error) {
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
			if _, err := p.AppendEntries(toRef(r).(*hraft.AppendEntriesRequest), &hraft.AppendEntriesResponse{}); err != nil {
				return
			}
		}
	}()
	for range reqs {
		f := <-p.Consumer()
		if err := f.Error(); err != nil {
			return out, err
		}
		out = append(out, toOurs(f.Response()).(*qraft.AppendEntriesResponse))
	}
	return out, nil
}

// Pairs of identical message types, ours first.
var typePairs = [][2]interface{}{
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

// toRef and toOurs convert a pointer to a message of one library into the
// same message of the other; nil stays nil.
func toRef(v interface{}) interface{}  { return convertMessage(v, 0, 1) }
func toOurs(v interface{}) interface{} { return convertMessage(v, 1, 0) }

func convertMessage(v interface{}, from, to int) interface{} {
	if v == nil || reflect.ValueOf(v).IsNil() {
		return nil
	}
	src := reflect.ValueOf(v).Elem()
	for _, pair := range typePairs {
		if reflect.TypeOf(pair[from]) == src.Type() {
			dst := reflect.New(reflect.TypeOf(pair[to]))
			convert(dst.Elem(), src)
			return dst.Interface()
		}
	}
	panic(fmt.Sprintf("no counterpart for %T", v))
}

// convert copies src into dst field by field, by name: the two libraries'
// structs have the same fields with types of the same shape.
func convert(dst, src reflect.Value) {
	switch src.Kind() {
	case reflect.Ptr:
		if src.IsNil() {
			dst.Set(reflect.Zero(dst.Type()))
			return
		}
		dst.Set(reflect.New(dst.Type().Elem()))
		convert(dst.Elem(), src.Elem())
	case reflect.Struct:
		if src.Type() == reflect.TypeOf(time.Time{}) {
			dst.Set(src)
			return
		}
		for i := 0; i < src.NumField(); i++ {
			if f := src.Type().Field(i); f.IsExported() {
				convert(dst.FieldByName(f.Name), src.Field(i))
			}
		}
	case reflect.Slice:
		if src.IsNil() {
			dst.Set(reflect.Zero(dst.Type()))
			return
		}
		dst.Set(reflect.MakeSlice(dst.Type(), src.Len(), src.Len()))
		for i := 0; i < src.Len(); i++ {
			convert(dst.Index(i), src.Index(i))
		}
	default:
		dst.Set(src.Convert(dst.Type()))
	}
}
