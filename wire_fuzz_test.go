package raft

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Fuzz targets for every decoder that reads bytes from a peer. None may
// panic, allocate beyond its limit, or read past the value it returns.
// Seed corpora live in testdata/fuzz/<FuzzName>/; run one with
// `go test -run=^$ -fuzz=^FuzzName$ -fuzztime=60s`.

// wireFuzzLimit is the size limit used while fuzzing: small enough that the
// fuzzer reaches it.
const wireFuzzLimit = 64 << 10

// FuzzValueReader checks the msgpack value scanner: what it returns is a
// prefix of the input, scanning that prefix again gives the same value, and
// it never keeps more than the limit allows.
func FuzzValueReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r := newValueReader(bufio.NewReader(bytes.NewReader(data)), wireFuzzLimit)
		consumed := 0
		for {
			v, err := r.next()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) &&
					!errors.Is(err, errValueTooLarge) && !errors.Is(err, errMalformedValue) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				return
			}
			if len(v) > wireFuzzLimit {
				t.Fatalf("value of %d bytes passed a %d-byte limit", len(v), wireFuzzLimit)
			}
			if !bytes.Equal(v, data[consumed:consumed+len(v)]) {
				t.Fatalf("value is not the next bytes of the input")
			}
			consumed += len(v)
			again, err := newValueReader(bufio.NewReader(bytes.NewReader(v)), wireFuzzLimit).next()
			if err != nil || !bytes.Equal(again, v) {
				t.Fatalf("rescanning a returned value: %x, %v", again, err)
			}
		}
	})
}

// fuzzDecodeRequest decodes data as a request of type typ through the
// transport's reading path; whatever decodes must encode and decode again
// to the same bytes.
func fuzzDecodeRequest(t *testing.T, typ rpcType, data []byte) {
	dec := newWireDecoder(bufio.NewReader(bytes.NewReader(data)), wireFuzzLimit, newWireDecodeHandle())
	req := typ.newRequest()
	if err := dec.decode(req); err != nil {
		return
	}
	first := encodeFrame(t, typ, req, false)
	again := typ.newRequest()
	decodeFrameForTest(t, first[1:], again)
	if second := encodeFrame(t, typ, again, false); !bytes.Equal(first, second) {
		t.Fatalf("re-encoding is not stable:\n%x\n%x", first, second)
	}
}

func FuzzDecodeAppendEntriesRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecodeRequest(t, rpcAppendEntries, data) })
}

func FuzzDecodeRequestVoteRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecodeRequest(t, rpcRequestVote, data) })
}

func FuzzDecodeRequestPreVoteRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecodeRequest(t, rpcRequestPreVote, data) })
}

func FuzzDecodeInstallSnapshotRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecodeRequest(t, rpcInstallSnapshot, data) })
}

func FuzzDecodeTimeoutNowRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecodeRequest(t, rpcTimeoutNow, data) })
}

func FuzzDecodeReadIndexRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecodeRequest(t, rpcReadIndex, data) })
}

// FuzzDecodeResponse feeds the client's response reader: the first byte
// picks the RPC type, the rest is what the server sent. A failure names
// the peer; every response read, with or without an error text, must
// encode and read again to the same frame.
func FuzzDecodeResponse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		typ := rpcType(data[0] % 6)
		c := fuzzResponseConn(data[1:])
		for {
			resp := typ.newResponse()
			errText, ok := fuzzReadResponse(t, c, resp)
			if !ok {
				return
			}
			first := encodeResponseFrame(t, errText, resp, false)
			resp2 := typ.newResponse()
			errText2, ok := fuzzReadResponse(t, fuzzResponseConn(first), resp2)
			if !ok || errText2 != errText {
				t.Fatalf("reading a re-encoded %s response: error text %q, want %q (ok %v)", typ, errText2, errText, ok)
			}
			if second := encodeResponseFrame(t, errText2, resp2, false); !bytes.Equal(first, second) {
				t.Fatalf("re-encoding a %s response is not stable:\n%x\n%x", typ, first, second)
			}
		}
	})
}

// fuzzResponseConn is a client connection to the peer "fuzz" whose
// answers are b.
func fuzzResponseConn(b []byte) *netConn {
	return &netConn{
		target: "fuzz",
		dec:    newWireDecoder(bufio.NewReader(bytes.NewReader(b)), wireFuzzLimit, newWireDecodeHandle()),
	}
}

// fuzzReadResponse reads one response from c into resp and returns the
// peer's error text, and false when the frame could not be read.
func fuzzReadResponse(t *testing.T, c *netConn, resp interface{}) (string, bool) {
	_, err := c.readResponse(resp)
	if err == nil {
		return "", true
	}
	var remote remoteError
	if errors.As(err, &remote) {
		return string(remote), true
	}
	if !strings.Contains(err.Error(), " from "+string(c.target)+": ") {
		t.Fatalf("the error does not name the peer: %v", err)
	}
	return "", false
}

