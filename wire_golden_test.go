package raft

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// updateWire rewrites the golden files of testdata/wire from the current
// encoder (except compat_4_3_append_entries*.hex, the bytes hashicorp/raft
// writes for one request, which interop/wire_test.go checks against it).
// Review the diff before committing it: any change is a wire-format change.
var updateWire = flag.Bool("update-wire", false, "rewrite testdata/wire golden files")

// compatExampleHex is one AppendEntriesRequest as hashicorp/raft's
// transport encodes it, byte for byte (interop/wire_test.go has the
// reference write it).
const compatExampleHex = "89a441646472a3613a31a7456e74726965739186aa417070656e6465644174af010000000edd25742500000006ffffa444617461a26869aa457874656e73696f6e73c0a5496e64657805a45465726d02a45479706500a24944a26e31a64c6561646572c0b14c6561646572436f6d6d6974496e64657804ac507265764c6f67456e74727904ab507265764c6f675465726d02af50726f746f636f6c56657273696f6e03a45465726d07"

// compatExample is the request that compatExampleHex encodes.
func compatExample() *AppendEntriesRequest {
	return &AppendEntriesRequest{
		RPCHeader:    RPCHeader{ProtocolVersion: 3, ID: []byte("n1"), Addr: []byte("a:1")},
		Term:         7,
		PrevLogEntry: 4, PrevLogTerm: 2, LeaderCommitIndex: 4,
		Entries: []*Log{{Index: 5, Term: 2, Type: LogCommand, Data: []byte("hi"),
			AppendedAt: time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)}},
	}
}

// goldenRequests and goldenResponses are the RPCs whose frames are kept in
// testdata/wire, one file each.
var goldenRequests = []struct {
	file string
	typ  rpcType
	req  interface{}
}{
	{"append_entries_request", rpcAppendEntries, &AppendEntriesRequest{
		RPCHeader: RPCHeader{ProtocolVersion: 3, ID: []byte("n1"), Addr: []byte("10.0.0.1:8300")},
		Term:      300, Leader: []byte("10.0.0.1:8300"), PrevLogEntry: 70000, PrevLogTerm: 299, LeaderCommitIndex: 69999,
		Entries: []*Log{
			{Index: 70001, Term: 300, Type: LogCommand, Data: []byte("set x=1"), Extensions: []byte("meta"), AppendedAt: time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)},
			{Index: 70002, Term: 300, Type: LogConfiguration, Data: []byte{0x81, 0xa7, 'S', 'e', 'r', 'v', 'e', 'r', 's', 0x90}, AppendedAt: time.Date(2024, 5, 6, 7, 8, 9, 0, time.FixedZone("", 2*3600))},
		}}},
	{"heartbeat_request", rpcAppendEntries, &AppendEntriesRequest{
		RPCHeader: RPCHeader{ProtocolVersion: 3, ID: []byte("n1"), Addr: []byte("10.0.0.1:8300")},
		Term:      300, Leader: []byte("10.0.0.1:8300")}},
	{"request_vote_request", rpcRequestVote, &RequestVoteRequest{
		RPCHeader: RPCHeader{ProtocolVersion: 3, ID: []byte("n2"), Addr: []byte("10.0.0.2:8300")},
		Term:      301, Candidate: []byte("10.0.0.2:8300"), LastLogIndex: 70002, LastLogTerm: 300, LeadershipTransfer: true}},
	{"request_pre_vote_request", rpcRequestPreVote, &RequestPreVoteRequest{
		RPCHeader: RPCHeader{ProtocolVersion: 3, ID: []byte("n2"), Addr: []byte("10.0.0.2:8300")},
		Term:      301, LastLogIndex: 70002, LastLogTerm: 300}},
	{"install_snapshot_request", rpcInstallSnapshot, &InstallSnapshotRequest{
		RPCHeader:       RPCHeader{ProtocolVersion: 3, ID: []byte("n1"), Addr: []byte("10.0.0.1:8300")},
		SnapshotVersion: 1, Term: 300, Leader: []byte("10.0.0.1:8300"), LastLogIndex: 70000, LastLogTerm: 299,
		Peers:         []byte{0x91, 0xad, '1', '0', '.', '0', '.', '0', '.', '1', ':', '8', '3', '0', '0'},
		Configuration: []byte{0x81, 0xa7, 'S', 'e', 'r', 'v', 'e', 'r', 's', 0x90}, ConfigurationIndex: 1, Size: 1 << 40}},
	{"timeout_now_request", rpcTimeoutNow, &TimeoutNowRequest{
		RPCHeader: RPCHeader{ProtocolVersion: 3, ID: []byte("n1"), Addr: []byte("10.0.0.1:8300")}}},
}

