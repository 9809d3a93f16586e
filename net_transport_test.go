package raft

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
)

var netTestTime = time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)

// netRoundTripCases send each RPC type with every field set and give the
// response the echo server should produce.
var netRoundTripCases = []struct {
	name string
	send func(n *NetworkTransport, target ServerAddress) (req, resp, want interface{}, err error)
}{
	{"AppendEntries", func(n *NetworkTransport, target ServerAddress) (interface{}, interface{}, interface{}, error) {
		req := &AppendEntriesRequest{RPCHeader: netTestHeader("n1"), Term: 7, Leader: []byte("n1-addr"), PrevLogEntry: 4, PrevLogTerm: 2,
			Entries: []*Log{
				{Index: 5, Term: 2, Type: LogCommand, Data: []byte("hi"), AppendedAt: netTestTime},
				{Index: 6, Term: 2, Type: LogConfiguration, Data: []byte{1, 2}, Extensions: []byte("ext"), AppendedAt: netTestTime.Add(time.Hour)},
			},
			LeaderCommitIndex: 4}
		resp := &AppendEntriesResponse{}
		err := n.AppendEntries("n2", target, req, resp)
		return req, resp, &AppendEntriesResponse{RPCHeader: req.RPCHeader, Term: 7, LastLog: 6, Success: true}, err
	}},
	{"RequestVote", func(n *NetworkTransport, target ServerAddress) (interface{}, interface{}, interface{}, error) {
		req := &RequestVoteRequest{RPCHeader: netTestHeader("n1"), Term: 8, Candidate: []byte("n1-addr"), LastLogIndex: 100, LastLogTerm: 7, LeadershipTransfer: true}
		resp := &RequestVoteResponse{}
		err := n.RequestVote("n2", target, req, resp)
		return req, resp, &RequestVoteResponse{RPCHeader: req.RPCHeader, Term: 8, Granted: true}, err
	}},
	{"RequestPreVote", func(n *NetworkTransport, target ServerAddress) (interface{}, interface{}, interface{}, error) {
		req := &RequestPreVoteRequest{RPCHeader: netTestHeader("n1"), Term: 9, LastLogIndex: 300, LastLogTerm: 8}
		resp := &RequestPreVoteResponse{}
		err := n.RequestPreVote("n2", target, req, resp)
		return req, resp, &RequestPreVoteResponse{RPCHeader: req.RPCHeader, Term: 9, Granted: true}, err
	}},
	{"TimeoutNow", func(n *NetworkTransport, target ServerAddress) (interface{}, interface{}, interface{}, error) {
		req := &TimeoutNowRequest{RPCHeader: netTestHeader("n1")}
		resp := &TimeoutNowResponse{}
		err := n.TimeoutNow("n2", target, req, resp)
		return req, resp, &TimeoutNowResponse{RPCHeader: req.RPCHeader}, err
	}},
	{"InstallSnapshot", func(n *NetworkTransport, target ServerAddress) (interface{}, interface{}, interface{}, error) {
		req := &InstallSnapshotRequest{RPCHeader: netTestHeader("n1"), SnapshotVersion: 1, Term: 10, Leader: []byte("n1-addr"),
			LastLogIndex: 1000, LastLogTerm: 9, Peers: []byte{0x91, 0xa1, 'x'}, Configuration: []byte("cfg"), ConfigurationIndex: 900, Size: 5}
		resp := &InstallSnapshotResponse{}
		err := n.InstallSnapshot("n2", target, req, resp, strings.NewReader("state"))
		return req, resp, &InstallSnapshotResponse{RPCHeader: req.RPCHeader, Term: 10, Success: true}, err
	}},
	{"ReadIndex", func(n *NetworkTransport, target ServerAddress) (interface{}, interface{}, interface{}, error) {
		req := &ReadIndexRequest{RPCHeader: netTestHeader("n1")}
		resp := &ReadIndexResponse{}
		err := n.ReadIndex("n2", target, req, resp)
		return req, resp, &ReadIndexResponse{RPCHeader: req.RPCHeader, Term: 11, ReadIndex: 42, Success: true}, err
	}},
}