// netBytesConn is a net.Conn that reads from a byte slice and discards what
// is written; deadlines are ignored.
type netBytesConn struct{ r *bytes.Reader }

func (c netBytesConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c netBytesConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c netBytesConn) Close() error                     { return nil }
func (c netBytesConn) LocalAddr() net.Addr              { return netPipeAddr("fuzz:1") }
func (c netBytesConn) RemoteAddr() net.Addr             { return netPipeAddr("fuzz:2") }
func (c netBytesConn) SetDeadline(time.Time) error      { return nil }
func (c netBytesConn) SetReadDeadline(time.Time) error  { return nil }
func (c netBytesConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzReadRequestFrame runs the server's frame reader over a whole
// connection's worth of bytes: type byte, request, snapshot body, next
// request, and so on, as serveRequest reads them.
func FuzzReadRequestFrame(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		n := &NetworkTransport{TimeoutScale: DefaultTimeoutScale, frameTimeout: time.Second}
		conn := netBytesConn{bytes.NewReader(data)}
		c := &serverConn{conn: conn, r: bufio.NewReader(conn)}
		c.dec = newWireDecoder(c.r, wireFuzzLimit, newWireDecodeHandle())
		for {
			b, err := c.r.ReadByte()
			if err != nil {
				return
			}
			rpc, _, _, err := n.readRequest(c, rpcType(b))
			if err != nil {
				return
			}
			if _, ok := rpc.Command.(WithRPCHeader); !ok {
				t.Fatalf("decoded command %T has no header", rpc.Command)
			}
			if rpc.Reader != nil {
				if _, err := io.Copy(io.Discard, rpc.Reader); err != nil {
					return
				}
			}
		}
	})
}

// wireFuzzSeeds returns the seed inputs of each fuzz target: the golden frames
// and the hostile payloads.
func wireFuzzSeeds(t *testing.T) map[string][][]byte {
	var frames, values [][]byte
	for _, g := range goldenRequests {
		frame := readWireGolden(t, g.file)
		frames = append(frames, frame)
		values = append(values, frame[1:])
	}
	var responses [][]byte
	for i, g := range goldenResponses {
		responses = append(responses, append([]byte{byte(i % 5)}, readWireGolden(t, g.file)...))
	}
	responses = append(responses, append([]byte{byte(rpcReadIndex)}, readWireGolden(t, "read_index_response")...))
	for _, h := range netHostileCases {
		frames = append(frames, h.payload)
		values = append(values, h.payload[1:])
	}
	example := readWireGolden(t, "compat_4_3_append_entries")
	newTime := readWireGolden(t, "compat_4_3_append_entries_new_time_format")
	values = append(values, example, newTime)
	// A snapshot request, its 3-byte body, then a TimeoutNow request.
	snapshotThenNext := append(encodeFrame(t, rpcInstallSnapshot, &InstallSnapshotRequest{Size: 3}, false), 'a', 'b', 'c', 3, 0x80)
	frames = append(frames, append([]byte{0}, example...), append([]byte{0}, newTime...), snapshotThenNext)
	frames = append(frames, readWireGolden(t, "read_index_request"))
	return map[string][][]byte{
		"FuzzValueReader":                  values,
		"FuzzDecodeAppendEntriesRequest":   {values[0], values[1], example, newTime},
		"FuzzDecodeRequestVoteRequest":     {readWireGolden(t, "request_vote_request")[1:]},
		"FuzzDecodeRequestPreVoteRequest":  {readWireGolden(t, "request_pre_vote_request")[1:]},
		"FuzzDecodeInstallSnapshotRequest": {readWireGolden(t, "install_snapshot_request")[1:]},
		"FuzzDecodeTimeoutNowRequest":      {readWireGolden(t, "timeout_now_request")[1:]},
		"FuzzDecodeReadIndexRequest":       {readWireGolden(t, "read_index_request")[1:]},
		"FuzzDecodeResponse":               responses,
		"FuzzReadRequestFrame":             frames,
	}
}

// TestFuzzSeeds checks that every fuzz target has its seed corpus, and
// under -update-wire writes it.
func TestFuzzSeeds(t *testing.T) {
	for target, seeds := range wireFuzzSeeds(t) {
		dir := filepath.Join("testdata", "fuzz", target)
		if !*updateWire {
			entries, err := os.ReadDir(dir)
			if err != nil || len(entries) < len(seeds) {
				t.Errorf("%s: %d seed files, want %d (run with -update-wire): %v", dir, len(entries), len(seeds), err)
			}
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, seed := range seeds {
			body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(seed)) + ")\n"
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
