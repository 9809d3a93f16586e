package raft

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"testing/synctest"
	"time"
)

// hostilePeer is a raw connection to a transport, written by hand.
type hostilePeer struct {
	conn net.Conn
	// closedCh is closed when the server closes the connection; answered
	// says whether it wrote anything first (it never should).
	closedCh chan struct{}
	closedAt time.Time
	answered int
}

// dialHostile connects from ip to target and watches for the server
// closing the connection.
func dialHostile(t *testing.T, network *netPipeNetwork, ip string, target ServerAddress) *hostilePeer {
	t.Helper()
	conn, err := network.dial(ip, target, 0)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	h := &hostilePeer{conn: conn, closedCh: make(chan struct{})}
	go func() {
		buf := make([]byte, 512)
		for {
			n, err := conn.Read(buf)
			h.answered += n
			if err != nil {
				h.closedAt = time.Now()
				close(h.closedCh)
				return
			}
		}
	}()
	return h
}

// send writes b; the server may close the connection halfway, which is not
// an error here.
func (h *hostilePeer) send(b []byte) {
	_, _ = h.conn.Write(b)
}

// sendAsync writes b without waiting for the server to take it all.
func (h *hostilePeer) sendAsync(b []byte) {
	go h.send(b)
}

// waitClosed waits until the server closed the connection and returns how
// long after since that was; it fails t if the server answered anything.
func (h *hostilePeer) waitClosed(t *testing.T, since time.Time) time.Duration {
	t.Helper()
	<-h.closedCh
	if h.answered != 0 {
		t.Errorf("server answered %d bytes to hostile input", h.answered)
	}
	_ = h.conn.Close()
	return h.closedAt.Sub(since)
}

// isOpen reports whether the server still holds the connection open.
func (h *hostilePeer) isOpen() bool {
	synctest.Wait()
	select {
	case <-h.closedCh:
		return false
	default:
		return true
	}
}

// encodeFrame returns a request frame as a client writes it.
func encodeFrame(t testing.TB, typ rpcType, req interface{}, newTimeFormat bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	if err := newWireEncoder(w, newWireEncodeHandle(newTimeFormat)).writeRequest(typ, req); err != nil {
		t.Fatalf("encode: %v", err)
	}
	return buf.Bytes()
}

// netHostileCases are request frames the server must refuse at once, with
// the log line each must produce.
var netHostileCases = []struct {
	name    string
	payload []byte
	log     string
}{
	{"invalid msgpack byte", []byte{0, 0xc1}, "failed to decode incoming command"},
	{"unknown rpc type", []byte{9, 0x80}, "unknown rpc type 9"},
	{"HTTP request", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "unknown rpc type 71"},
	{"wrong type for field", append([]byte{0, 0x81, 0xa4}, append([]byte("Term"), 0xa3, 'a', 'b', 'c')...), "failed to decode incoming command"},
	{"string claiming 4 GiB", []byte{0, 0x81, 0xdb, 0xff, 0xff, 0xff, 0xff}, "request too large"},
	{"array claiming 4G entries", append([]byte{0, 0x81, 0xa7}, append([]byte("Entries"), 0xdd, 0xff, 0xff, 0xff, 0xff)...), "request too large"},
	{"map claiming 4G keys", []byte{0, 0xdf, 0xff, 0xff, 0xff, 0xff}, "request too large"},
	{"binary claiming 4 GiB", []byte{1, 0x81, 0xa4, 'T', 'e', 'r', 'm', 0xc6, 0xff, 0xff, 0xff, 0xff}, "request too large"},
	{"ext claiming 4 GiB", []byte{4, 0x81, 0xa4, 'T', 'e', 'r', 'm', 0xc9, 0xff, 0xff, 0xff, 0xff}, "request too large"},
	// One million one-byte entries would decode into a million structs.
	{"entry count amplification", append([]byte{0, 0x81, 0xa7}, append([]byte("Entries"), 0xdd, 0x00, 0x10, 0x00, 0x00)...), "request too large"},
	// The ReadIndex RPC (read_index_rpc.go) and the first type after it.
	{"unknown rpc type after ReadIndex", []byte{6, 0x80}, "unknown rpc type 6"},
	{"ReadIndex with a string for its version", append([]byte{5, 0x81, 0xaf}, append([]byte("ProtocolVersion"), 0xa3, 'a', 'b', 'c')...), "failed to decode incoming command"},
	{"ReadIndex ID claiming 4 GiB", []byte{5, 0x81, 0xa2, 'I', 'D', 0xc6, 0xff, 0xff, 0xff, 0xff}, "request too large"},
	{"ReadIndex map claiming 4G keys", []byte{5, 0xdf, 0xff, 0xff, 0xff, 0xff}, "request too large"},
}

