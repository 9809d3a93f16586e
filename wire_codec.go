package raft

import (
	"bufio"
	"fmt"
	"math"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// The network transport's wire format, hashicorp/raft's (the golden files
// in testdata/wire pin it byte for byte): a request is one type
// byte followed by the msgpack encoding of the request struct; a response is
// the msgpack encoding of an error string followed by the msgpack encoding
// of the response struct. Both ends use go-msgpack's MsgpackHandle with its
// defaults, which is what makes the bytes identical to hashicorp/raft's: maps
// keyed by Go field name in sorted order, legacy raw strings for []byte and
// string, no extension types. AppendEntries requests and responses take a
// hand-written path that writes the same bytes (wire_append_fast.go).

// rpcType is the byte that opens every request on a connection.
type rpcType uint8

const (
	rpcAppendEntries rpcType = iota
	rpcRequestVote
	rpcInstallSnapshot
	rpcTimeoutNow
	rpcRequestPreVote
	// rpcReadIndex is this library's addition (read_index_rpc.go), after
	// every type hashicorp/raft knows.
	rpcReadIndex
)

// String returns the name used in metric labels and log lines.
func (t rpcType) String() string {
	switch t {
	case rpcAppendEntries:
		return "AppendEntries"
	case rpcRequestVote:
		return "RequestVote"
	case rpcInstallSnapshot:
		return "InstallSnapshot"
	case rpcTimeoutNow:
		return "TimeoutNow"
	case rpcRequestPreVote:
		return "RequestPreVote"
	case rpcReadIndex:
		return "ReadIndex"
	default:
		return fmt.Sprintf("rpcType(%d)", uint8(t))
	}
}

// newRequest returns a fresh request struct for t, or nil when t is not a
// known RPC type.
func (t rpcType) newRequest() interface{} {
	switch t {
	case rpcAppendEntries:
		return &AppendEntriesRequest{}
	case rpcRequestVote:
		return &RequestVoteRequest{}
	case rpcInstallSnapshot:
		return &InstallSnapshotRequest{}
	case rpcTimeoutNow:
		return &TimeoutNowRequest{}
	case rpcRequestPreVote:
		return &RequestPreVoteRequest{}
	case rpcReadIndex:
		return &ReadIndexRequest{}
	default:
		return nil
	}
}

// newResponse returns a fresh response struct for t, or nil when t is not a
// known RPC type.
func (t rpcType) newResponse() interface{} {
	switch t {
	case rpcAppendEntries:
		return &AppendEntriesResponse{}
	case rpcRequestVote:
		return &RequestVoteResponse{}
	case rpcInstallSnapshot:
		return &InstallSnapshotResponse{}
	case rpcTimeoutNow:
		return &TimeoutNowResponse{}
	case rpcRequestPreVote:
		return &RequestPreVoteResponse{}
	case rpcReadIndex:
		return &ReadIndexResponse{}
	default:
		return nil
	}
}

// newWireEncodeHandle returns the handle that writes requests and
// responses. The codec's defaults are kept; only the time format is chosen:
// the 15-byte time.MarshalBinary form unless useNewTimeFormat asks for the
// msgpack timestamp body (testdata/wire/compat_4_3_append_entries*.hex
// hold one request in each form).
func newWireEncodeHandle(useNewTimeFormat bool) *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{}
	h.TimeNotBuiltin = !useNewTimeFormat
	return h
}

// newWireDecodeHandle returns the handle that reads requests and
// responses. Its decoding rules are the codec's defaults, which accept both
// time forms. MaxInitLen lets the decoder allocate a byte string or an
// array in one piece instead of growing it in 256 KiB steps, which costs
// quadratic copying for large entries. That is safe only because every
// value reaches the decoder through valueReader, which has already read
// every byte the value claims: no length inside it can exceed the bytes
// that actually arrived.
func newWireDecodeHandle() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{}
	h.MaxInitLen = math.MaxInt32
	return h
}

// wireEncoder writes requests or responses onto a buffered stream. It
// belongs to one connection and is used by one goroutine at a time.
type wireEncoder struct {
	w   *bufio.Writer
	enc *codec.Encoder
	// fast says AppendEntries requests take the hand-written path
	// (wire_append_fast.go): times go in the MarshalBinary form, the only
	// one it writes. scratch is its buffer, reused.
	fast    bool
	scratch []byte
}

func newWireEncoder(w *bufio.Writer, h *codec.MsgpackHandle) *wireEncoder {
	return &wireEncoder{w: w, enc: codec.NewEncoder(w, h), fast: h.TimeNotBuiltin}
}

// retainedScratchSize is the largest encoding buffer kept from one
// request to the next.
const retainedScratchSize = 1 << 20

