package raft

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// valueReader cuts one msgpack value at a time out of a stream, checking
// its structure and size before anything decodes it.
//
// Why: a msgpack header states how long the string or how many elements
// follow, and a decoder fed straight from the network believes it. A peer
// could claim gigabytes in a few bytes, or ship millions of tiny array
// elements that each become a struct on our heap. valueReader refuses a
// value as soon as what it claims, or what it would cost once decoded,
// passes the limit, and it only keeps bytes that really arrived. What it
// returns is a complete, well-formed value whose every length is backed by
// bytes in hand, which the codec can then decode from memory cheaply.
//
// It reads exactly the bytes of one value and no more, so whatever follows
// on the stream (the next request, or an InstallSnapshot body) is left
// untouched for the caller.
type valueReader struct {
	r *bufio.Reader
	// limit is the most a value may cost (see cost); <= 0 means no limit.
	limit int64
	// buf holds the value being read. It is reused from one value to the
	// next: a value returned by next is valid until next is called again.
	// The codec copies every []byte and string it decodes, so decoded
	// structs never point into buf.
	buf []byte
}

// decodedElementCost is what one array element is charged on top of its
// bytes. An element can be a single byte on the wire and still become a
// whole struct after decoding (an empty map decodes into a fresh *Log of
// about 100 bytes), so the byte count alone would let a small request
// expand a hundredfold in memory. Map entries are not charged: they decode
// into struct fields that already exist, and unknown keys are skipped.
const decodedElementCost = 128

// maxReadChunk is how much of a long string is read at a time; the buffer
// grows with what has arrived, never with what was claimed.
const maxReadChunk = 64 * 1024

// retainedBufferSize is the largest buffer kept from one value to the next;
// a connection that once carried a large request gives its memory back.
const retainedBufferSize = 1 << 20

var (
	// errValueTooLarge is wrapped by every refusal on size grounds.
	errValueTooLarge = errors.New("rpc exceeds the size limit")
	// errMalformedValue is wrapped by every refusal of bytes that are not
	// msgpack or do not decode into the expected struct.
	errMalformedValue = errors.New("malformed msgpack")
)

func newValueReader(r *bufio.Reader, limit int64) *valueReader {
	return &valueReader{r: r, limit: limit}
}

// next reads one complete value and returns its bytes. A stream that ends
// before the value starts gives io.EOF; one that ends inside it gives
// io.ErrUnexpectedEOF. Read errors (deadlines included) are returned
// wrapped.
func (v *valueReader) next() ([]byte, error) {
	if cap(v.buf) > retainedBufferSize {
		v.buf = nil // do not hold a large request's memory while idle
	}
	v.buf = v.buf[:0]
	var charged int64 // decodedElementCost for every array element seen
	// pending counts the values still to read: the one asked for, plus
	// every element and map key and value announced by headers so far.
	// Each takes at least one byte, which lets claims be checked at once.
	var pending uint64 = 1
	for pending > 0 {
		b, err := v.r.ReadByte()
		if err != nil {
			if err == io.EOF && len(v.buf) == 0 {
				return nil, io.EOF
			}
			return nil, v.readError(err)
		}
		v.buf = append(v.buf, b)
		pending--

		h, err := v.header(b)
		if err != nil {
			return nil, err
		}
		pending += h.values
		charged += int64(h.elements) * decodedElementCost
		if err := v.checkCost(charged, h.payload, pending); err != nil {
			return nil, err
		}
		if err := v.readPayload(h.payload); err != nil {
			return nil, err
		}
	}
	return v.buf, nil
}

// valueHeader describes what follows a value's first bytes.
type valueHeader struct {
	payload  uint64 // bytes of string, binary or extension data
	values   uint64 // nested values: array elements, or map keys + values
	elements uint64 // array elements, charged decodedElementCost each
}