// Every kind of malformed or oversized request closes its connection at
// once, without an answer, with a log line, and without allocating what it
// claims; the server keeps serving a legitimate peer throughout.
func TestNetTransport_HostileRequestsClosed(t *testing.T) {
	for _, tc := range netHostileCases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				network := newNetPipeNetwork()
				server := newNetTestNode(t, network, "10.0.0.1:1", nil)
				server.serve(netEchoAnswer)
				legit := newNetTestNode(t, network, "10.0.0.2:1", nil)
				checkNetServed(t, legit, server.addr)

				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				h := dialHostile(t, network, "10.6.6.6", server.addr)
				start := time.Now()
				h.sendAsync(tc.payload)
				if elapsed := h.waitClosed(t, start); elapsed != 0 {
					t.Fatalf("closed after %v of fake time, want at once", elapsed)
				}
				synctest.Wait()
				runtime.ReadMemStats(&after)
				// A 256 KiB read buffer and small change; nothing near
				// what the payload claims.
				if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2<<20 {
					t.Fatalf("refusing %q allocated %d bytes", tc.name, alloc)
				}
				if got := server.log.count(tc.log); got != 1 {
					t.Fatalf("want one log line with %q, log:\n%s", tc.log, server.log)
				}
				if got := server.server.count("10.6.6.6"); got != 0 {
					t.Fatalf("server still tracks %d hostile connections", got)
				}
				checkNetServed(t, legit, server.addr)
				legit.closeAndWait()
				server.closeAndWait()
			})
		})
	}
}

// A request over MaxRPCBytes is refused even when it is well-formed, and
// the sender sees its RPC fail; requests under the limit pass.
func TestNetTransport_RequestOverSizeLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := newNetTestNode(t, network, "10.0.0.1:1", func(c *NetworkTransportConfig) { c.MaxRPCBytes = 1 << 20 })
		server.serve(netEchoAnswer)
		client := newNetTestNode(t, network, "10.0.0.2:1", nil)

		small := &AppendEntriesRequest{Term: 1, LeaderCommitIndex: 1, Entries: []*Log{{Index: 1, Data: make([]byte, 900<<10)}}}
		var resp AppendEntriesResponse
		if err := client.AppendEntries("s", server.addr, small, &resp); err != nil {
			t.Fatalf("900 KiB request under a 1 MiB limit: %v", err)
		}
		big := &AppendEntriesRequest{Term: 1, LeaderCommitIndex: 1, Entries: []*Log{{Index: 1, Data: make([]byte, 2<<20)}}}
		if err := client.AppendEntries("s", server.addr, big, &resp); err == nil {
			t.Fatal("2 MiB request under a 1 MiB limit succeeded")
		}
		// Many small entries cost their decoded size too.
		many := &AppendEntriesRequest{Term: 1, LeaderCommitIndex: 1, Entries: make([]*Log, 10000)}
		for i := range many.Entries {
			many.Entries[i] = &Log{}
		}
		if err := client.AppendEntries("s", server.addr, many, &resp); err == nil {
			t.Fatal("10000-entry request (about 1.3 MB decoded) under a 1 MiB limit succeeded")
		}
		synctest.Wait()
		if got := server.log.count("request too large"); got != 1 {
			t.Fatalf("want 1 line (the second is rate-limited), got %d:\n%s", got, server.log)
		}
		checkNetServed(t, client, server.addr)
		client.closeAndWait()
		server.closeAndWait()
	})
}