var goldenResponses = []struct {
	file    string
	errText string
	resp    interface{}
}{
	{"append_entries_response", "", &AppendEntriesResponse{
		RPCHeader: RPCHeader{ProtocolVersion: 3, ID: []byte("n2"), Addr: []byte("10.0.0.2:8300")},
		Term:      300, LastLog: 70002, Success: true, NoRetryBackoff: true}},
	{"request_vote_response", "", &RequestVoteResponse{
		RPCHeader: RPCHeader{ProtocolVersion: 3, ID: []byte("n1"), Addr: []byte("10.0.0.1:8300")},
		Term:      301, Peers: []byte{0x90}, Granted: true}},
	{"request_pre_vote_response", "", &RequestPreVoteResponse{
		RPCHeader: RPCHeader{ProtocolVersion: 3, ID: []byte("n1"), Addr: []byte("10.0.0.1:8300")},
		Term:      301, Granted: true}},
	{"install_snapshot_response", "", &InstallSnapshotResponse{
		RPCHeader: RPCHeader{ProtocolVersion: 3, ID: []byte("n2"), Addr: []byte("10.0.0.2:8300")},
		Term:      300, Success: true}},
	{"timeout_now_response", "", &TimeoutNowResponse{
		RPCHeader: RPCHeader{ProtocolVersion: 3, ID: []byte("n2"), Addr: []byte("10.0.0.2:8300")}}},
	// A refusal without a response, as raft answers an unsupported
	// protocol version: the error text, then msgpack nil.
	{"error_response", ErrUnsupportedProtocol.Error(), nil},
}

// encodeResponseFrame returns a response frame as a server writes it.
func encodeResponseFrame(t testing.TB, errText string, resp interface{}, newTimeFormat bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	if err := newWireEncoder(w, newWireEncodeHandle(newTimeFormat)).writeResponse(errText, resp); err != nil {
		t.Fatalf("encode: %v", err)
	}
	return buf.Bytes()
}

