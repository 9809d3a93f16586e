package interop

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	hraft "github.com/hashicorp/raft"
	qraft "github.com/quorumkit/raft"
)

// Benchmarks of both libraries in the same run. The encode and decode
// benchmarks drive each transport over an in-memory pipe against a
// hand-written peer that moves pre-encoded bytes, so they measure the
// transport's own work on an AppendEntries of 64 entries of 256 bytes:
// encoding the request and decoding the answer on the client side,
// decoding the request and encoding the answer on the server side. The
// pipeline benchmark measures entries per second through one pipelined
// loopback TCP connection.

func wireBenchRequest() *qraft.AppendEntriesRequest {
	req := &qraft.AppendEntriesRequest{
		RPCHeader: qraft.RPCHeader{ProtocolVersion: 3, ID: []byte("wireNode-1"), Addr: []byte("10.0.0.1:8300")},
		Term:      12, Leader: []byte("10.0.0.1:8300"), PrevLogEntry: 100000, PrevLogTerm: 12, LeaderCommitIndex: 99990,
	}
	for i := 0; i < 64; i++ {
		req.Entries = append(req.Entries, &qraft.Log{Index: uint64(100001 + i), Term: 12, Type: qraft.LogCommand,
			Data: bytes.Repeat([]byte{byte(i)}, 256), AppendedAt: wireTime})
	}
	return req
}

var wireBenchResponse = &qraft.AppendEntriesResponse{Term: 12, LastLog: 100064, Success: true}

// encodeWireValues encodes values with hashicorp/raft's handle settings, which
// the wire tests prove both libraries share.
func encodeWireValues(tb testing.TB, prefix []byte, values ...interface{}) []byte {
	tb.Helper()
	var buf bytes.Buffer
	buf.Write(prefix)
	enc := codec.NewEncoder(&buf, &codec.MsgpackHandle{BasicHandle: codec.BasicHandle{TimeNotBuiltin: true}})
	for _, v := range values {
		if err := enc.Encode(v); err != nil {
			tb.Fatal(err)
		}
	}
	return buf.Bytes()
}

// benchPipeLayer is a StreamLayer whose Dial connects to a goroutine running
// peer over net.Pipe, and whose Accept returns connections pushed by the
// benchmark.
type benchPipeLayer struct {
	peer     func(net.Conn)
	acceptCh chan net.Conn
	closed   chan struct{}
	once     sync.Once
}

func newBenchPipeLayer(peer func(net.Conn)) *benchPipeLayer {
	return &benchPipeLayer{peer: peer, acceptCh: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *benchPipeLayer) dial() (net.Conn, error) {
	client, server := net.Pipe()
	go l.peer(server)
	return client, nil
}

func (l *benchPipeLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.acceptCh:
		return c, nil
	case <-l.closed:
		return nil, errors.New("closed")
	}
}

func (l *benchPipeLayer) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *benchPipeLayer) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

type benchOurPipe struct{ *benchPipeLayer }

func (l benchOurPipe) Dial(qraft.ServerAddress, time.Duration) (net.Conn, error) { return l.dial() }

type benchRefPipe struct{ *benchPipeLayer }

func (l benchRefPipe) Dial(hraft.ServerAddress, time.Duration) (net.Conn, error) { return l.dial() }

