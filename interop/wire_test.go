package interop

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-msgpack/v2/codec"
	hraft "github.com/hashicorp/raft"
	qraft "github.com/quorumkit/raft"
)

// These tests run hashicorp/raft's NetworkTransport and ours against each
// other over real TCP on 127.0.0.1, in every direction, and compare the
// bytes each one writes. Every wait is bounded by the transports' timeouts.

var wireLibs = []string{"ours", "reference"}

func wireQuietLogger() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "raft-net", Output: io.Discard})
}

var wireTime = time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)

// wireCase is one RPC with every field set.
type wireCase struct {
	name string
	req  interface{}
	resp func() interface{} // an empty response of the right type
	body []byte             // InstallSnapshot data
}

func wireCases() []wireCase {
	h := qraft.RPCHeader{ProtocolVersion: 3, ID: []byte("n1"), Addr: []byte("127.0.0.1:7000")}
	snapshot := bytes.Repeat([]byte("snapshot bytes "), 70000) // ~1 MiB
	return []wireCase{
		{"AppendEntries", &qraft.AppendEntriesRequest{RPCHeader: h, Term: 7, Leader: []byte("127.0.0.1:7000"),
			PrevLogEntry: 4, PrevLogTerm: 2, LeaderCommitIndex: 4, Entries: []*qraft.Log{
				{Index: 5, Term: 2, Type: qraft.LogCommand, Data: []byte("hi"), AppendedAt: wireTime},
				{Index: 6, Term: 2, Type: qraft.LogConfiguration, Data: bytes.Repeat([]byte{7}, 300), Extensions: []byte("ext"), AppendedAt: wireTime.Add(time.Hour)},
				{Index: 7, Term: 2, Type: qraft.LogNoop},
			}},
			func() interface{} { return &qraft.AppendEntriesResponse{} }, nil},
		{"RequestVote", &qraft.RequestVoteRequest{RPCHeader: h, Term: 8, Candidate: []byte("127.0.0.1:7000"), LastLogIndex: 1 << 40, LastLogTerm: 7, LeadershipTransfer: true},
			func() interface{} { return &qraft.RequestVoteResponse{} }, nil},
		{"RequestPreVote", &qraft.RequestPreVoteRequest{RPCHeader: h, Term: 9, LastLogIndex: 300, LastLogTerm: 8},
			func() interface{} { return &qraft.RequestPreVoteResponse{} }, nil},
		{"TimeoutNow", &qraft.TimeoutNowRequest{RPCHeader: h},
			func() interface{} { return &qraft.TimeoutNowResponse{} }, nil},
		{"InstallSnapshot", &qraft.InstallSnapshotRequest{RPCHeader: h, SnapshotVersion: 1, Term: 10, Leader: []byte("127.0.0.1:7000"),
			LastLogIndex: 1000, LastLogTerm: 9, Peers: []byte{0x91, 0xa1, 'x'}, Configuration: []byte("cfg"), ConfigurationIndex: 900, Size: int64(len(snapshot))},
			func() interface{} { return &qraft.InstallSnapshotResponse{} }, snapshot},
		{"ErrorAnswer", &qraft.RequestPreVoteRequest{RPCHeader: h, Term: 666},
			func() interface{} { return &qraft.RequestPreVoteResponse{} }, nil},
	}
}

// normalize makes decoded messages comparable: times in UTC.
func normalizeWire(v interface{}) interface{} {
	if req, ok := v.(*qraft.AppendEntriesRequest); ok {
		c := *req
		c.Entries = nil
		for _, e := range req.Entries {
			l := *e
			l.AppendedAt = l.AppendedAt.UTC()
			c.Entries = append(c.Entries, &l)
		}
		return &c
	}
	return v
}