// checkWireGolden compares got with testdata/wire/name.hex, or rewrites the
// file under -update-wire.
func checkWireGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "wire", name+".hex")
	if *updateWire {
		if err := os.WriteFile(path, []byte(hex.EncodeToString(got)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want := readWireGolden(t, name)
	if !bytes.Equal(got, want) {
		t.Errorf("%s: encoding changed\n got: %x\nwant: %x", name, got, want)
	}
}

func readWireGolden(t testing.TB, name string) []byte {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("testdata", "wire", name+".hex"))
	if err != nil {
		t.Fatalf("reading golden file (run with -update-wire to create it): %v", err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(text)))
	if err != nil {
		t.Fatalf("golden file %s: %v", name, err)
	}
	return b
}

// The example request encodes to exactly the reference's bytes, and its
// golden file holds the same bytes.
func TestWire_CompatExample(t *testing.T) {
	want, _ := hex.DecodeString(compatExampleHex)
	frame := encodeFrame(t, rpcAppendEntries, compatExample(), false)
	if frame[0] != byte(rpcAppendEntries) || !bytes.Equal(frame[1:], want) {
		t.Fatalf("the reference's example request:\n got: %x\nwant: %x", frame[1:], want)
	}
	if got := readWireGolden(t, "compat_4_3_append_entries"); !bytes.Equal(got, want) {
		t.Fatalf("testdata/wire/compat_4_3_append_entries.hex differs from the reference's bytes")
	}
	var decoded AppendEntriesRequest
	decodeFrameForTest(t, want, &decoded)
	if !reflect.DeepEqual(&decoded, compatExample()) {
		t.Fatalf("decoded example %+v", decoded)
	}
}

// decodeFrameForTest decodes one msgpack value through the transport's
// reading path.
func decodeFrameForTest(t testing.TB, b []byte, out interface{}) {
	t.Helper()
	dec := newWireDecoder(bufio.NewReader(bytes.NewReader(b)), DefaultMaxRPCBytes, newWireDecodeHandle())
	if err := dec.decode(out); err != nil {
		t.Fatalf("decode: %v", err)
	}
}

// Each RPC's request and response frames match their golden files, and
// decode back into what was encoded.
func TestWire_GoldenFrames(t *testing.T) {
	for _, g := range goldenRequests {
		frame := encodeFrame(t, g.typ, g.req, false)
		checkWireGolden(t, g.file, frame)
		if frame[0] != byte(g.typ) {
			t.Errorf("%s: type byte %d, want %d", g.file, frame[0], g.typ)
		}
		got := g.typ.newRequest()
		decodeFrameForTest(t, readWireGolden(t, g.file)[1:], got)
		if !reflect.DeepEqual(normalizeTimes(got), normalizeTimes(g.req)) {
			t.Errorf("%s decodes to\n  %+v\nwant\n  %+v", g.file, got, g.req)
		}
	}
	for _, g := range goldenResponses {
		checkWireGolden(t, g.file, encodeResponseFrame(t, g.errText, g.resp, false))
		dec := newWireDecoder(bufio.NewReader(bytes.NewReader(readWireGolden(t, g.file))), DefaultMaxRPCBytes, newWireDecodeHandle())
		var errText string
		if err := dec.decode(&errText); err != nil || errText != g.errText {
			t.Errorf("%s: error text %q, %v", g.file, errText, err)
		}
		if g.resp == nil {
			var resp AppendEntriesResponse
			if err := dec.decode(&resp); err != nil || !reflect.DeepEqual(resp, AppendEntriesResponse{}) {
				t.Errorf("%s: nil response decodes to %+v, %v", g.file, resp, err)
			}
			continue
		}
		got := reflect.New(reflect.TypeOf(g.resp).Elem()).Interface()
		if err := dec.decode(got); err != nil || !reflect.DeepEqual(got, g.resp) {
			t.Errorf("%s decodes to %+v, %v; want %+v", g.file, got, err, g.resp)
		}
	}
}

// normalizeTimes makes decoded times comparable with the originals: the
// binary form restores a fixed zone as an unnamed zone of the same offset,
// which DeepEqual sees as a different *Location.
func normalizeTimes(v interface{}) interface{} {
	req, ok := v.(*AppendEntriesRequest)
	if !ok {
		return v
	}
	out := *req
	out.Entries = nil
	for _, e := range req.Entries {
		c := *e
		c.AppendedAt = c.AppendedAt.UTC()
		out.Entries = append(out.Entries, &c)
	}
	return &out
}

// MsgpackUseNewTimeFormat writes times as a msgpack timestamp body in a raw
// string, and the zero time as nil; both time forms decode to the same
// instant.
func TestWire_TimeFormats(t *testing.T) {
	req := compatExample()
	newFrame := encodeFrame(t, rpcAppendEntries, req, true)
	checkWireGolden(t, "compat_4_3_append_entries_new_time_format", newFrame[1:])
	// 2024-01-02T03:04:05.000000006Z as timestamp 64: 30 bits of
	// nanoseconds, 34 bits of seconds, inside raw(8).
	if !bytes.Contains(newFrame, []byte{0xaa, 'A', 'p', 'p', 'e', 'n', 'd', 'e', 'd', 'A', 't', 0xa8, 0x00, 0x00, 0x00, 0x18, 0x65, 0x93, 0x7d, 0x25}) {
		t.Fatalf("new time format not as expected: %x", newFrame)
	}
	for _, frame := range [][]byte{newFrame, encodeFrame(t, rpcAppendEntries, req, false)} {
		var got AppendEntriesRequest
		decodeFrameForTest(t, frame[1:], &got)
		if !got.Entries[0].AppendedAt.Equal(req.Entries[0].AppendedAt) {
			t.Fatalf("time decoded as %v, want %v", got.Entries[0].AppendedAt, req.Entries[0].AppendedAt)
		}
	}

	zero := &Log{Index: 1}
	old := encodeFrame(t, rpcAppendEntries, &AppendEntriesRequest{Entries: []*Log{zero}}, false)
	if !bytes.Contains(old, []byte{0xaf, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}) {
		t.Fatalf("zero time in the binary form not as the reference writes it: %x", old)
	}
	fresh := encodeFrame(t, rpcAppendEntries, &AppendEntriesRequest{Entries: []*Log{zero}}, true)
	if !bytes.Contains(fresh, []byte{'A', 't', 0xc0}) {
		t.Fatalf("zero time in the new format should be nil: %x", fresh)
	}
	for _, frame := range [][]byte{old, fresh} {
		var got AppendEntriesRequest
		decodeFrameForTest(t, frame[1:], &got)
		if !got.Entries[0].AppendedAt.IsZero() {
			t.Fatalf("zero time decoded as %v", got.Entries[0].AppendedAt)
		}
	}
}

// The same Log encoding is used in log stores (raftboltdb's
// TestStoredEntryBytes).
func TestWire_LogEntryMatchesStoreFormat(t *testing.T) {
	const want = "86aa417070656e6465644174af010000000edd25742500000006ffffa444617461a26869aa457874656e73696f6e73c0a5496e64657805a45465726d02a45479706500"
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	if err := newWireEncoder(w, newWireEncodeHandle(false)).enc.Encode(compatExample().Entries[0]); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	if got := hex.EncodeToString(buf.Bytes()); got != want {
		t.Fatalf("Log encodes as %s, want %s", got, want)
	}
}
