package raft

import (
	"bufio"
	"bytes"
	"io"
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// netBenchAppendEntries is the benchmark request: 64 entries of 256 bytes.
func netBenchAppendEntries() *AppendEntriesRequest {
	req := &AppendEntriesRequest{
		RPCHeader: RPCHeader{ProtocolVersion: 3, ID: []byte("node-1"), Addr: []byte("10.0.0.1:8300")},
		Term:      12, Leader: []byte("10.0.0.1:8300"), PrevLogEntry: 100000, PrevLogTerm: 12, LeaderCommitIndex: 99990,
	}
	for i := 0; i < 64; i++ {
		req.Entries = append(req.Entries, &Log{Index: uint64(100001 + i), Term: 12, Type: LogCommand,
			Data: bytes.Repeat([]byte{byte(i)}, 256), AppendedAt: netTestTime})
	}
	return req
}

// BenchmarkWireEncodeAppendEntries measures writing one request frame.
func BenchmarkWireEncodeAppendEntries(b *testing.B) {
	req := netBenchAppendEntries()
	var counter netCountingWriter
	enc := newWireEncoder(bufio.NewWriterSize(&counter, clientWriteBufferSize), newWireEncodeHandle(false))
	b.ReportAllocs()
	for b.Loop() {
		if err := enc.writeRequest(rpcAppendEntries, req); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(counter.n / int64(b.N))
}

type netCountingWriter struct{ n int64 }

func (w *netCountingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// BenchmarkWireDecodeAppendEntries measures the server's path: the value
// reader collects the request, then the codec decodes it from memory.
func BenchmarkWireDecodeAppendEntries(b *testing.B) {
	frame := encodeFrame(b, rpcAppendEntries, netBenchAppendEntries(), false)[1:]
	src := bytes.NewReader(frame)
	r := bufio.NewReaderSize(src, serverReadBufferSize)
	dec := newWireDecoder(r, DefaultMaxRPCBytes, newWireDecodeHandle())
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(frame)
		r.Reset(src)
		var req AppendEntriesRequest
		if err := dec.decode(&req); err != nil || len(req.Entries) != 64 {
			b.Fatal(err)
		}
	}
}

// BenchmarkWireDecodeAppendEntriesStreamed decodes the way hashicorp/raft
// does, straight from the buffered stream with a default handle, as the
// baseline for BenchmarkWireDecodeAppendEntries.
func BenchmarkWireDecodeAppendEntriesStreamed(b *testing.B) {
	frame := encodeFrame(b, rpcAppendEntries, netBenchAppendEntries(), false)[1:]
	src := bytes.NewReader(frame)
	r := bufio.NewReaderSize(src, serverReadBufferSize)
	dec := codec.NewDecoder(r, &codec.MsgpackHandle{})
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(frame)
		r.Reset(src)
		dec.Reset(r)
		var req AppendEntriesRequest
		if err := dec.Decode(&req); err != nil || len(req.Entries) != 64 {
			b.Fatal(err)
		}
	}
}

// BenchmarkWireDecodeLargeEntry decodes one 8 MiB entry, where growing
// the byte slice in steps (the codec's default) would copy quadratically.
func BenchmarkWireDecodeLargeEntry(b *testing.B) {
	req := &AppendEntriesRequest{Term: 1, Entries: []*Log{{Index: 1, Data: make([]byte, 8<<20)}}}
	frame := encodeFrame(b, rpcAppendEntries, req, false)[1:]
	for _, tc := range []struct {
		name   string
		decode func(r *bufio.Reader) error
	}{
		{"valueReader", func(r *bufio.Reader) error {
			var out AppendEntriesRequest
			return newWireDecoder(r, DefaultMaxRPCBytes, newWireDecodeHandle()).decode(&out)
		}},
		{"streamed", func(r *bufio.Reader) error {
			var out AppendEntriesRequest
			return codec.NewDecoder(r, &codec.MsgpackHandle{}).Decode(&out)
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				if err := tc.decode(bufio.NewReaderSize(bytes.NewReader(frame), serverReadBufferSize)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var _ io.Writer = (*netCountingWriter)(nil)