// Every RPC type, sent by either library to either library, arrives intact
// and is answered intact; and for each one the request bytes our client
// writes equal the reference client's, and our server's answer bytes equal
// the reference server's. Both time formats, each sent to servers that are
// set to write the other one (decoding accepts both).
func TestWire_BothLibrariesSameBytes(t *testing.T) {
	for _, newTime := range []bool{false, true} {
		t.Run(fmt.Sprintf("newTimeFormat=%v", newTime), func(t *testing.T) {
			wireNodes := map[string]*wireNode{}
			for _, lib := range wireLibs {
				wireNodes[lib] = newWireNode(t, lib, !newTime)
			}
			clients := map[string]*wireNode{}
			for _, lib := range wireLibs {
				clients[lib] = newWireNode(t, lib, newTime)
			}
			for _, tc := range wireCases() {
				requests := map[string][]byte{}  // by client library
				responses := map[string][]byte{} // by server library
				for _, clientLib := range wireLibs {
					for _, serverLib := range wireLibs {
						client, server := clients[clientLib], wireNodes[serverLib]
						client.layer.dialed.take()
						server.layer.accepted.take()

						resp := tc.resp()
						err := client.call(server.addr, tc.req, resp, tc.body)
						want, wantErr := wireAnswer(tc.req)
						if fmt.Sprint(err) != fmt.Sprint(wantErr) {
							t.Fatalf("%s %s→%s: error %v, want %v", tc.name, clientLib, serverLib, err, wantErr)
						}
						if want != nil && !reflect.DeepEqual(resp, want) {
							t.Fatalf("%s %s→%s: response %+v, want %+v", tc.name, clientLib, serverLib, resp, want)
						}
						got := <-server.received
						if !reflect.DeepEqual(normalizeWire(got.command), normalizeWire(tc.req)) {
							t.Fatalf("%s %s→%s: server decoded\n  %+v\nwant\n  %+v", tc.name, clientLib, serverLib, got.command, tc.req)
						}
						if !bytes.Equal(got.body, tc.body) {
							t.Fatalf("%s %s→%s: snapshot body of %d bytes, want %d", tc.name, clientLib, serverLib, len(got.body), len(tc.body))
						}

						req, res := client.layer.dialed.take(), server.layer.accepted.take()
						checkSameWireBytes(t, tc.name+" request by "+clientLib+" client", requests, clientLib, req)
						checkSameWireBytes(t, tc.name+" response by "+serverLib+" server", responses, serverLib, res)
					}
				}
			}
		})
	}
}

// checkSameWireBytes records b under lib in seen and fails t if the other library
// recorded different bytes.
func checkSameWireBytes(t *testing.T, what string, seen map[string][]byte, lib string, b []byte) {
	t.Helper()
	if len(b) == 0 {
		t.Fatalf("%s: nothing recorded", what)
	}
	if prev, ok := seen[lib]; ok && !bytes.Equal(prev, b) {
		t.Fatalf("%s: the same library wrote different bytes on two runs", what)
	}
	seen[lib] = b
	for other, ob := range seen {
		if other != lib && !bytes.Equal(ob, b) {
			t.Fatalf("%s differs from %s's:\n %s: %s\n %s: %s", what, other, lib, wireHexHead(b), other, wireHexHead(ob))
		}
	}
}

func wireHexHead(b []byte) string {
	if len(b) > 400 {
		return hex.EncodeToString(b[:400]) + "..."
	}
	return hex.EncodeToString(b)
}

// The request of testdata/wire/compat_4_3_append_entries.hex, written by
// the reference's transport, is the
// golden file of the main module byte for byte.
func TestWire_CompatExampleFromReference(t *testing.T) {
	golden := readWireGolden(t, "compat_4_3_append_entries")
	client, server := newWireNode(t, "reference", false), newWireNode(t, "ours", false)
	req := &qraft.AppendEntriesRequest{
		RPCHeader: qraft.RPCHeader{ProtocolVersion: 3, ID: []byte("n1"), Addr: []byte("a:1")},
		Term:      7, PrevLogEntry: 4, PrevLogTerm: 2, LeaderCommitIndex: 4,
		Entries: []*qraft.Log{{Index: 5, Term: 2, Type: qraft.LogCommand, Data: []byte("hi"), AppendedAt: wireTime}},
	}
	if err := client.call(server.addr, req, &qraft.AppendEntriesResponse{}, nil); err != nil {
		t.Fatal(err)
	}
	<-server.received
	if got := client.layer.dialed.take(); !bytes.Equal(got, append([]byte{0}, golden...)) {
		t.Fatalf("reference wrote %x\nwant 00%x", got, golden)
	}
}

