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

// netPipeNetwork is an in-memory network for transport tests inside synctest
// bubbles: real sockets would freeze fake time, net.Pipe does not. Each
// Dial makes a pipe and hands its far end to the listener's Accept.
// Addresses are plain "ip:port" strings so that per-IP limits can be
// exercised.
type netPipeNetwork struct {
	mu        sync.Mutex // tests dial from several goroutines
	listeners map[string]*netPipeLayer
	nextPort  int
}

func newNetPipeNetwork() *netPipeNetwork {
	return &netPipeNetwork{listeners: make(map[string]*netPipeLayer), nextPort: 40000}
}

// netPipeAddr is a net.Addr holding an "ip:port" string.
type netPipeAddr string

func (a netPipeAddr) Network() string { return "pipe" }
func (a netPipeAddr) String() string  { return string(a) }

// netPipeConn is one end of a net.Pipe with addresses.
type netPipeConn struct {
	net.Conn
	local, remote netPipeAddr
}

func (c *netPipeConn) LocalAddr() net.Addr  { return c.local }
func (c *netPipeConn) RemoteAddr() net.Addr { return c.remote }

// netPipeLayer is a StreamLayer on a netPipeNetwork: it listens at addr and
// dials from the IP of addr.
type netPipeLayer struct {
	network  *netPipeNetwork
	addr     netPipeAddr
	acceptCh chan net.Conn // Dial sends the server ends; Accept receives
	closeCh  chan struct{} // closed by Close
	once     sync.Once
}

// listen registers a layer at addr ("ip:port").
func (p *netPipeNetwork) listen(addr string) *netPipeLayer {
	l := &netPipeLayer{network: p, addr: netPipeAddr(addr), acceptCh: make(chan net.Conn), closeCh: make(chan struct{})}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.listeners[addr] = l
	return l
}

// dial connects from the IP fromIP to address, as a raw connection that
// no transport owns: tests use it to play a hostile or hand-written peer.
func (p *netPipeNetwork) dial(fromIP string, address ServerAddress, timeout time.Duration) (net.Conn, error) {
	p.mu.Lock()
	l := p.listeners[string(address)]
	p.nextPort++
	from := netPipeAddr(fmt.Sprintf("%s:%d", fromIP, p.nextPort))
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
	case l.acceptCh <- &netPipeConn{Conn: server, local: l.addr, remote: from}:
		return &netPipeConn{Conn: client, local: from, remote: l.addr}, nil
	case <-l.closeCh:
		return nil, fmt.Errorf("dial %s: connection refused", address)
	case <-timeoutCh:
		return nil, fmt.Errorf("dial %s: i/o timeout", address)
	}
}

func (l *netPipeLayer) Dial(address ServerAddress, timeout time.Duration) (net.Conn, error) {
	host, _, _ := net.SplitHostPort(string(l.addr))
	return l.network.dial(host, address, timeout)
}

func (l *netPipeLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.acceptCh:
		return c, nil
	case <-l.closeCh:
		return nil, errors.New("listener closed")
	}
}

func (l *netPipeLayer) Close() error {
	l.once.Do(func() {
		close(l.closeCh)
		l.network.mu.Lock()
		delete(l.network.listeners, string(l.addr))
		l.network.mu.Unlock()
	})
	return nil
}

func (l *netPipeLayer) Addr() net.Addr { return l.addr }

// netLogBuffer collects a transport's log lines for inspection.
type netLogBuffer struct {
	mu  sync.Mutex // the transport's goroutines write concurrently
	buf bytes.Buffer
}

func (b *netLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *netLogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// count returns how many lines contain s.
func (b *netLogBuffer) count(s string) int {
	n := 0
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// netTestNode is a transport on a netPipeNetwork with its log.
type netTestNode struct {
	*NetworkTransport
	addr ServerAddress
	log  *netLogBuffer
}

// newNetTestNode starts a transport listening at addr. edit, if given, may
// change the configuration first.
func newNetTestNode(t *testing.T, network *netPipeNetwork, addr string, edit func(*NetworkTransportConfig)) *netTestNode {
	t.Helper()
	logs := &netLogBuffer{}
	cfg := &NetworkTransportConfig{
		Stream:  network.listen(addr),
		MaxPool: 3,
		Timeout: time.Second,
		Logger:  hclog.New(&hclog.LoggerOptions{Name: logName, Output: logs, Level: hclog.Debug}),
	}
	if edit != nil {
		edit(cfg)
	}
	n := &netTestNode{NetworkTransport: NewNetworkTransportWithConfig(cfg), addr: ServerAddress(addr), log: logs}
	t.Cleanup(func() { n.Close() })
	return n
}

// closeAndWait closes the transport and waits for every goroutine it
// started.
func (n *netTestNode) closeAndWait() {
	n.Close()
	n.routines.Wait()
}

// serve answers every RPC on n's Consumer with answer until n closes.
// RPCs are answered one at a time, in arrival order.
func (n *netTestNode) serve(answer func(RPC)) {
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

// netEchoAnswer answers each request with a response built from it, so that
// tests can check that what arrived is what was sent.
func netEchoAnswer(rpc RPC) {
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
	case *ReadIndexRequest:
		rpc.Respond(&ReadIndexResponse{RPCHeader: req.RPCHeader, Term: 11, ReadIndex: 42, Success: true}, nil)
	default:
		rpc.Respond(nil, errors.New(errUnexpectedCommand))
	}
}

// header returns an RPCHeader for server id.
func netTestHeader(id string) RPCHeader {
	return RPCHeader{ProtocolVersion: ProtocolVersionMax, ID: []byte(id), Addr: []byte(id + "-addr")}
}

// heartbeat returns a heartbeat from leader id in term.
func netTestHeartbeat(id string, term uint64) *AppendEntriesRequest {
	return &AppendEntriesRequest{RPCHeader: netTestHeader(id), Term: term, Leader: []byte(id + "-addr")}
}

// checkNetServed fails t unless a fresh RequestVote from client to server is
// answered: the proof that server keeps serving its real peers.
func checkNetServed(t *testing.T, client *netTestNode, server ServerAddress) {
	t.Helper()
	var resp RequestVoteResponse
	if err := client.RequestVote("srv", server, &RequestVoteRequest{RPCHeader: netTestHeader("legit"), Term: 9}, &resp); err != nil {
		t.Fatalf("legitimate RequestVote failed: %v", err)
	}
	if !resp.Granted || resp.Term != 9 {
		t.Fatalf("legitimate RequestVote answered %+v, want granted in term 9", resp)
	}
}