// Every RPC type crosses the transport with all its fields intact, and its
// answer comes back intact.
func TestNetTransport_RoundTripEachRPC(t *testing.T) {
	for _, tc := range netRoundTripCases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				network := newNetPipeNetwork()
				server := newNetTestNode(t, network, "10.0.0.1:1", nil)
				client := newNetTestNode(t, network, "10.0.0.2:1", nil)
				received := make(chan interface{}, 1)
				server.serve(func(rpc RPC) {
					if snap, ok := rpc.Command.(*InstallSnapshotRequest); ok {
						body := make([]byte, snap.Size)
						if _, err := rpc.Reader.Read(body); err != nil || string(body) != "state" {
							t.Errorf("snapshot body %q, %v; want %q", body, err, "state")
						}
					}
					received <- rpc.Command
					netEchoAnswer(rpc)
				})

				req, resp, want, err := tc.send(client.NetworkTransport, server.addr)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if got := <-received; !reflect.DeepEqual(got, req) {
					t.Errorf("server received\n  %+v\nwant\n  %+v", got, req)
				}
				if !reflect.DeepEqual(resp, want) {
					t.Errorf("client got response %+v, want %+v", resp, want)
				}
				client.closeAndWait()
				server.closeAndWait()
			})
		})
	}
}

// An error the server answers with reaches the caller with its exact
// text (peers match on it), and the response is still decoded.
func TestNetTransport_RemoteErrorText(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := newNetTestNode(t, network, "10.0.0.1:1", nil)
		client := newNetTestNode(t, network, "10.0.0.2:1", nil)
		server.serve(func(rpc RPC) {
			switch rpc.Command.(type) {
			case *RequestPreVoteRequest:
				rpc.Respond(nil, errors.New(errUnexpectedCommand))
			default:
				rpc.Respond(&RequestVoteResponse{Term: 3}, ErrUnsupportedProtocol)
			}
		})

		var pre RequestPreVoteResponse
		err := client.RequestPreVote("s", server.addr, &RequestPreVoteRequest{Term: 1}, &pre)
		if err == nil || err.Error() != errUnexpectedCommand {
			t.Fatalf("pre-vote error %v, want %q", err, errUnexpectedCommand)
		}
		var vote RequestVoteResponse
		err = client.RequestVote("s", server.addr, &RequestVoteRequest{Term: 1}, &vote)
		if err == nil || err.Error() != ErrUnsupportedProtocol.Error() {
			t.Fatalf("vote error %v, want %q", err, ErrUnsupportedProtocol)
		}
		if vote.Term != 3 {
			t.Fatalf("response beside the error not decoded: %+v", vote)
		}
		// Both connections went back to the pool: an answered error does
		// not spoil the stream.
		if got := client.pooled(server.addr); got != 1 {
			t.Fatalf("%d pooled connections after two sequential RPCs, want 1", got)
		}
		client.closeAndWait()
		server.closeAndWait()
	})
}

// pooled returns the number of idle connections to target.
func (n *NetworkTransport) pooled(target ServerAddress) int {
	n.pool.mu.Lock()
	defer n.pool.mu.Unlock()
	return len(n.pool.conns[target])
}

