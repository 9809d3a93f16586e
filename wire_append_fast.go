package raft

import (
	"encoding/binary"
	"math"
	"time"
)

// A hand-written path for the one message that carries the write load:
// AppendEntriesRequest, in both directions. The codec (wire_codec.go)
// reaches every field through reflection and marshals each entry's
// AppendedAt through an interface; on a busy leader or follower that was
// the largest cost of the network transport after the system calls. The
// bytes written here are exactly the codec's (wire_append_fast_test.go
// compares them on random requests, and the golden files in testdata/wire
// still pass), and the reader accepts only what it can decode exactly as
// the codec would: anything else (an unknown key, an unexpected type byte,
// a time in the msgpack timestamp form) makes it give up, and the caller
// decodes the value with the codec instead.

// Field names in the order the codec writes them (sorted).
var (
	aeFieldNames = [...]string{"Addr", "Entries", "ID", "Leader", "LeaderCommitIndex", "PrevLogEntry", "PrevLogTerm", "ProtocolVersion", "Term"}
	logFieldName = [...]string{"AppendedAt", "Data", "Extensions", "Index", "Term", "Type"}
)

// Type bytes of the msgpack forms used below.
const (
	mpNil      = 0xc0
	mpFalse    = 0xc2
	mpTrue     = 0xc3
	mpUint8    = 0xcc
	mpUint16   = 0xcd
	mpUint32   = 0xce
	mpUint64   = 0xcf
	mpInt8     = 0xd0
	mpInt16    = 0xd1
	mpInt32    = 0xd2
	mpInt64    = 0xd3
	mpStr8     = 0xd9
	mpStr16    = 0xda
	mpStr32    = 0xdb
	mpBin8     = 0xc4
	mpBin16    = 0xc5
	mpBin32    = 0xc6
	mpArray16  = 0xdc
	mpArray32  = 0xdd
	mpMap16    = 0xde
	mpMap32    = 0xdf
	mpFixMap   = 0x80
	mpFixArray = 0x90
	mpFixStr   = 0xa0
)

// appendAppendEntriesRequest appends the codec's encoding of req (with
// times in the 15-byte MarshalBinary form) to buf. It reports false when
// an entry's AppendedAt cannot be marshaled; the caller then lets the
// codec encode the request, and fail the way it fails.
func appendAppendEntriesRequest(buf []byte, req *AppendEntriesRequest) ([]byte, bool) {
	buf = append(buf, mpFixMap|byte(len(aeFieldNames)))
	buf = appendRaw(buf, aeFieldNames[0])
	buf = appendBytes(buf, req.Addr)
	buf = appendRaw(buf, aeFieldNames[1])
	if req.Entries == nil {
		buf = append(buf, mpNil)
	} else {
		buf = appendArrayHeader(buf, len(req.Entries))
		for _, e := range req.Entries {
			var ok bool
			if buf, ok = appendLog(buf, e); !ok {
				return buf, false
			}
		}
	}
	buf = appendRaw(buf, aeFieldNames[2])
	buf = appendBytes(buf, req.ID)
	buf = appendRaw(buf, aeFieldNames[3])
	buf = appendBytes(buf, req.Leader)
	buf = appendRaw(buf, aeFieldNames[4])
	buf = appendUint(buf, req.LeaderCommitIndex)
	buf = appendRaw(buf, aeFieldNames[5])
	buf = appendUint(buf, req.PrevLogEntry)
	buf = appendRaw(buf, aeFieldNames[6])
	buf = appendUint(buf, req.PrevLogTerm)
	buf = appendRaw(buf, aeFieldNames[7])
	buf = appendInt(buf, int64(req.ProtocolVersion))
	buf = appendRaw(buf, aeFieldNames[8])
	buf = appendUint(buf, req.Term)
	return buf, true
}

// appendLog appends one entry, or msgpack nil for a nil one.
func appendLog(buf []byte, l *Log) ([]byte, bool) {
	if l == nil {
		return append(buf, mpNil), true
	}
	buf = append(buf, mpFixMap|byte(len(logFieldName)))
	buf = appendRaw(buf, logFieldName[0])
	// The codec writes a time through MarshalBinary, as a raw string.
	var tb [16]byte
	bin, err := l.AppendedAt.AppendBinary(tb[:0])
	if err != nil {
		return buf, false
	}
	buf = appendRawHeader(buf, len(bin))
	buf = append(buf, bin...)
	buf = appendRaw(buf, logFieldName[1])
	buf = appendBytes(buf, l.Data)
	buf = appendRaw(buf, logFieldName[2])
	buf = appendBytes(buf, l.Extensions)
	buf = appendRaw(buf, logFieldName[3])
	buf = appendUint(buf, l.Index)
	buf = appendRaw(buf, logFieldName[4])
	buf = appendUint(buf, l.Term)
	buf = appendRaw(buf, logFieldName[5])
	buf = appendUint(buf, uint64(l.Type))
	return buf, true
}