// A peer that starts a request and stalls (slowloris) is disconnected
// FrameTimeout after the request's first byte, however it trickles, while
// the server keeps serving others.
func TestNetTransport_StalledRequestClosed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
		// trickle, if set, is sent once a second after payload; it keeps
		// the request incomplete.
		trickle []byte
	}{
		{"type byte only", []byte{0}, nil},
		{"half a request", encodeFrame(t, rpcAppendEntries, netTestHeartbeat("x", 1), false)[:20], nil},
		{"string trickled a byte a second", []byte{0, 0x81, 0xdb, 0x00, 0x10, 0x00, 0x00, 'a'}, []byte{'a'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				network := newNetPipeNetwork()
				server := newNetTestNode(t, network, "10.0.0.1:1", func(c *NetworkTransportConfig) { c.FrameTimeout = 5 * time.Second })
				server.serve(netEchoAnswer)
				legit := newNetTestNode(t, network, "10.0.0.2:1", nil)

				h := dialHostile(t, network, "10.6.6.6", server.addr)
				time.Sleep(time.Hour) // idle first: that is allowed
				if !h.isOpen() {
					t.Fatal("idle connection closed with IdleTimeout unset")
				}
				start := time.Now()
				h.send(tc.payload)
				if tc.trickle != nil {
					go func() {
						for {
							select {
							case <-h.closedCh:
								return
							case <-time.After(time.Second):
								h.send(tc.trickle)
							}
						}
					}()
				}
				checkNetServed(t, legit, server.addr)
				if elapsed := h.waitClosed(t, start); elapsed != 5*time.Second {
					t.Fatalf("stalled request closed after %v, want FrameTimeout 5s", elapsed)
				}
				if got := server.log.count("stalled"); got != 1 {
					t.Fatalf("want one stalled log line, log:\n%s", server.log)
				}
				checkNetServed(t, legit, server.addr)
				legit.closeAndWait()
				server.closeAndWait()
			})
		})
	}
}

// A truncated request (the peer hangs up mid-frame) is logged and
// cleaned up.
func TestNetTransport_TruncatedRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := newNetTestNode(t, network, "10.0.0.1:1", nil)
		h := dialHostile(t, network, "10.6.6.6", server.addr)
		frame := encodeFrame(t, rpcRequestVote, &RequestVoteRequest{Term: 1}, false)
		h.send(frame[:len(frame)/2])
		h.conn.Close()
		synctest.Wait()
		if got := server.server.count("10.6.6.6"); got != 0 {
			t.Fatalf("server still holds the truncated connection")
		}
		if got := server.log.count("connection closed mid-request"); got != 1 {
			t.Fatalf("want one truncation log line, log:\n%s", server.log)
		}
		server.closeAndWait()
	})
}

