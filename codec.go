package raft

import (
	"bytes"
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// The msgpack settings shared with hashicorp/raft: the codec's defaults,
// with times written as the 15-byte time.MarshalBinary form. Decoding
// accepts both time forms. Handles are safe for concurrent use once built.
var (
	encodeHandle = &codec.MsgpackHandle{BasicHandle: codec.BasicHandle{TimeNotBuiltin: true}}
	decodeHandle = &codec.MsgpackHandle{}
)

// encodeMsgpack encodes in with the wire and log settings.
func encodeMsgpack(in interface{}) ([]byte, error) {
	var buf bytes.Buffer
	if err := codec.NewEncoder(&buf, encodeHandle).Encode(in); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// decodeMsgpack decodes buf into out. Malformed input is returned as an
// error; a panic inside the codec is turned into one too, so that bytes
// from a peer or a disk can never crash the node.
func decodeMsgpack(buf []byte, out interface{}) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("malformed msgpack: %v", p)
		}
	}()
	return codec.NewDecoderBytes(buf, decodeHandle).Decode(out)
}