// Connections are reused last-in first-out, and at most MaxPool are kept.
func TestNetTransport_PoolIsLIFOAndBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := newNetTestNode(t, network, "10.0.0.1:1", nil)
		client := newNetTestNode(t, network, "10.0.0.2:1", func(c *NetworkTransportConfig) { c.MaxPool = 2 })

		// Hold five RPCs at the server at once, so that five connections
		// are open, then release them all.
		release := make(chan struct{})
		server.serve(func(rpc RPC) {
			go func() {
				<-release
				netEchoAnswer(rpc)
			}()
		})
		var wg sync.WaitGroup
		for i := 0; i < 5; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var resp RequestVoteResponse
				if err := client.RequestVote("s", server.addr, &RequestVoteRequest{RPCHeader: netTestHeader("c"), Term: 1}, &resp); err != nil {
					t.Errorf("RequestVote: %v", err)
				}
			}()
		}
		synctest.Wait()
		if got := server.server.count("10.0.0.2"); got != 5 {
			t.Fatalf("server holds %d connections from the client, want 5", got)
		}
		close(release)
		wg.Wait()
		if got := client.pooled(server.addr); got != 2 {
			t.Fatalf("%d pooled connections, want MaxPool=2", got)
		}
		synctest.Wait()
		if got := server.server.count("10.0.0.2"); got != 2 {
			t.Fatalf("server still holds %d connections, want the 2 pooled ones", got)
		}

		// LIFO: the connection returned last is taken first.
		first := client.pool.take(server.addr)
		second := client.pool.take(server.addr)
		client.returnConn(first)
		client.returnConn(second)
		if got := client.pool.take(server.addr); got != second {
			t.Fatalf("pool handed out %p, want the last returned %p", got, second)
		}
		client.returnConn(second)

		// Sequential RPCs reuse one connection instead of dialing.
		for i := 0; i < 10; i++ {
			checkNetServed(t, client, server.addr)
		}
		if got := server.server.count("10.0.0.2"); got != 2 {
			t.Fatalf("sequential RPCs opened connections: server holds %d, want 2", got)
		}
		client.closeAndWait()
		server.closeAndWait()
	})
}

// A peer that never answers costs one Timeout, measured in fake time, and
// the broken connection is not pooled.
func TestNetTransport_DeadlineOnSilentPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := newNetTestNode(t, network, "10.0.0.1:1", nil)
		client := newNetTestNode(t, network, "10.0.0.2:1", func(c *NetworkTransportConfig) { c.Timeout = 2 * time.Second })
		server.serve(func(RPC) {}) // takes every RPC, answers none

		start := time.Now()
		var resp AppendEntriesResponse
		err := client.AppendEntries("s", server.addr, &AppendEntriesRequest{Term: 1, LeaderCommitIndex: 1}, &resp)
		if err == nil {
			t.Fatal("AppendEntries to a silent peer succeeded")
		}
		if elapsed := time.Since(start); elapsed != 2*time.Second {
			t.Fatalf("gave up after %v, want the 2s Timeout", elapsed)
		}
		if got := client.pooled(server.addr); got != 0 {
			t.Fatalf("%d broken connections pooled", got)
		}
		client.closeAndWait()
		server.closeAndWait()
	})
}

// Dialing an address nobody listens on fails at once with the address in
// the error.
func TestNetTransport_DialFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		client := newNetTestNode(t, network, "10.0.0.2:1", nil)
		var resp RequestVoteResponse
		err := client.RequestVote("s", "10.9.9.9:1", &RequestVoteRequest{}, &resp)
		if err == nil || !strings.Contains(err.Error(), "10.9.9.9:1") {
			t.Fatalf("error %v, want a dial error naming the address", err)
		}
		if _, err := client.AppendEntriesPipeline("s", "10.9.9.9:1"); err == nil {
			t.Fatal("pipeline to nowhere succeeded")
		}
		client.closeAndWait()
	})
}

// netFixedProvider resolves server IDs from a map.
type netFixedProvider map[ServerID]ServerAddress

func (p netFixedProvider) ServerAddr(id ServerID) (ServerAddress, error) {
	if addr, ok := p[id]; ok {
		return addr, nil
	}
	return "", fmt.Errorf("no address for %s", id)
}