// header reads the rest of the header that starts with b (its length
// field, if any) and says what follows. The layout is the msgpack spec's.
func (v *valueReader) header(b byte) (valueHeader, error) {
	switch {
	case b <= 0x7f, b >= 0xe0: // positive and negative fixint
		return valueHeader{}, nil
	case b <= 0x8f: // fixmap
		n := uint64(b & 0x0f)
		return valueHeader{values: 2 * n}, nil
	case b <= 0x9f: // fixarray
		n := uint64(b & 0x0f)
		return valueHeader{values: n, elements: n}, nil
	case b <= 0xbf: // fixstr (the legacy raw family)
		return valueHeader{payload: uint64(b & 0x1f)}, nil
	}
	switch b {
	case 0xc0, 0xc2, 0xc3: // nil, false, true
		return valueHeader{}, nil
	case 0xcc, 0xd0: // uint8, int8
		return valueHeader{}, v.skipFixed(1)
	case 0xcd, 0xd1: // uint16, int16
		return valueHeader{}, v.skipFixed(2)
	case 0xca, 0xce, 0xd2: // float32, uint32, int32
		return valueHeader{}, v.skipFixed(4)
	case 0xcb, 0xcf, 0xd3: // float64, uint64, int64
		return valueHeader{}, v.skipFixed(8)
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16: type byte + data
		return valueHeader{payload: 1 + 1<<(b-0xd4)}, nil
	case 0xc4, 0xd9: // bin8, str8
		n, err := v.length(1)
		return valueHeader{payload: n}, err
	case 0xc5, 0xda: // bin16, str16
		n, err := v.length(2)
		return valueHeader{payload: n}, err
	case 0xc6, 0xdb: // bin32, str32
		n, err := v.length(4)
		return valueHeader{payload: n}, err
	case 0xc7, 0xc8, 0xc9: // ext8, ext16, ext32: length, type byte, data
		n, err := v.length(1 << (b - 0xc7))
		return valueHeader{payload: n + 1}, err
	case 0xdc, 0xdd: // array16, array32
		n, err := v.length(2 << (b - 0xdc))
		return valueHeader{values: n, elements: n}, err
	case 0xde, 0xdf: // map16, map32
		n, err := v.length(2 << (b - 0xde))
		return valueHeader{values: 2 * n}, err
	default: // 0xc1 is never used
		return valueHeader{}, fmt.Errorf("%w: invalid type byte 0x%02x at offset %d", errMalformedValue, b, len(v.buf)-1)
	}
}

// length reads a big-endian length field of size bytes.
func (v *valueReader) length(size int) (uint64, error) {
	start := len(v.buf)
	if err := v.skipFixed(size); err != nil {
		return 0, err
	}
	var n uint64
	for _, c := range v.buf[start:] {
		n = n<<8 | uint64(c)
	}
	return n, nil
}

// skipFixed copies the next size bytes (at most 17) into buf.
func (v *valueReader) skipFixed(size int) error {
	start := len(v.buf)
	v.buf = append(v.buf, make([]byte, size)...)
	if _, err := io.ReadFull(v.r, v.buf[start:]); err != nil {
		return v.readError(err)
	}
	return nil
}

// checkCost refuses the value once its bytes so far, the payload about to
// be read, the nested values still announced (a byte each at least) and
// the charge for array elements add up to more than the limit.
func (v *valueReader) checkCost(charged int64, payload, pending uint64) error {
	if v.limit <= 0 {
		return nil
	}
	room := uint64(v.limit)
	used := uint64(len(v.buf)) + uint64(charged)
	if used > room || payload > room-used || pending > room-used-payload {
		return fmt.Errorf("%w: a value claims more than %d bytes (read %d, string %d, values %d, elements charged %d)",
			errValueTooLarge, v.limit, len(v.buf), payload, pending, charged)
	}
	return nil
}

// readPayload copies n bytes into buf. The buffer grows with what has
// arrived, never with what was claimed: by at most maxReadChunk beyond the
// bytes in hand, doubling otherwise, and never past the claim.
func (v *valueReader) readPayload(n uint64) error {
	end := uint64(len(v.buf)) + n
	for n > 0 {
		chunk := min(n, maxReadChunk)
		start := len(v.buf)
		if need := uint64(start) + chunk; need > uint64(cap(v.buf)) {
			grown := make([]byte, start, min(max(need, 2*uint64(cap(v.buf))), end))
			copy(grown, v.buf)
			v.buf = grown
		}
		v.buf = v.buf[:start+int(chunk)]
		if _, err := io.ReadFull(v.r, v.buf[start:]); err != nil {
			return v.readError(err)
		}
		n -= chunk
	}
	return nil
}

// readError wraps an error met inside a value.
func (v *valueReader) readError(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("reading msgpack value (%d bytes in): %w", len(v.buf), err)
}