func readWireGolden(t *testing.T, name string) []byte {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("..", "testdata", "wire", name+".hex"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(text)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Every golden frame of the main module is what the reference's codec
// settings produce: decoded and re-encoded as hashicorp/raft does, it
// comes out the same.
func TestWire_GoldenFilesAreReferenceEncodings(t *testing.T) {
	requests := map[string]interface{}{
		"append_entries_request": &hraft.AppendEntriesRequest{}, "heartbeat_request": &hraft.AppendEntriesRequest{},
		"request_vote_request": &hraft.RequestVoteRequest{}, "request_pre_vote_request": &hraft.RequestPreVoteRequest{},
		"install_snapshot_request": &hraft.InstallSnapshotRequest{}, "timeout_now_request": &hraft.TimeoutNowRequest{},
	}
	responses := map[string]interface{}{
		"append_entries_response": &hraft.AppendEntriesResponse{}, "request_vote_response": &hraft.RequestVoteResponse{},
		"request_pre_vote_response": &hraft.RequestPreVoteResponse{}, "install_snapshot_response": &hraft.InstallSnapshotResponse{},
		"timeout_now_response": &hraft.TimeoutNowResponse{}, "error_response": &hraft.AppendEntriesResponse{},
	}
	encode := func(vals ...interface{}) []byte {
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		enc := codec.NewEncoder(w, &codec.MsgpackHandle{BasicHandle: codec.BasicHandle{TimeNotBuiltin: true}})
		for _, v := range vals {
			if err := enc.Encode(v); err != nil {
				t.Fatal(err)
			}
		}
		w.Flush()
		return buf.Bytes()
	}
	for name, req := range requests {
		frame := readWireGolden(t, name)
		if err := codec.NewDecoderBytes(frame[1:], &codec.MsgpackHandle{}).Decode(req); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := append([]byte{frame[0]}, encode(req)...); !bytes.Equal(got, frame) {
			t.Errorf("%s: reference re-encodes as %x", name, got)
		}
	}
	for name, resp := range responses {
		frame := readWireGolden(t, name)
		dec := codec.NewDecoderBytes(frame, &codec.MsgpackHandle{})
		var errText string
		if err := dec.Decode(&errText); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var v interface{} = resp
		if name == "error_response" {
			v = nil
		}
		if err := dec.Decode(resp); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := encode(errText, v); !bytes.Equal(got, frame) {
			t.Errorf("%s: reference re-encodes as %x", name, got)
		}
	}
}

// Pipelines work across libraries in both directions: every answer comes
// back, in order.
func TestWire_PipelineAcrossLibraries(t *testing.T) {
	for _, clientLib := range wireLibs {
		for _, serverLib := range wireLibs {
			client, server := newWireNode(t, clientLib, false), newWireNode(t, serverLib, false)
			var reqs []*qraft.AppendEntriesRequest
			for i := 0; i < 200; i++ {
				reqs = append(reqs, &qraft.AppendEntriesRequest{Term: 3, PrevLogEntry: uint64(i), LeaderCommitIndex: 1,
					Entries: []*qraft.Log{{Index: uint64(i + 1), Term: 3, Data: []byte("entry"), AppendedAt: wireTime}}})
			}
			go func() {
				for range reqs {
					<-server.received
				}
			}()
			resps, err := client.pipeline(server.addr, reqs)
			if err != nil {
				t.Fatalf("%s→%s pipeline: %v", clientLib, serverLib, err)
			}
			for i, r := range resps {
				if r.LastLog != uint64(i+1) {
					t.Fatalf("%s→%s: answer %d has LastLog %d: out of order", clientLib, serverLib, i, r.LastLog)
				}
			}
		}
	}
}

// A heartbeat from either library takes the other's fast path; an
// AppendEntries with a commit index does not.
func TestWire_HeartbeatFastPathAcrossLibraries(t *testing.T) {
	for _, clientLib := range wireLibs {
		for _, serverLib := range wireLibs {
			client, server := newWireNode(t, clientLib, false), newWireNode(t, serverLib, false)
			server.setHeartbeatHandler()
			hb := &qraft.AppendEntriesRequest{RPCHeader: qraft.RPCHeader{ProtocolVersion: 3, ID: []byte("n1"), Addr: []byte("127.0.0.1:7000")}, Term: 4, Leader: []byte("127.0.0.1:7000")}
			if err := client.call(server.addr, hb, &qraft.AppendEntriesResponse{}, nil); err != nil {
				t.Fatal(err)
			}
			if got := <-server.received; got.via != "heartbeat" {
				t.Fatalf("%s→%s: heartbeat went to the %s", clientLib, serverLib, got.via)
			}
			notHB := &qraft.AppendEntriesRequest{Term: 4, Leader: []byte("127.0.0.1:7000"), LeaderCommitIndex: 2}
			if err := client.call(server.addr, notHB, &qraft.AppendEntriesResponse{}, nil); err != nil {
				t.Fatal(err)
			}
			if got := <-server.received; got.via != "consumer" {
				t.Fatalf("%s→%s: AppendEntries with a commit index went to the %s", clientLib, serverLib, got.via)
			}
		}
	}
}
