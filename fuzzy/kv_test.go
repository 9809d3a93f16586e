package fuzzy

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"sync"

	"github.com/quorumkit/raft"
)

// The key-value state machine the clients drive.

// kvOp is a client operation.
type kvOp uint8

const (
	opGet kvOp = iota
	opPut
	opDelete
	opCAS
)

func (o kvOp) String() string {
	switch o {
	case opGet:
		return "get"
	case opPut:
		return "put"
	case opDelete:
		return "delete"
	case opCAS:
		return "cas"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// kvCommand is the Data of a log entry: one operation. Every write carries
// a value unique to the run, so a read tells which write it saw.
type kvCommand struct {
	Op     kvOp   `json:"o"`
	Key    string `json:"k"`
	Value  string `json:"v,omitempty"`
	Expect string `json:"e,omitempty"`
}

func (c kvCommand) String() string {
	switch c.Op {
	case opPut:
		return fmt.Sprintf("put(%s, %s)", c.Key, c.Value)
	case opCAS:
		return fmt.Sprintf("cas(%s, %s→%s)", c.Key, c.Expect, c.Value)
	default:
		return fmt.Sprintf("%v(%s)", c.Op, c.Key)
	}
}

// kvResult is what the FSM returns for a command. Value and Exists are the
// key's value before the command; OK says whether a delete found the key or
// a compare-and-set matched.
type kvResult struct {
	Value  string
	Exists bool
	OK     bool
}

// kvFSM applies commands to a map. It implements raft.FSM; Snapshot and
// Restore are there for when the harness turns snapshots on.
type kvFSM struct {
	// inc names the incarnation this FSM belongs to, for the checker.
	inc   string
	check *checker
	poke  func()

	mu   sync.Mutex
	data map[string]string // guarded by mu
}

func newKVFSM(inc string, check *checker, poke func()) *kvFSM {
	return &kvFSM{inc: inc, check: check, poke: poke, data: make(map[string]string)}
}

func (f *kvFSM) Apply(l *raft.Log) interface{} {
	f.check.onApply(f.inc, l)
	var cmd kvCommand
	if err := json.Unmarshal(l.Data, &cmd); err != nil {
		f.check.violation("%s: undecodable command at index %d: %v", f.inc, l.Index, err)
		return nil
	}
	f.mu.Lock()
	old, exists := f.data[cmd.Key]
	res := kvResult{Value: old, Exists: exists}
	switch cmd.Op {
	case opPut:
		f.data[cmd.Key] = cmd.Value
	case opDelete:
		res.OK = exists
		delete(f.data, cmd.Key)
	case opCAS:
		if exists && old == cmd.Expect {
			res.OK = true
			f.data[cmd.Key] = cmd.Value
		}
	}
	f.mu.Unlock()
	f.poke()
	return res
}

// get reads a key from this FSM's current state.
func (f *kvFSM) get(key string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.data[key]
	return v, ok
}

// state returns a copy of the whole map.
func (f *kvFSM) state() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.data)
}

func (f *kvFSM) Snapshot() (raft.FSMSnapshot, error) {
	return &kvSnapshot{data: f.state()}, nil
}

func (f *kvFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data := make(map[string]string)
	if err := json.NewDecoder(rc).Decode(&data); err != nil {
		return fmt.Errorf("restoring the kv state: %w", err)
	}
	f.mu.Lock()
	f.data = data
	f.mu.Unlock()
	return nil
}

type kvSnapshot struct{ data map[string]string }

func (s *kvSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s.data); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *kvSnapshot) Release() {}