// A ServerAddressProvider picks the address to dial and to encode; when it
// fails, the given address is used and a warning logged.
func TestNetTransport_ServerAddressProvider(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := newNetTestNode(t, network, "10.0.0.1:1", nil)
		server.serve(netEchoAnswer)
		client := newNetTestNode(t, network, "10.0.0.2:1", func(c *NetworkTransportConfig) {
			c.ServerAddressProvider = netFixedProvider{"known": "10.0.0.1:1"}
		})

		var resp RequestVoteResponse
		if err := client.RequestVote("known", "10.9.9.9:1", &RequestVoteRequest{Term: 1}, &resp); err != nil {
			t.Fatalf("RequestVote through the provider's address: %v", err)
		}
		if err := client.RequestVote("unknown", server.addr, &RequestVoteRequest{Term: 1}, &resp); err != nil {
			t.Fatalf("RequestVote through the fallback address: %v", err)
		}
		if client.log.count("unable to get address for server") != 1 {
			t.Fatalf("want one warning for the provider's failure, log:\n%s", client.log)
		}
		if got := string(client.EncodePeer("known", "ignored")); got != "10.0.0.1:1" {
			t.Fatalf("EncodePeer = %q, want the provider's address", got)
		}
		if got := string(client.EncodePeer("unknown", "10.0.0.7:7")); got != "10.0.0.7:7" {
			t.Fatalf("EncodePeer = %q, want the fallback", got)
		}
		if got := client.DecodePeer([]byte("10.0.0.7:7")); got != "10.0.0.7:7" {
			t.Fatalf("DecodePeer = %q", got)
		}
		if got := client.LocalAddr(); got != "10.0.0.2:1" {
			t.Fatalf("LocalAddr = %q", got)
		}
		client.closeAndWait()
		server.closeAndWait()
	})
}

// CloseStreams drops pooled connections and idle incoming ones, and the
// transport keeps working on fresh connections.
func TestNetTransport_CloseStreams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := newNetTestNode(t, network, "10.0.0.1:1", nil)
		server.serve(netEchoAnswer)
		client := newNetTestNode(t, network, "10.0.0.2:1", nil)

		checkNetServed(t, client, server.addr)
		if client.pooled(server.addr) != 1 || server.server.count("10.0.0.2") != 1 {
			t.Fatal("expected one pooled connection and its server side")
		}
		stale := client.pool.take(server.addr)
		server.CloseStreams()
		synctest.Wait()
		if got := server.server.count("10.0.0.2"); got != 0 {
			t.Fatalf("server still holds %d connections after CloseStreams", got)
		}
		if _, err := stale.conn.Write([]byte{0}); err == nil {
			t.Fatal("connection closed by the server's CloseStreams still writable")
		}
		_ = stale.Release()

		checkNetServed(t, client, server.addr)
		client.CloseStreams()
		if got := client.pooled(server.addr); got != 0 {
			t.Fatalf("%d pooled connections after CloseStreams", got)
		}
		checkNetServed(t, client, server.addr)
		client.closeAndWait()
		server.closeAndWait()
	})
}

// CloseStreams lets a request being served finish and answers it before
// closing its connection.
func TestNetTransport_CloseStreamsFinishesCurrentRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := newNetTestNode(t, network, "10.0.0.1:1", nil)
		client := newNetTestNode(t, network, "10.0.0.2:1", nil)
		held := make(chan RPC, 1)
		server.serve(func(rpc RPC) { held <- rpc })

		done := make(chan error, 1)
		go func() {
			var resp RequestVoteResponse
			done <- client.RequestVote("s", server.addr, &RequestVoteRequest{Term: 4}, &resp)
		}()
		rpc := <-held
		server.CloseStreams()
		netEchoAnswer(rpc)
		if err := <-done; err != nil {
			t.Fatalf("request in flight during CloseStreams failed: %v", err)
		}
		synctest.Wait()
		if got := server.server.count("10.0.0.2"); got != 0 {
			t.Fatalf("server holds %d connections after answering", got)
		}
		client.closeAndWait()
		server.closeAndWait()
	})
}

