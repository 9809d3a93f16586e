package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/quorumkit/raft"
)

// command is one change to the key-value store, as stored in the log.
type command struct {
	Op    string `json:"op"` // "put", "delete" or "cas"
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
	// Expected is, for "cas", the value Key must hold (the empty string
	// for an absent key) for Value to replace it.
	Expected string `json:"expected,omitempty"`
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
		f.data[c.Key] = c.Value
	case "delete":
		delete(f.data, c.Key)
	case "cas":
		if f.data[c.Key] != c.Expected {
			return casMismatch{}
		}
		f.data[c.Key] = c.Value
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

// Restore replaces the map with a snapshot's.
func (f *kvFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data := make(map[string]string)
	if err := json.NewDecoder(rc).Decode(&data); err != nil {
		return fmt.Errorf("decoding snapshot: %w", err)
	}
	f.mu.Lock()
	f.data = data
	f.mu.Unlock()
	return nil
}

type kvSnapshot map[string]string

func (s kvSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(map[string]string(s)); err != nil {
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