// writeRequest writes t's type byte and the encoded request, and flushes.
func (e *wireEncoder) writeRequest(t rpcType, req interface{}) error {
	if err := e.w.WriteByte(byte(t)); err != nil {
		return fmt.Errorf("writing rpc type: %w", err)
	}
	if err := e.encodeRequest(req); err != nil {
		return fmt.Errorf("encoding %s request: %w", t, err)
	}
	if err := e.w.Flush(); err != nil {
		return fmt.Errorf("sending %s request: %w", t, err)
	}
	return nil
}

// encodeRequest writes req, through the hand-written path when it can.
func (e *wireEncoder) encodeRequest(req interface{}) error {
	if ae, ok := req.(*AppendEntriesRequest); ok && e.fast {
		buf, ok := appendAppendEntriesRequest(e.scratch[:0], ae)
		if cap(buf) <= retainedScratchSize {
			e.scratch = buf[:0]
		} else {
			e.scratch = nil
		}
		if ok {
			_, err := e.w.Write(buf)
			return err
		}
	}
	return e.enc.Encode(req)
}

// writeResponse writes the error text (empty for success) and the response
// value, which is msgpack nil when resp is nil, and flushes.
func (e *wireEncoder) writeResponse(errText string, resp interface{}) error {
	if err := e.encodeResponse(errText, resp); err != nil {
		return err
	}
	return e.flushResponses()
}

// encodeResponse writes a response as writeResponse does, without
// flushing: the server writes the answers that are ready together.
func (e *wireEncoder) encodeResponse(errText string, resp interface{}) error {
	if ae, ok := resp.(*AppendEntriesResponse); ok && errText == "" && ae != nil {
		// The hand-written path (wire_append_fast.go): an empty error
		// text is an empty raw string.
		buf := appendAppendEntriesResponse(append(e.scratch[:0], mpFixStr), ae)
		e.scratch = buf[:0]
		if _, err := e.w.Write(buf); err != nil {
			return fmt.Errorf("encoding response: %w", err)
		}
		return nil
	}
	if err := e.enc.Encode(errText); err != nil {
		return fmt.Errorf("encoding response error: %w", err)
	}
	if err := e.enc.Encode(resp); err != nil {
		return fmt.Errorf("encoding response: %w", err)
	}
	return nil
}

// flushResponses sends what encodeResponse buffered.
func (e *wireEncoder) flushResponses() error {
	if err := e.w.Flush(); err != nil {
		return fmt.Errorf("sending response: %w", err)
	}
	return nil
}

// wireDecoder reads msgpack values from a buffered stream: valueReader
// checks and collects each value's bytes, then the codec decodes them from
// memory. It belongs to one connection and is used by one goroutine at a
// time.
type wireDecoder struct {
	values *valueReader
	dec    *codec.Decoder
}

func newWireDecoder(r *bufio.Reader, limit int64, h *codec.MsgpackHandle) *wireDecoder {
	return &wireDecoder{
		values: newValueReader(r, limit),
		dec:    codec.NewDecoderBytes(nil, h),
	}
}

// decode reads the next value from the stream into out.
func (d *wireDecoder) decode(out interface{}) error {
	raw, err := d.values.next()
	if err != nil {
		return err
	}
	switch out := out.(type) {
	case *AppendEntriesResponse:
		if decodeAppendEntriesResponse(raw, out) {
			return nil
		}
	}
	if ae, ok := out.(*AppendEntriesRequest); ok {
		// The hand-written path (wire_append_fast.go); what it does not
		// take, the codec decodes.
		var fresh AppendEntriesRequest
		if decodeAppendEntriesRequest(raw, &fresh) {
			*ae = fresh
			return nil
		}
	}
	return decodeWireValue(d.dec, raw, out)
}

// decodeErrText reads the error text that opens a response. The empty
// text of a success costs no allocation.
func (d *wireDecoder) decodeErrText() (string, error) {
	raw, err := d.values.next()
	if err != nil {
		return "", err
	}
	if len(raw) == 1 && raw[0] == mpFixStr {
		return "", nil
	}
	var text string
	err = decodeWireValue(d.dec, raw, &text)
	return text, err
}

// decodeWireValue decodes one complete msgpack value. raw must come from a
// valueReader (see newWireDecodeHandle). The codec reports malformed input
// as an error; the recover is a second line of defence so that no input
// from a peer can crash the node.
func decodeWireValue(dec *codec.Decoder, raw []byte, out interface{}) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: decoder panic: %v", errMalformedValue, p)
		}
	}()
	dec.ResetBytes(raw)
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("%w: %v", errMalformedValue, err)
	}
	return nil
}