// Close stops everything: RPCs fail with ErrTransportShutdown, a request
// waiting for the node is abandoned, and every goroutine exits.
func TestNetTransport_Close(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := newNetTestNode(t, network, "10.0.0.1:1", nil)
		client := newNetTestNode(t, network, "10.0.0.2:1", nil)

		// Nobody consumes: the request waits at the server until Close.
		done := make(chan error, 1)
		go func() {
			var resp RequestVoteResponse
			done <- client.RequestVote("s", server.addr, &RequestVoteRequest{Term: 4}, &resp)
		}()
		synctest.Wait()
		if server.IsShutdown() {
			t.Fatal("IsShutdown before Close")
		}
		server.closeAndWait() // returns only once every server goroutine exited
		if !server.IsShutdown() {
			t.Fatal("IsShutdown false after Close")
		}
		if err := <-done; err == nil {
			t.Fatal("request abandoned by Close succeeded")
		}
		if err := server.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}

		var resp RequestVoteResponse
		if err := server.RequestVote("s", client.addr, &RequestVoteRequest{}, &resp); !errors.Is(err, ErrTransportShutdown) {
			t.Fatalf("RPC after Close: %v, want ErrTransportShutdown", err)
		}
		if _, err := server.AppendEntriesPipeline("s", client.addr); !errors.Is(err, ErrTransportShutdown) {
			t.Fatalf("pipeline after Close: %v, want ErrTransportShutdown", err)
		}
		client.closeAndWait()
	})
}

// The constructors apply defaults: TimeoutScale, MaxRPCsInFlight, the
// limits, and a logger named raft-net.
func TestNetTransport_Defaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		var out netLogBuffer
		n := NewNetworkTransport(network.listen("10.0.0.1:1"), 2, time.Second, &out)
		if n.TimeoutScale != DefaultTimeoutScale || n.maxInFlight != DefaultMaxRPCsInFlight ||
			n.maxRPCBytes != DefaultMaxRPCBytes || n.frameTimeout != DefaultFrameTimeout ||
			n.idleTimeout != 0 || n.maxConnsPerIP != DefaultMaxConnsPerIP || n.maxPool != 2 || n.timeout != time.Second {
			t.Fatalf("unexpected defaults: %+v", n)
		}
		n.logger.Warn("hello")
		if !strings.Contains(out.String(), "raft-net: hello") {
			t.Fatalf("log line %q lacks the raft-net name", out.String())
		}
		n.Close()
		n.routines.Wait()

		cfg := &NetworkTransportConfig{Stream: network.listen("10.0.0.2:1"), MaxRPCBytes: -1, FrameTimeout: -1, IdleTimeout: -1, MaxConnsPerIP: -1, MaxRPCsInFlight: 1}
		m := NewNetworkTransportWithConfig(cfg)
		if cfg.Logger == nil {
			t.Fatal("NewNetworkTransportWithConfig left config.Logger nil")
		}
		if m.maxRPCBytes != 0 || m.frameTimeout != 0 || m.idleTimeout != 0 || m.maxConnsPerIP != 0 {
			t.Fatalf("negative settings should disable the limits: %+v", m)
		}
		if _, err := m.AppendEntriesPipeline("x", "10.0.0.1:1"); err != ErrPipelineReplicationNotSupported {
			t.Fatalf("MaxRPCsInFlight=1: %v, want ErrPipelineReplicationNotSupported", err)
		}
		m.Close()
		m.routines.Wait()
	})
}

func TestScaledTimeout(t *testing.T) {
	for _, tc := range []struct {
		base  time.Duration
		size  int64
		scale int
		want  time.Duration
	}{
		{time.Second, 0, DefaultTimeoutScale, time.Second},
		{time.Second, DefaultTimeoutScale - 1, DefaultTimeoutScale, time.Second},
		{time.Second, 2*DefaultTimeoutScale - 1, DefaultTimeoutScale, time.Second},
		{time.Second, 10 * DefaultTimeoutScale, DefaultTimeoutScale, 10 * time.Second},
		{time.Second, 10 * DefaultTimeoutScale, 0, 10 * time.Second},
		{time.Second, -5, DefaultTimeoutScale, time.Second},
		{0, 1 << 40, DefaultTimeoutScale, 0},
		{time.Hour, 1 << 62, 1, 0},
	} {
		if got := scaledTimeout(tc.base, tc.size, tc.scale); got != tc.want {
			t.Errorf("scaledTimeout(%v, %d, %d) = %v, want %v", tc.base, tc.size, tc.scale, got, tc.want)
		}
	}
}

// netFailingLayer fails its first failures Accept calls, then waits until
// closed, recording when each call was made.
type netFailingLayer struct {
	*netPipeLayer
	failures int
	calls    []time.Time
}