// Idle connections stay open as long as the peer likes by default, and
// still work afterwards; with IdleTimeout they close after it.
func TestNetTransport_IdleConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := newNetTestNode(t, network, "10.0.0.1:1", nil)
		server.serve(netEchoAnswer)
		client := newNetTestNode(t, network, "10.0.0.2:1", nil)
		checkNetServed(t, client, server.addr)
		time.Sleep(72 * time.Hour)
		checkNetServed(t, client, server.addr) // on the pooled connection
		if got := server.server.count("10.0.0.2"); got != 1 {
			t.Fatalf("server holds %d connections, want the one pooled connection reused", got)
		}
		client.closeAndWait()
		server.closeAndWait()
	})
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := newNetTestNode(t, network, "10.0.0.1:1", func(c *NetworkTransportConfig) { c.IdleTimeout = time.Hour })
		server.serve(netEchoAnswer)
		client := newNetTestNode(t, network, "10.0.0.2:1", nil)
		checkNetServed(t, client, server.addr)
		start := time.Now()
		h := dialHostile(t, network, "10.6.6.6", server.addr)
		time.Sleep(59 * time.Minute)
		checkNetServed(t, client, server.addr) // resets this connection's idle clock
		if elapsed := h.waitClosed(t, start); elapsed != time.Hour {
			t.Fatalf("idle connection closed after %v, want IdleTimeout 1h", elapsed)
		}
		synctest.Wait()
		if got := server.server.count("10.0.0.2"); got != 1 {
			t.Fatalf("server holds %d of the client's connections, want 1", got)
		}
		time.Sleep(time.Hour)
		if got := server.server.count("10.0.0.2"); got != 0 {
			t.Fatalf("idle pooled connection not closed after IdleTimeout")
		}
		client.closeAndWait()
		server.closeAndWait()
	})
}

// One remote IP may hold at most MaxConnsPerIP connections; further ones
// are closed at once, with a rate-limited log line, and other IPs are not
// affected.
func TestNetTransport_ConnectionsPerIPCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := newNetTestNode(t, network, "10.0.0.1:1", func(c *NetworkTransportConfig) { c.MaxConnsPerIP = 4 })
		server.serve(netEchoAnswer)
		legit := newNetTestNode(t, network, "10.0.0.2:1", nil)

		var held []*hostilePeer
		for i := 0; i < 4; i++ {
			held = append(held, dialHostile(t, network, "10.6.6.6", server.addr))
		}
		for i := 0; i < 10; i++ {
			extra := dialHostile(t, network, "10.6.6.6", server.addr)
			if elapsed := extra.waitClosed(t, time.Now()); elapsed != 0 {
				t.Fatalf("connection over the cap closed after %v, want at once", elapsed)
			}
		}
		for _, h := range held {
			if !h.isOpen() {
				t.Fatal("a connection within the cap was closed")
			}
		}
		if got := server.log.count("refusing connection"); got != 1 {
			t.Fatalf("want 1 rate-limited line for 10 refusals, got %d:\n%s", got, server.log)
		}
		checkNetServed(t, legit, server.addr)

		// A freed slot can be used again.
		held[0].conn.Close()
		synctest.Wait()
		again := dialHostile(t, network, "10.6.6.6", server.addr)
		if !again.isOpen() {
			t.Fatal("connection refused after a slot was freed")
		}
		again.conn.Close()
		for _, h := range held[1:] {
			h.conn.Close()
		}
		legit.closeAndWait()
		server.closeAndWait()
	})
}

// A flood of bad connections produces one log line per kind per interval;
// the next line after the interval reports how many were left out.
func TestNetTransport_RefusalLogIsRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := newNetTestNode(t, network, "10.0.0.1:1", nil)
		server.serve(netEchoAnswer)
		legit := newNetTestNode(t, network, "10.0.0.2:1", nil)
		flood := func(n int) {
			for i := 0; i < n; i++ {
				h := dialHostile(t, network, fmt.Sprintf("10.6.6.%d", i%200), server.addr)
				h.sendAsync([]byte{0, 0xc1})
				h.waitClosed(t, time.Now())
			}
		}
		flood(50)
		checkNetServed(t, legit, server.addr)
		if got := server.log.count("failed to decode incoming command"); got != 1 {
			t.Fatalf("50 bad requests logged %d lines, want 1", got)
		}
		time.Sleep(limitedLogInterval)
		flood(1)
		if got := server.log.count("suppressed_since_last=49"); got != 1 {
			t.Fatalf("want a line reporting 49 suppressed, log:\n%s", server.log)
		}
		legit.closeAndWait()
		server.closeAndWait()
	})
}