// appendRawHeader appends the header of a legacy raw string of n bytes:
// the codec's default writes no str8 form.
func appendRawHeader(buf []byte, n int) []byte {
	return appendLengthHeader(buf, n, 32, mpFixStr, mpStr16, mpStr32)
}

// appendLengthHeader appends a msgpack length header in its shortest form:
// fix|n below fixLimit, else the 16- or 32-bit form.
func appendLengthHeader(buf []byte, n, fixLimit int, fix, tag16, tag32 byte) []byte {
	switch {
	case n < fixLimit:
		return append(buf, fix|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(buf, tag16), uint16(n))
	default:
		return binary.BigEndian.AppendUint32(append(buf, tag32), uint32(n))
	}
}

func appendRaw(buf []byte, s string) []byte {
	return append(appendRawHeader(buf, len(s)), s...)
}

// appendBytes writes a []byte as the codec does: nil as msgpack nil,
// anything else as a raw string.
func appendBytes(buf []byte, b []byte) []byte {
	if b == nil {
		return append(buf, mpNil)
	}
	return append(appendRawHeader(buf, len(b)), b...)
}

func appendArrayHeader(buf []byte, n int) []byte {
	return appendLengthHeader(buf, n, 16, mpFixArray, mpArray16, mpArray32)
}

// appendUint writes an unsigned integer in its shortest form.
func appendUint(buf []byte, v uint64) []byte {
	switch {
	case v <= 0x7f:
		return append(buf, byte(v))
	case v <= math.MaxUint8:
		return append(buf, mpUint8, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(buf, mpUint16), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(buf, mpUint32), uint32(v))
	default:
		return binary.BigEndian.AppendUint64(append(buf, mpUint64), v)
	}
}

// appendInt writes a signed integer in its shortest form, as the codec's
// default does: fixints, then the signed forms even for positive values.
func appendInt(buf []byte, v int64) []byte {
	switch {
	case v >= 0 && v <= 0x7f, v < 0 && v >= -32:
		return append(buf, byte(v))
	case v >= math.MinInt8 && v <= math.MaxInt8:
		return append(buf, mpInt8, byte(v))
	case v >= math.MinInt16 && v <= math.MaxInt16:
		return binary.BigEndian.AppendUint16(append(buf, mpInt16), uint16(v))
	case v >= math.MinInt32 && v <= math.MaxInt32:
		return binary.BigEndian.AppendUint32(append(buf, mpInt32), uint32(v))
	default:
		return binary.BigEndian.AppendUint64(append(buf, mpInt64), uint64(v))
	}
}

// fastReader walks one complete msgpack value (valueReader has checked
// that every length in it is backed by bytes). Any surprise sets ok to
// false, and every later read returns zero values.
type fastReader struct {
	b  []byte
	ok bool
}

func (r *fastReader) fail() { r.ok = false }

