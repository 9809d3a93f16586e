package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/quorumkit/raft"
)

// command is one change to the key-value store, as stored in the log.
//
// Values are bytes. JSON strings carry only UTF-8, so a value that is not
// UTF-8 travels in the base64 field ValueRaw instead of Value (and an
// expected value in ExpectedRaw); entries written before these fields
// existed hold text values and decode as before.
type command struct {
	Op    string `json:"op"` // "put", "delete" or "cas"
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
	// Expected is, for "cas", the value Key must hold (the empty string
	// for an absent key) for Value to replace it.
	Expected    string `json:"expected,omitempty"`
	ValueRaw    []byte `json:"value_raw,omitempty"`
	ExpectedRaw []byte `json:"expected_raw,omitempty"`
}

// withValue sets the command's value, in whichever field carries it.
func (c command) withValue(v string) command {
	if utf8.ValidString(v) {
		c.Value, c.ValueRaw = v, nil
	} else {
		c.Value, c.ValueRaw = "", []byte(v)
	}
	return c
}

// withExpected sets the command's expected value.
func (c command) withExpected(v string) command {
	if utf8.ValidString(v) {
		c.Expected, c.ExpectedRaw = v, nil
	} else {
		c.Expected, c.ExpectedRaw = "", []byte(v)
	}
	return c
}

// value and expected read the fields withValue and withExpected set.
func (c command) value() string {
	if c.ValueRaw != nil {
		return string(c.ValueRaw)
	}
	return c.Value
}

func (c command) expected() string {
	if c.ExpectedRaw != nil {
		return string(c.ExpectedRaw)
	}
	return c.Expected
}

// casMismatch is what Apply returns for a "cas" whose key did not hold the
// expected value: nothing was written. The FSM decides, in log order, so
// two concurrent compare-and-sets of one key cannot both succeed.
type casMismatch struct{}

func (casMismatch) Error() string { return "the current value differs from If-Match" }

// kvFSM is the replicated state machine: a map from keys to values.
type kvFSM struct {
	mu   sync.RWMutex
	data map[string]string
}

func newKV() *kvFSM { return &kvFSM{data: make(map[string]string)} }

// Apply applies one committed command and returns an error for commands
// it cannot understand (raft hands that back through ApplyFuture.Response).
func (f *kvFSM) Apply(l *raft.Log) interface{} {
	var c command
	if err := json.Unmarshal(l.Data, &c); err != nil {
		return fmt.Errorf("undecodable command at index %d: %w", l.Index, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch c.Op {
	case "put":
		f.data[c.Key] = c.value()
	case "delete":
		delete(f.data, c.Key)
	case "cas":
		if f.data[c.Key] != c.expected() {
			return casMismatch{}
		}
		f.data[c.Key] = c.value()
	default:
		return fmt.Errorf("unknown operation %q at index %d", c.Op, l.Index)
	}
	return nil
}

// get reads the local copy of key.
func (f *kvFSM) get(key string) (string, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	v, ok := f.data[key]
	return v, ok
}

// Snapshot copies the map; Persist then writes the copy while Apply goes on.
func (f *kvFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	clone := make(map[string]string, len(f.data))
	for k, v := range f.data {
		clone[k] = v
	}
	return kvSnapshot(clone), nil
}

// snapshotFormat marks a snapshot in the current format: a JSON object
// {"raftkv_snapshot": 2, "data": {key: text value}, "raw": {key: base64
// value}}, values that are not UTF-8 going to "raw". The first format was
// a bare object of keys to string values; a number under
// "raftkv_snapshot" cannot be one of its values, so the two cannot be
// mistaken for each other.
const snapshotFormat = 2

type snapshotV2 struct {
	Format int               `json:"raftkv_snapshot"`
	Data   map[string]string `json:"data"`
	Raw    map[string][]byte `json:"raw,omitempty"`
}

// Restore replaces the map with a snapshot's, in either format. A snapshot
// that is not exactly one JSON object of a known format (null, bytes after
// the object, a format number this version does not know, a "data" that is
// not an object) is refused and the map is left as it was: the snapshot
// store's checksum catches damaged files, so such a snapshot was written by
// something else, and restoring part of it would lose keys silently.
func (f *kvFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	dec := json.NewDecoder(rc)
	var top map[string]json.RawMessage
	if err := dec.Decode(&top); err != nil {
		return fmt.Errorf("decoding snapshot: %w", err)
	}
	if top == nil {
		return fmt.Errorf("decoding snapshot: null instead of an object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("decoding snapshot: data after the snapshot's object")
	}
	data, err := decodeSnapshot(top)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.data = data
	f.mu.Unlock()
	return nil
}

// decodeSnapshot reads the map out of a snapshot's top-level object, in
// either format.
func decodeSnapshot(top map[string]json.RawMessage) (map[string]string, error) {
	var format json.Number
	if json.Unmarshal(top["raftkv_snapshot"], &format) != nil {
		// No number under the format key: the first format, a bare
		// object of keys to string values.
		data := make(map[string]string, len(top))
		for k, raw := range top {
			var v string
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, fmt.Errorf("decoding snapshot value of %q: %w", k, err)
			}
			data[k] = v
		}
		return data, nil
	}
	if format.String() != strconv.Itoa(snapshotFormat) {
		return nil, fmt.Errorf("snapshot format %s is not one this raftkv reads (it reads %d)", format, snapshotFormat)
	}
	var v2 snapshotV2
	if err := json.Unmarshal(top["data"], &v2.Data); err != nil {
		return nil, fmt.Errorf("decoding snapshot data: %w", err)
	}
	if v2.Data == nil {
		return nil, fmt.Errorf("decoding snapshot data: no \"data\" object")
	}
	if raw, ok := top["raw"]; ok {
		if err := json.Unmarshal(raw, &v2.Raw); err != nil {
			return nil, fmt.Errorf("decoding snapshot data: %w", err)
		}
	}
	data := make(map[string]string, len(v2.Data)+len(v2.Raw))
	for k, v := range v2.Data {
		data[k] = v
	}
	for k, v := range v2.Raw {
		data[k] = string(v)
	}
	return data, nil
}

type kvSnapshot map[string]string

// Persist writes the snapshot in the current format.
func (s kvSnapshot) Persist(sink raft.SnapshotSink) error {
	out := snapshotV2{Format: snapshotFormat, Data: make(map[string]string, len(s))}
	for k, v := range s {
		if utf8.ValidString(v) {
			out.Data[k] = v
			continue
		}
		if out.Raw == nil {
			out.Raw = make(map[string][]byte)
		}
		out.Raw[k] = []byte(v)
	}
	if err := json.NewEncoder(sink).Encode(out); err != nil {
		sink.Cancel()
		return fmt.Errorf("writing snapshot: %w", err)
	}
	return sink.Close()
}

func (s kvSnapshot) Release() {}

// encode makes the log entry for a command.
func (c command) encode() []byte {
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // a struct of strings always encodes
	}
	return b
}