// A peer that sends requests but never reads the answers is disconnected
// once writing an answer has taken FrameTimeout.
func TestNetTransport_UnreadAnswersClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := newNetTestNode(t, network, "10.0.0.1:1", func(c *NetworkTransportConfig) { c.FrameTimeout = 5 * time.Second })
		server.serve(netEchoAnswer)
		conn, err := network.dial("10.6.6.6", server.addr, 0)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		conn.Write(encodeFrame(t, rpcRequestVote, &RequestVoteRequest{Term: 1}, false))
		synctest.Wait()
		if got := server.server.count("10.6.6.6"); got != 1 {
			t.Fatal("connection closed before the answer timed out")
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got := server.server.count("10.6.6.6"); got != 0 {
			t.Fatalf("connection not closed %v after the answer stalled", time.Since(start))
		}
		conn.Close()
		server.closeAndWait()
	})
}

// A snapshot body must keep arriving: each TimeoutScale bytes within
// FrameTimeout of the previous ones, from the node's first read. A sender
// that keeps that pace is served however large the body; one that stalls,
// or trickles under a huge claimed Size, is cut off FrameTimeout after its
// last full TimeoutScale bytes.
func TestNetTransport_SnapshotBodyMustProgress(t *testing.T) {
	const scale = 1024
	for _, tc := range []struct {
		name      string
		size      int64
		steady    int // chunks of scale bytes sent 4s apart before stalling
		trickle   bool
		wantBytes int64
		wantAfter time.Duration
	}{
		{"stalls at once", 4 * scale, 0, false, 0, 5 * time.Second},
		{"steady then stalls", 40 * scale, 10, false, 10 * scale, 9*4*time.Second + 5*time.Second}, // the last chunk arrives at 36s
		{"trickles under a huge Size", 1 << 62, 0, true, 0, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				network := newNetPipeNetwork()
				server := newNetTestNode(t, network, "10.0.0.1:1", func(c *NetworkTransportConfig) { c.FrameTimeout = 5 * time.Second })
				server.TimeoutScale = scale
				type result struct {
					n   int64
					err error
					at  time.Time
				}
				results := make(chan result, 1)
				server.serve(func(rpc RPC) {
					time.Sleep(time.Minute) // the node is busy before it reads: not the sender's fault
					n, err := io.Copy(io.Discard, rpc.Reader)
					results <- result{n, err, time.Now()}
					rpc.Respond(nil, err)
				})
				h := dialHostile(t, network, "10.6.6.6", server.addr)
				start := time.Now()
				h.send(encodeFrame(t, rpcInstallSnapshot, &InstallSnapshotRequest{Size: tc.size}, false))
				time.Sleep(time.Minute) // the node starts reading now
				for i := 0; i < tc.steady; i++ {
					h.send(make([]byte, scale))
					time.Sleep(4 * time.Second)
				}
				if tc.trickle {
					go func() {
						for {
							select {
							case <-h.closedCh:
								return
							case <-time.After(time.Second):
								h.send([]byte{1})
							}
						}
					}()
				}
				r := <-results
				if r.err == nil {
					t.Fatal("stalled snapshot read succeeded")
				}
				if tc.trickle {
					r.n = 0 // a few trickled bytes
				}
				if r.n != tc.wantBytes {
					t.Fatalf("node read %d bytes, want %d", r.n, tc.wantBytes)
				}
				if elapsed := r.at.Sub(start) - time.Minute; elapsed != tc.wantAfter {
					t.Fatalf("snapshot read gave up %v after the node started reading, want %v", elapsed, tc.wantAfter)
				}
				h.waitClosed(t, start)
				if got := server.log.count("stalled"); got != 1 {
					t.Fatalf("want one stalled log line, log:\n%s", server.log)
				}
				server.closeAndWait()
			})
		})
	}
}
