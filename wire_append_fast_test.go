package raft

import (
	"bytes"
	"math"
	"math/rand"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// randomAppendRequest builds a request that reaches every form the
// hand-written path writes: nil and empty byte slices, strings around each
// length boundary, integers around each width, nil entries, times in
// several zones.
func randomAppendRequest(rng *rand.Rand) *AppendEntriesRequest {
	pick := func(vs ...uint64) uint64 { return vs[rng.Intn(len(vs))] }
	u := func() uint64 {
		return pick(0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, math.MaxUint32, math.MaxUint32+1, math.MaxUint64, rng.Uint64())
	}
	b := func() []byte {
		switch rng.Intn(6) {
		case 0:
			return nil
		case 1:
			return []byte{}
		default:
			n := int(pick(1, 5, 31, 32, 255, 256, 300))
			if rng.Intn(40) == 0 {
				n = int(pick(65535, 65536, 70000))
			}
			out := make([]byte, n)
			rng.Read(out)
			return out
		}
	}
	zones := []*time.Location{time.UTC, time.Local, time.FixedZone("plus", 3600), time.FixedZone("odd", -(5*3600 + 30*60 + 7))}
	tm := func() time.Time {
		switch rng.Intn(4) {
		case 0:
			return time.Time{}
		case 1:
			return time.Now()
		default:
			return time.Unix(rng.Int63n(1<<40), rng.Int63n(1e9)).In(zones[rng.Intn(len(zones))])
		}
	}
	pv := []int64{0, 1, 3, 127, 128, 255, 256, 32767, 32768, math.MaxInt32, math.MaxInt32 + 1, -1, -32, -33, -128, -129, -32769, math.MinInt32 - 1}
	req := &AppendEntriesRequest{
		RPCHeader:         RPCHeader{ProtocolVersion: ProtocolVersion(pv[rng.Intn(len(pv))]), ID: b(), Addr: b()},
		Term:              u(),
		Leader:            b(),
		PrevLogEntry:      u(),
		PrevLogTerm:       u(),
		LeaderCommitIndex: u(),
	}
	switch n := int(pick(0, 0, 1, 2, 15, 16, 70)); {
	case n == 0 && rng.Intn(2) == 0:
		req.Entries = nil
	default:
		req.Entries = make([]*Log, n)
		for i := range req.Entries {
			if rng.Intn(30) == 0 {
				continue
			}
			req.Entries[i] = &Log{Index: u(), Term: u(), Type: LogType(rng.Intn(256)), Data: b(), Extensions: b(), AppendedAt: tm()}
		}
	}
	return req
}

func codecEncode(t *testing.T, h *codec.MsgpackHandle, v interface{}) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := codec.NewEncoder(&buf, h).Encode(v); err != nil {
		t.Fatalf("codec encode: %v", err)
	}
	return buf.Bytes()
}

// codecDecode decodes raw into a fresh request with the codec, as the
// transport would without the hand-written path.
func codecDecode(raw []byte) (*AppendEntriesRequest, error) {
	out := &AppendEntriesRequest{}
	err := decodeWireValue(codec.NewDecoderBytes(nil, newWireDecodeHandle()), raw, out)
	return out, err
}

// wireCases is how many random requests each property test below draws:
// a tenth under the race detector, whose slow-down of the codec would make
// them the bulk of a -race -count=50 run. The seeds are fixed, so the race
// run's cases are the first tenth of the full run's.
var wireCases = map[bool]int{false: 3000, true: 300}[raceDetector]

// TestFastAppendEncodingMatchesCodec checks byte for byte that the
// hand-written encoder writes what the codec writes.
func TestFastAppendEncodingMatchesCodec(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	h := newWireEncodeHandle(false)
	for i := 0; i < wireCases; i++ {
		req := randomAppendRequest(rng)
		want := codecEncode(t, h, req)
		got, ok := appendAppendEntriesRequest(nil, req)
		if !ok {
			t.Fatalf("case %d: hand-written encoder declined %+v", i, req)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d: encodings differ\n got %x\nwant %x", i, got, want)
		}
	}
}

