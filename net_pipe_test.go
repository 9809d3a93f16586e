package raft

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// pipeNetwork is an in-memory network for transport tests inside synctest
// bubbles: real sockets would freeze fake time, net.Pipe does not. Each
// Dial makes a pipe and hands its far end to the listener's Accept.
// Addresses are plain "ip:port" strings so that per-IP limits can be
// exercised.
type pipeNetwork struct {
	mu        sync.Mutex // tests dial from several goroutines
	listeners map[string]*pipeLayer
	nextPort  int
}

func newPipeNetwork() *pipeNetwork {
	return &pipeNetwork{listeners: make(map[string]*pipeLayer), nextPort: 40000}
}

// pipeAddr is a net.Addr holding an "ip:port" string.
type pipeAddr string

func (a pipeAddr) Network() string { return "pipe" }
func (a pipeAddr) String() string  { return string(a) }

// pipeConn is one end of a net.Pipe with addresses.
type pipeConn struct {
	net.Conn
	local, remote pipeAddr
}

func (c *pipeConn) LocalAddr() net.Addr  { return c.local }
func (c *pipeConn) RemoteAddr() net.Addr { return c.remote }

// pipeLayer is a StreamLayer on a pipeNetwork: it listens at addr and
// dials from the IP of addr.
type pipeLayer struct {
	network  *pipeNetwork
	addr     pipeAddr
	acceptCh chan net.Conn // Dial sends the server ends; Accept receives
	closeCh  chan struct{} // closed by Close
	once     sync.Once
}

// listen registers a layer at addr ("ip:port").
func (p *pipeNetwork) listen(addr string) *pipeLayer {
	l := &pipeLayer{network: p, addr: pipeAddr(addr), acceptCh: make(chan net.Conn), closeCh: make(chan struct{})}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.listeners[addr] = l
	return l
}

// dial connects from the IP fromIP to address, as a raw connection that
// no transport owns: tests use it to play a hostile or hand-written peer.
func (p *pipeNetwork) dial(fromIP string, address ServerAddress, timeout time.Duration) (net.Conn, error) {
	p.mu.Lock()
	l := p.listeners[string(address)]
	p.nextPort++
	from := pipeAddr(fmt.Sprintf("%s:%d", fromIP, p.nextPort))
	p.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("dial %s: connection refused", address)
	}
	client, server := net.Pipe()
	var timeoutCh <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timeoutCh = t.C
	}
	select {
	case l.acceptCh <- &pipeConn{Conn: server, local: l.addr, remote: from}:
		return &pipeConn{Conn: client, local: from, remote: l.addr}, nil
	case <-l.closeCh:
		return nil, fmt.Errorf("dial %s: connection refused", address)
	case <-timeoutCh:
		return nil, fmt.Errorf("dial %s: i/o timeout", address)
	}
}

func (l *pipeLayer) Dial(address ServerAddress, timeout time.Duration) (net.Conn, error) {
	host, _, _ := net.SplitHostPort(string(l.addr))
	return l.network.dial(host, address, timeout)
}

func (l *pipeLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.acceptCh:
		return c, nil
	case <-l.closeCh:
		return nil, errors.New("listener closed")
	}
}

func (l *pipeLayer) Close() error {
	l.once.Do(func() {
		close(l.closeCh)
		l.network.mu.Lock()
		delete(l.network.listeners, string(l.addr))
		l.network.mu.Unlock()
	})
	return nil
}

func (l *pipeLayer) Addr() net.Addr { return l.addr }

// logBuffer collects a transport's log lines for inspection.
type logBuffer struct {
	mu  sync.Mutex // the transport's goroutines write concurrently
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// count returns how many lines contain s.
func (b *logBuffer) count(s string) int {
	n := 0
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// testNode is a transport on a pipeNetwork with its log.
type testNode struct {
	*NetworkTransport
	addr ServerAddress
	log  *logBuffer
}

// newTestNode starts a transport listening at addr. edit, if given, may
// change the configuration first.
func newTestNode(t *testing.T, network *pipeNetwork, addr string, edit func(*NetworkTransportConfig)) *testNode {
	t.Helper()
	logs := &logBuffer{}
	cfg := &NetworkTransportConfig{
		Stream:  network.listen(addr),
		MaxPool: 3,
		Timeout: time.Second,
		Logger:  hclog.New(&hclog.LoggerOptions{Name: logName, Output: logs, Level: hclog.Debug}),
	}
	if edit != nil {
		edit(cfg)
	}
	n := &testNode{NetworkTransport: NewNetworkTransportWithConfig(cfg), addr: ServerAddress(addr), log: logs}
	t.Cleanup(func() { n.Close() })
	return n
}

// closeAndWait closes the transport and waits for every goroutine it
// started.
func (n *testNode) closeAndWait() {
	n.Close()
	n.routines.Wait()
}

// serve answers every RPC on n's Consumer with answer until n closes.
// RPCs are answered one at a time, in arrival order.
func (n *testNode) serve(answer func(RPC)) {
	go func() {
		for {
			select {
			case rpc := <-n.Consumer():
				answer(rpc)
			case <-n.shutdownCh:
				return
			}
		}
	}()
}

// echoAnswer answers each request with a response built from it, so that
// tests can check that what arrived is what was sent.
func echoAnswer(rpc RPC) {
	switch req := rpc.Command.(type) {
	case *AppendEntriesRequest:
		rpc.Respond(&AppendEntriesResponse{RPCHeader: req.RPCHeader, Term: req.Term, LastLog: req.PrevLogEntry + uint64(len(req.Entries)), Success: true}, nil)
	case *RequestVoteRequest:
		rpc.Respond(&RequestVoteResponse{RPCHeader: req.RPCHeader, Term: req.Term, Granted: true}, nil)
	case *RequestPreVoteRequest:
		rpc.Respond(&RequestPreVoteResponse{RPCHeader: req.RPCHeader, Term: req.Term, Granted: true}, nil)
	case *TimeoutNowRequest:
		rpc.Respond(&TimeoutNowResponse{RPCHeader: req.RPCHeader}, nil)
	case *InstallSnapshotRequest:
		rpc.Respond(&InstallSnapshotResponse{RPCHeader: req.RPCHeader, Term: req.Term, Success: true}, nil)
	default:
		rpc.Respond(nil, errors.New(errUnexpectedCommand))
	}
}

// header returns an RPCHeader for server id.
func header(id string) RPCHeader {
	return RPCHeader{ProtocolVersion: ProtocolVersionMax, ID: []byte(id), Addr: []byte(id + "-addr")}
}

// heartbeat returns a heartbeat from leader id in term.
func heartbeat(id string, term uint64) *AppendEntriesRequest {
	return &AppendEntriesRequest{RPCHeader: header(id), Term: term, Leader: []byte(id + "-addr")}
}

// checkServed fails t unless a fresh RequestVote from client to server is
// answered: the proof that server keeps serving its real peers.
func checkServed(t *testing.T, client *testNode, server ServerAddress) {
	t.Helper()
	var resp RequestVoteResponse
	if err := client.RequestVote("srv", server, &RequestVoteRequest{RPCHeader: header("legit"), Term: 9}, &resp); err != nil {
		t.Fatalf("legitimate RequestVote failed: %v", err)
	}
	if !resp.Granted || resp.Term != 9 {
		t.Fatalf("legitimate RequestVote answered %+v, want granted in term 9", resp)
	}
}
