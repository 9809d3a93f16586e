package fuzzy

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"sync"
	"sync/atomic"
	"time"

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
	// opRestore is a user restore, in the history only: it sets a key to
	// Value, or deletes it when Exists is false (restore_test.go).
	opRestore
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
	case opRestore:
		return "restore"
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

// kvFSM applies commands to a map. It implements raft.FSM. A snapshot
// holds the map and the index of the last command applied to it, so that
// the checker can tell which committed prefix a snapshot or a restored
// state stands for.
type kvFSM struct {
	// inc names the incarnation this FSM belongs to, for the checker.
	inc   string
	check *checker
	stats *runStats
	poke  func()
	// slow, when set, returns how long an Apply takes (slow-fsm).
	slow func() time.Duration
	// started is set once NewRaft returned: a restore before is the
	// server's start, one after an installed snapshot.
	started atomic.Bool

	mu   sync.Mutex
	data map[string]string // guarded by mu
	// last is the index of the last command applied (or restored). Guarded
	// by mu.
	last uint64
	// base is the user restore the state descends from, 0 if none
	// (restore_test.go). Guarded by mu.
	base uint64
}

// kvSnapshotFile is a snapshot's bytes: JSON of the state at the command
// at Index (0 when no command had been applied).
//
// Restore, when not 0, names the user restore whose state a user's
// snapshot holds (restore_test.go); its Index is then 0, and the index it
// stands at is the one the library stored it at.
type kvSnapshotFile struct {
	Index   uint64            `json:"i"`
	Data    map[string]string `json:"d"`
	Restore uint64            `json:"r,omitempty"`
	// Base is the user restore the state descends from, 0 if none.
	Base uint64 `json:"b,omitempty"`
}

func newKVFSM(inc string, check *checker, stats *runStats, poke func()) *kvFSM {
	return &kvFSM{inc: inc, check: check, stats: stats, poke: poke, data: make(map[string]string)}
}

func (f *kvFSM) Apply(l *raft.Log) interface{} {
	if f.slow != nil {
		if d := f.slow(); d > 0 {
			time.Sleep(d)
		}
	}
	f.mu.Lock()
	base := f.base
	f.mu.Unlock()
	f.check.onApply(f.inc, l, base)
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
	f.last = l.Index
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

// Snapshot captures a copy of the state: Persist runs while later
// commands are applied.
func (f *kvFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &kvSnapshot{file: kvSnapshotFile{Index: f.last, Data: maps.Clone(f.data), Base: f.base}}, nil
}

// Restore replaces the whole state with the snapshot's.
func (f *kvFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var file kvSnapshotFile
	if err := json.NewDecoder(rc).Decode(&file); err != nil {
		return fmt.Errorf("restoring the kv state: %w", err)
	}
	if file.Data == nil {
		file.Data = make(map[string]string)
	}
	base := file.Base
	if file.Restore != 0 {
		base = file.Restore
		index, ok := f.check.onUserRestored(f.inc, file.Restore, !f.started.Load())
		if !ok {
			return fmt.Errorf("user restore %d: its snapshot never landed", file.Restore)
		}
		file.Index = index
	} else {
		f.check.onRestore(f.inc, file.Index)
	}
	if f.started.Load() {
		f.stats.installs.Add(1)
	} else {
		f.stats.startRestores.Add(1)
	}
	f.mu.Lock()
	f.data = file.Data
	f.last = file.Index
	f.base = base
	f.mu.Unlock()
	f.poke()
	return nil
}

type kvSnapshot struct{ file kvSnapshotFile }

func (s *kvSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s.file); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *kvSnapshot) Release() {}