// TestFastAppendDecodingMatchesCodec checks that the hand-written decoder
// gives what the codec gives for every encoding the codec writes (both time
// forms), and that whenever it accepts damaged bytes the codec accepts
// them with the same result.
func TestFastAppendDecodingMatchesCodec(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	handles := []*codec.MsgpackHandle{newWireEncodeHandle(false), newWireEncodeHandle(true)}
	accepted := 0
	for i := 0; i < wireCases; i++ {
		req := randomAppendRequest(rng)
		raw := codecEncode(t, handles[i%2], req)
		cases := [][]byte{raw}
		for m := 0; m < 4; m++ {
			bad := append([]byte(nil), raw...)
			switch rng.Intn(3) {
			case 0:
				bad[rng.Intn(len(bad))] = byte(rng.Intn(256))
			case 1:
				bad = bad[:rng.Intn(len(bad))]
			default:
				bad[rng.Intn(len(bad))] ^= 1 << uint(rng.Intn(8))
			}
			cases = append(cases, bad)
		}
		for j, in := range cases {
			var got AppendEntriesRequest
			if !decodeAppendEntriesRequest(in, &got) {
				if j == 0 && i%2 == 0 {
					t.Fatalf("case %d: hand-written decoder declined the codec's own encoding of %+v", i, req)
				}
				continue
			}
			accepted++
			want, err := codecDecode(in)
			if err != nil {
				t.Fatalf("case %d/%d: hand-written decoder accepted %x, which the codec refuses: %v", i, j, in, err)
			}
			if !reflect.DeepEqual(&got, want) {
				t.Fatalf("case %d/%d: decodings of %x differ\n got %+v\nwant %+v", i, j, in, &got, want)
			}
		}
	}
	if accepted < wireCases {
		t.Fatalf("only %d inputs took the hand-written path", accepted)
	}
}

// TestFastAppendDecodingDeclines checks inputs the hand-written decoder
// must leave to the codec.
func TestFastAppendDecodingDeclines(t *testing.T) {
	h := newWireEncodeHandle(false)
	for name, v := range map[string]interface{}{
		"unknown key":  map[string]interface{}{"Term": 1, "Other": 2},
		"repeated key": []byte{0x82, 0xa4, 'T', 'e', 'r', 'm', 0x01, 0xa4, 'T', 'e', 'r', 'm', 0x02},
		"signed term":  []byte{0x81, 0xa4, 'T', 'e', 'r', 'm', 0xd0, 0x01},
		"not a map":    []uint64{1, 2},
		"nil":          nil,
	} {
		raw, ok := v.([]byte)
		if !ok {
			raw = codecEncode(t, h, v)
		}
		var got AppendEntriesRequest
		if decodeAppendEntriesRequest(raw, &got) {
			t.Errorf("%s: hand-written decoder accepted %x", name, raw)
		}
	}
}

// TestFastAppendResponseMatchesCodec does for AppendEntriesResponse what
// the two tests above do for the request, decoding into a response that
// already holds values, as a replicator's reused response does.
func TestFastAppendResponseMatchesCodec(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	h := newWireEncodeHandle(false)
	for i := 0; i < wireCases; i++ {
		req := randomAppendRequest(rng)
		resp := &AppendEntriesResponse{RPCHeader: req.RPCHeader, Term: req.Term, LastLog: req.PrevLogEntry, Success: rng.Intn(2) == 0, NoRetryBackoff: rng.Intn(2) == 0}
		want := codecEncode(t, h, resp)
		if got := appendAppendEntriesResponse(nil, resp); !bytes.Equal(got, want) {
			t.Fatalf("case %d: encodings differ\n got %x\nwant %x", i, got, want)
		}
		cases := [][]byte{want}
		for m := 0; m < 4; m++ {
			bad := append([]byte(nil), want...)
			bad[rng.Intn(len(bad))] = byte(rng.Intn(256))
			cases = append(cases, bad, bad[:rng.Intn(len(bad))])
		}
		for j, in := range cases {
			prior := AppendEntriesResponse{RPCHeader: RPCHeader{ID: []byte("old")}, Term: 9, LastLog: 9, Success: true}
			got, wantResp := prior, prior
			if !decodeAppendEntriesResponse(in, &got) {
				if j == 0 {
					t.Fatalf("case %d: hand-written decoder declined the codec's own encoding of %+v", i, resp)
				}
				continue
			}
			if err := decodeWireValue(codec.NewDecoderBytes(nil, newWireDecodeHandle()), in, &wantResp); err != nil {
				t.Fatalf("case %d/%d: hand-written decoder accepted %x, which the codec refuses: %v", i, j, in, err)
			}
			if !reflect.DeepEqual(got, wantResp) {
				t.Fatalf("case %d/%d: decodings of %x differ\n got %+v\nwant %+v", i, j, in, got, wantResp)
			}
		}
	}
}