// BenchmarkAppendEntriesClient: a transport sends the request and reads
// the answer; the peer reads exactly the request's bytes and writes a
// canned answer.
func BenchmarkAppendEntriesClient(b *testing.B) {
	frame := encodeWireValues(b, []byte{0}, wireToRef(wireBenchRequest()))
	answer := encodeWireValues(b, nil, "", wireToRef(wireBenchResponse))
	peer := func(conn net.Conn) {
		defer conn.Close()
		buf := make([]byte, len(frame))
		for {
			if _, err := io.ReadFull(conn, buf); err != nil {
				return
			}
			if _, err := conn.Write(answer); err != nil {
				return
			}
		}
	}
	b.Run("ours", func(b *testing.B) {
		layer := newBenchPipeLayer(peer)
		trans := qraft.NewNetworkTransportWithConfig(&qraft.NetworkTransportConfig{Stream: benchOurPipe{layer}, MaxPool: 1, Timeout: 10 * time.Second, Logger: wireQuietLogger()})
		defer trans.Close()
		req := wireBenchRequest()
		b.SetBytes(int64(len(frame)))
		b.ReportAllocs()
		for b.Loop() {
			var resp qraft.AppendEntriesResponse
			if err := trans.AppendEntries("x", "peer", req, &resp); err != nil || !resp.Success {
				b.Fatal(err)
			}
		}
	})
	b.Run("reference", func(b *testing.B) {
		layer := newBenchPipeLayer(peer)
		trans := hraft.NewNetworkTransportWithConfig(&hraft.NetworkTransportConfig{Stream: benchRefPipe{layer}, MaxPool: 1, Timeout: 10 * time.Second, Logger: wireQuietLogger()})
		defer trans.Close()
		req := wireToRef(wireBenchRequest()).(*hraft.AppendEntriesRequest)
		b.SetBytes(int64(len(frame)))
		b.ReportAllocs()
		for b.Loop() {
			var resp hraft.AppendEntriesResponse
			if err := trans.AppendEntries("x", "peer", req, &resp); err != nil || !resp.Success {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAppendEntriesServer: a hand-written client writes the request
// bytes and reads exactly the answer's bytes; the transport decodes the
// request, hands it to a consumer that answers at once, and encodes the
// answer.
func BenchmarkAppendEntriesServer(b *testing.B) {
	frame := encodeWireValues(b, []byte{0}, wireToRef(wireBenchRequest()))
	answer := encodeWireValues(b, nil, "", wireToRef(wireBenchResponse))
	run := func(b *testing.B, layer *benchPipeLayer) {
		client, server := net.Pipe()
		layer.acceptCh <- server
		defer client.Close()
		r := bufio.NewReader(client)
		buf := make([]byte, len(answer))
		b.SetBytes(int64(len(frame)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := client.Write(frame); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(r, buf); err != nil {
				b.Fatal(err)
			}
		}
		if !bytes.Equal(buf, answer) {
			b.Fatalf("answer %x, want %x", buf, answer)
		}
	}
	b.Run("ours", func(b *testing.B) {
		layer := newBenchPipeLayer(nil)
		trans := qraft.NewNetworkTransportWithConfig(&qraft.NetworkTransportConfig{Stream: benchOurPipe{layer}, Logger: wireQuietLogger()})
		defer trans.Close()
		go func() {
			for rpc := range wireChanUntil(trans.Consumer(), trans.IsShutdown) {
				rpc.Respond(wireBenchResponse, nil)
			}
		}()
		run(b, layer)
	})
	b.Run("reference", func(b *testing.B) {
		layer := newBenchPipeLayer(nil)
		trans := hraft.NewNetworkTransportWithConfig(&hraft.NetworkTransportConfig{Stream: benchRefPipe{layer}, Logger: wireQuietLogger()})
		defer trans.Close()
		resp := wireToRef(wireBenchResponse)
		go func() {
			for rpc := range wireChanUntil(trans.Consumer(), trans.IsShutdown) {
				rpc.Respond(resp, nil)
			}
		}()
		run(b, layer)
	})
}

// BenchmarkPipelineLoopbackTCP sends AppendEntries of 64 × 256-byte entries
// through one pipelined TCP connection on 127.0.0.1 to a transport of the
// same library whose consumer answers at once, and reports entries/s.
func BenchmarkPipelineLoopbackTCP(b *testing.B) {
	for _, inFlight := range []int{2, 16} {
		b.Run("ours/inflight="+strconv.Itoa(inFlight), func(b *testing.B) {
			newOurs := func() *qraft.NetworkTransport {
				t, err := qraft.NewTCPTransportWithConfig("127.0.0.1:0", nil, &qraft.NetworkTransportConfig{
					MaxPool: 2, MaxRPCsInFlight: inFlight, Timeout: 10 * time.Second, Logger: wireQuietLogger()})
				if err != nil {
					b.Fatal(err)
				}
				return t
			}
			server, client := newOurs(), newOurs()
			defer server.Close()
			defer client.Close()
			go func() {
				for rpc := range wireChanUntil(server.Consumer(), server.IsShutdown) {
					rpc.Respond(wireBenchResponse, nil)
				}
			}()
			p, err := client.AppendEntriesPipeline("x", server.LocalAddr())
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			req := wireBenchRequest()
			runWirePipeline(b, len(req.Entries),
				func() error { _, err := p.AppendEntries(req, &qraft.AppendEntriesResponse{}); return err },
				func() error { return (<-p.Consumer()).Error() })
		})
		b.Run("reference/inflight="+strconv.Itoa(inFlight), func(b *testing.B) {
			newRef := func() *hraft.NetworkTransport {
				t, err := hraft.NewTCPTransportWithConfig("127.0.0.1:0", nil, &hraft.NetworkTransportConfig{
					MaxPool: 2, MaxRPCsInFlight: inFlight, Timeout: 10 * time.Second, Logger: wireQuietLogger()})
				if err != nil {
					b.Fatal(err)
				}
				return t
			}
			server, client := newRef(), newRef()
			defer server.Close()
			defer client.Close()
			resp := wireToRef(wireBenchResponse)
			go func() {
				for rpc := range wireChanUntil(server.Consumer(), server.IsShutdown) {
					rpc.Respond(resp, nil)
				}
			}()
			p, err := client.AppendEntriesPipeline("x", server.LocalAddr())
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			req := wireToRef(wireBenchRequest()).(*hraft.AppendEntriesRequest)
			runWirePipeline(b, len(req.Entries),
				func() error { _, err := p.AppendEntries(req, &hraft.AppendEntriesResponse{}); return err },
				func() error { return (<-p.Consumer()).Error() })
		})
	}
}

// runWirePipeline sends b.N requests from one goroutine while this one takes
// the b.N answers, and reports entries per second.
func runWirePipeline(b *testing.B, entriesPerRequest int, send, receive func() error) {
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	sendErr := make(chan error, 1)
	go func() {
		for i := 0; i < b.N; i++ {
			if err := send(); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- nil
	}()
	for i := 0; i < b.N; i++ {
		if err := receive(); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-sendErr; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N*entriesPerRequest)/time.Since(start).Seconds(), "entries/s")
}