func (l *netFailingLayer) Accept() (net.Conn, error) {
	l.calls = append(l.calls, time.Now())
	if len(l.calls) <= l.failures {
		return nil, errors.New("accept failed")
	}
	return l.netPipeLayer.Accept()
}

// A failing Accept is retried after a pause that starts at 5ms and doubles
// up to 1s; Close ends the loop even while it pauses.
func TestNetTransport_AcceptBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		layer := &netFailingLayer{netPipeLayer: newNetPipeNetwork().listen("10.0.0.1:1"), failures: 10}
		logs := &netLogBuffer{}
		n := NewNetworkTransportWithConfig(&NetworkTransportConfig{Stream: layer, Logger: hclog.New(&hclog.LoggerOptions{Output: logs})})
		time.Sleep(time.Minute)
		synctest.Wait()
		var gaps []time.Duration
		for i := 1; i < len(layer.calls); i++ {
			gaps = append(gaps, layer.calls[i].Sub(layer.calls[i-1]))
		}
		ms := time.Millisecond
		want := []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 80 * ms, 160 * ms, 320 * ms, 640 * ms, time.Second, time.Second}
		if !reflect.DeepEqual(gaps, want) {
			t.Fatalf("pauses between Accept calls %v, want %v", gaps, want)
		}
		if got := logs.count("failed to accept connection"); got != 10 {
			t.Fatalf("%d accept failures logged, want 10", got)
		}
		n.Close()
		n.routines.Wait()

		// Close during a pause.
		layer = &netFailingLayer{netPipeLayer: newNetPipeNetwork().listen("10.0.0.1:1"), failures: 1 << 30}
		n = NewNetworkTransportWithConfig(&NetworkTransportConfig{Stream: layer, Logger: hclog.NewNullLogger()})
		time.Sleep(3 * time.Second)
		n.Close()
		n.routines.Wait()
	})
}

// Code written for the reference may answer an RPC taken from this
// transport's Consumer() by sending on its RespChan instead of calling
// Respond (a wrapping transport forwarding its own RPC's answer, say).
// The answer must still reach the caller, on a single request and on a
// pipeline, mixed with answers given through Respond. (RespChan was nil
// for a while, so such a send blocked for ever.)
func TestNetTransport_AnswerSentOnRespChan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := newNetTestNode(t, network, "10.0.0.1:1", nil)
		client := newNetTestNode(t, network, "10.0.0.2:1", nil)
		server.serve(func(rpc RPC) {
			req, ok := rpc.Command.(*AppendEntriesRequest)
			if !ok || rpc.RespChan == nil {
				t.Errorf("request %T with RespChan %v", rpc.Command, rpc.RespChan)
				return
			}
			resp := &AppendEntriesResponse{Term: req.Term, LastLog: req.PrevLogEntry, Success: true}
			if req.PrevLogEntry%2 == 0 {
				rpc.RespChan <- RPCResponse{Response: resp}
			} else {
				rpc.Respond(resp, nil)
			}
		})

		for i := uint64(1); i <= 2; i++ {
			var resp AppendEntriesResponse
			if err := client.AppendEntries("s", server.addr, &AppendEntriesRequest{Term: 3, PrevLogEntry: i}, &resp); err != nil || resp.LastLog != i {
				t.Fatalf("request %d: %+v, %v", i, resp, err)
			}
		}
		pipe, err := client.AppendEntriesPipeline("s", server.addr)
		if err != nil {
			t.Fatal(err)
		}
		for i := uint64(3); i <= 6; i++ {
			if _, err := pipe.AppendEntries(&AppendEntriesRequest{Term: 3, PrevLogEntry: i}, new(AppendEntriesResponse)); err != nil {
				t.Fatalf("pipelined request %d: %v", i, err)
			}
			f := <-pipe.Consumer()
			if err := f.Error(); err != nil || f.Response().LastLog != i {
				t.Fatalf("pipelined answer %d: %+v, %v", i, f.Response(), err)
			}
		}
		pipe.Close()
		client.closeAndWait()
		server.closeAndWait()
	})
}