func (r *fastReader) byte1() byte {
	if !r.ok || len(r.b) < 1 {
		r.ok = false
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *fastReader) take(n int) []byte {
	if !r.ok || n < 0 || len(r.b) < n {
		r.ok = false
		return nil
	}
	s := r.b[:n:n]
	r.b = r.b[n:]
	return s
}

func (r *fastReader) be(n int) uint64 {
	s := r.take(n)
	var v uint64
	for _, c := range s {
		v = v<<8 | uint64(c)
	}
	return v
}

// mapLen reads a map header.
func (r *fastReader) mapLen() int {
	switch c := r.byte1(); {
	case c&0xf0 == mpFixMap:
		return int(c & 0x0f)
	case c == mpMap16:
		return int(r.be(2))
	case c == mpMap32:
		return int(r.be(4))
	default:
		r.fail()
		return 0
	}
}

// strLen reads the header of a raw string (any of the forms the codec
// accepts for []byte: str and bin), or reports isNil for msgpack nil.
func (r *fastReader) strLen() (n int, isNil bool) {
	switch c := r.byte1(); {
	case c&0xe0 == mpFixStr:
		return int(c & 0x1f), false
	case c == mpNil:
		return 0, true
	case c == mpStr8, c == mpBin8:
		return int(r.be(1)), false
	case c == mpStr16, c == mpBin16:
		return int(r.be(2)), false
	case c == mpStr32, c == mpBin32:
		return int(r.be(4)), false
	default:
		r.fail()
		return 0, false
	}
}

// key reads a map key.
func (r *fastReader) key() []byte {
	n, isNil := r.strLen()
	if isNil {
		r.fail()
		return nil
	}
	return r.take(n)
}

// arenaChunk is the size of the pieces that small byte strings of one
// request are copied into. It stays in the allocator's small size classes:
// a large fresh allocation costs page faults on first touch, which showed
// as the largest cost of decoding under load.
const arenaChunk = 8 << 10

// bytes reads a []byte field: nil stays nil, anything else is a copy
// (the codec's result for an empty string is a non-nil empty slice),
// small ones into the current piece of *arena unless arena is nil.
func (r *fastReader) bytes(arena *[]byte) []byte {
	n, isNil := r.strLen()
	if isNil || !r.ok {
		return nil
	}
	s := r.take(n)
	if !r.ok {
		return nil
	}
	if n == 0 {
		return []byte{}
	}
	if arena == nil || len(*arena) < n {
		if arena == nil || n > arenaChunk/4 {
			return append([]byte{}, s...)
		}
		// What is left of the value bounds what is left to copy: a
		// request of one small entry takes no more than it needs.
		*arena = make([]byte, min(arenaChunk, n+len(r.b)))
	}
	out := (*arena)[:n:n]
	*arena = (*arena)[n:]
	copy(out, s)
	return out
}

// uint reads an unsigned field in one of the unsigned forms.
func (r *fastReader) uint() uint64 {
	switch c := r.byte1(); {
	case c <= 0x7f:
		return uint64(c)
	case c == mpUint8:
		return r.be(1)
	case c == mpUint16:
		return r.be(2)
	case c == mpUint32:
		return r.be(4)
	case c == mpUint64:
		return r.be(8)
	default:
		r.fail()
		return 0
	}
}

// int reads a signed field that must fit an int.
func (r *fastReader) int() int64 {
	c := r.byte1()
	switch {
	case c <= 0x7f:
		return int64(c)
	case c >= 0xe0:
		return int64(int8(c))
	case c == mpInt8:
		return int64(int8(r.be(1)))
	case c == mpInt16:
		return int64(int16(r.be(2)))
	case c == mpInt32:
		return int64(int32(r.be(4)))
	case c == mpInt64:
		v := int64(r.be(8))
		if v < math.MinInt || v > math.MaxInt {
			r.fail()
		}
		return v
	default:
		r.fail()
		return 0
	}
}

// decodeAppendEntriesRequest decodes raw into req, which must be zero, and
// reports whether it could. On false req may be partly filled: the caller
// drops it and decodes with the codec.
func decodeAppendEntriesRequest(raw []byte, req *AppendEntriesRequest) bool {
	r := fastReader{b: raw, ok: true}
	n := r.mapLen()
	// The entries' bytes share pieces of arenaChunk bytes, one allocation
	// for many small entries.
	var arena []byte
	// seen marks the fields read: a repeated key goes to the codec, whose
	// way of decoding into a filled field this path does not copy.
	var seen uint16
	for i := 0; i < n && r.ok; i++ {
		f := fieldIndex(aeFieldNames[:], r.key())
		if f < 0 || seen&(1<<f) != 0 {
			r.fail()
			break
		}
		seen |= 1 << f
		switch f { // the positions in aeFieldNames
		case 0:
			req.Addr = r.bytes(&arena)
		case 1:
			req.Entries = r.entries(&arena)
		case 2:
			req.ID = r.bytes(&arena)
		case 3:
			req.Leader = r.bytes(&arena)
		case 4:
			req.LeaderCommitIndex = r.uint()
		case 5:
			req.PrevLogEntry = r.uint()
		case 6:
			req.PrevLogTerm = r.uint()
		case 7:
			req.ProtocolVersion = ProtocolVersion(r.int())
		case 8:
			req.Term = r.uint()
		}
	}
	return r.ok && len(r.b) == 0
}

// entries reads the Entries array.
func (r *fastReader) entries(arena *[]byte) []*Log {
	var n int
	switch c := r.byte1(); {
	case c == mpNil:
		return nil
	case c&0xf0 == mpFixArray:
		n = int(c & 0x0f)
	case c == mpArray16:
		n = int(r.be(2))
	case c == mpArray32:
		n = int(r.be(4))
	default:
		r.fail()
		return nil
	}
	// Each entry takes at least one byte, so n is bounded by the value's
	// size, which valueReader bounded.
	if !r.ok || n > len(r.b) {
		r.fail()
		return nil
	}
	logs := make([]Log, n)
	out := make([]*Log, n)
	for i := range logs {
		if r.ok && len(r.b) > 0 && r.b[0] == mpNil {
			r.b = r.b[1:]
			continue
		}
		l := &logs[i]
		m := r.mapLen()
		var seen uint8
		for j := 0; j < m && r.ok; j++ {
			f := fieldIndex(logFieldName[:], r.key())
			if f < 0 || seen&(1<<f) != 0 {
				r.fail()
				break
			}
			seen |= 1 << f
			switch f { // the positions in logFieldName
			case 0:
				l.AppendedAt = r.time()
			case 1:
				l.Data = r.bytes(arena)
			case 2:
				l.Extensions = r.bytes(arena)
			case 3:
				l.Index = r.uint()
			case 4:
				l.Term = r.uint()
			case 5:
				t := r.uint()
				if t > math.MaxUint8 {
					r.fail()
				}
				l.Type = LogType(t)
			}
		}
		if !r.ok {
			return nil
		}
		out[i] = l
	}
	return out
}

// time reads a time in the MarshalBinary form inside a fixed raw string,
// the only form the codec decodes that way; the others go to the codec.
func (r *fastReader) time() time.Time {
	c := r.byte1()
	if c&0xe0 != mpFixStr {
		r.fail()
		return time.Time{}
	}
	s := r.take(int(c & 0x1f))
	var t time.Time
	if !r.ok || t.UnmarshalBinary(s) != nil {
		r.fail()
		return time.Time{}
	}
	return t
}

// aeRespFieldNames are AppendEntriesResponse's keys in the codec's order.
var aeRespFieldNames = [...]string{"Addr", "ID", "LastLog", "NoRetryBackoff", "ProtocolVersion", "Success", "Term"}

// appendAppendEntriesResponse appends the codec's encoding of resp.
func appendAppendEntriesResponse(buf []byte, resp *AppendEntriesResponse) []byte {
	buf = append(buf, mpFixMap|byte(len(aeRespFieldNames)))
	buf = appendRaw(buf, aeRespFieldNames[0])
	buf = appendBytes(buf, resp.Addr)
	buf = appendRaw(buf, aeRespFieldNames[1])
	buf = appendBytes(buf, resp.ID)
	buf = appendRaw(buf, aeRespFieldNames[2])
	buf = appendUint(buf, resp.LastLog)
	buf = appendRaw(buf, aeRespFieldNames[3])
	buf = appendBool(buf, resp.NoRetryBackoff)
	buf = appendRaw(buf, aeRespFieldNames[4])
	buf = appendInt(buf, int64(resp.ProtocolVersion))
	buf = appendRaw(buf, aeRespFieldNames[5])
	buf = appendBool(buf, resp.Success)
	buf = appendRaw(buf, aeRespFieldNames[6])
	buf = appendUint(buf, resp.Term)
	return buf
}

func appendBool(buf []byte, v bool) []byte {
	if v {
		return append(buf, mpTrue)
	}
	return append(buf, mpFalse)
}

// bool reads a boolean field.
func (r *fastReader) bool() bool {
	switch r.byte1() {
	case mpTrue:
		return true
	case mpFalse:
		return false
	default:
		r.fail()
		return false
	}
}

// decodeAppendEntriesResponse decodes raw into resp and reports whether it
// could. Like the codec, it sets only the fields the value holds; on
// false, the codec decodes the value again over those same fields.
func decodeAppendEntriesResponse(raw []byte, resp *AppendEntriesResponse) bool {
	r := fastReader{b: raw, ok: true}
	n := r.mapLen()
	var seen uint8
	for i := 0; i < n && r.ok; i++ {
		f := fieldIndex(aeRespFieldNames[:], r.key())
		if f < 0 || seen&(1<<f) != 0 {
			r.fail()
			break
		}
		seen |= 1 << f
		switch f { // the positions in aeRespFieldNames
		case 0:
			resp.Addr = r.bytes(nil)
		case 1:
			resp.ID = r.bytes(nil)
		case 2:
			resp.LastLog = r.uint()
		case 3:
			resp.NoRetryBackoff = r.bool()
		case 4:
			resp.ProtocolVersion = ProtocolVersion(r.int())
		case 5:
			resp.Success = r.bool()
		case 6:
			resp.Term = r.uint()
		}
	}
	return r.ok && len(r.b) == 0
}

// fieldIndex returns k's position in names, or -1.
func fieldIndex(names []string, k []byte) int {
	for i, name := range names {
		if string(k) == name {
			return i
		}
	}
	return -1
}
