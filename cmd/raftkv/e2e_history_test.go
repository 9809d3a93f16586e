package main

// The history of the end-to-end test's client operations and the
// key-value model porcupine checks it against.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	kvclient "github.com/quorumkit/raft/cmd/raftkv/client"
)

type e2eOp int

const (
	e2eGet e2eOp = iota
	e2ePut
	e2eDelete
	e2eCAS
)

func (o e2eOp) String() string {
	return [...]string{"get", "put", "delete", "cas"}[o]
}

// e2eInput is an operation as a client called it. For a CAS, Expect ""
// means "the key is absent"; the test never writes an empty value.
type e2eInput struct {
	Op     e2eOp
	Key    string
	Value  string
	Expect string
}

// e2eOutput is what the client saw. Unknown: a write that may or may not
// have been applied; the checker lets it take effect at any point after
// its call, or never.
type e2eOutput struct {
	Value   string
	Exists  bool
	OK      bool // CAS: the value matched and was replaced
	Unknown bool
}

// e2eState is one key's value.
type e2eState struct {
	Value  string
	Exists bool
}

// e2eModel is the sequential specification of one key; histories are
// checked key by key.
var e2eModel = porcupine.Model{
	Partition: func(ops []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range ops {
			k := op.Input.(e2eInput).Key
			if byKey[k] == nil {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() interface{} { return e2eState{} },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		st, in, out := state.(e2eState), input.(e2eInput), output.(e2eOutput)
		switch in.Op {
		case e2eGet:
			return out.Exists == st.Exists && out.Value == st.Value, st
		case e2ePut:
			return true, e2eState{Value: in.Value, Exists: true}
		case e2eDelete:
			return true, e2eState{}
		case e2eCAS:
			match := (in.Expect == "" && !st.Exists) || (st.Exists && st.Value == in.Expect)
			if !out.Unknown && out.OK != match {
				return false, st
			}
			if match {
				return true, e2eState{Value: in.Value, Exists: true}
			}
			return true, st
		}
		return false, st
	},
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(e2eInput), output.(e2eOutput)
		var call string
		switch in.Op {
		case e2eGet, e2eDelete:
			call = fmt.Sprintf("%v(%s)", in.Op, in.Key)
		case e2ePut:
			call = fmt.Sprintf("put(%s, %s)", in.Key, in.Value)
		case e2eCAS:
			call = fmt.Sprintf("cas(%s, %q → %s)", in.Key, in.Expect, in.Value)
		}
		switch {
		case out.Unknown:
			return call + " → ?"
		case in.Op == e2eGet && !out.Exists:
			return call + " → ∅"
		case in.Op == e2eGet:
			return call + " → " + out.Value
		case in.Op == e2eCAS:
			return fmt.Sprintf("%s → %v", call, out.OK)
		}
		return call
	},
	DescribeState: func(state interface{}) string {
		if st := state.(e2eState); st.Exists {
			return st.Value
		}
		return "∅"
	},
}

// e2eHistory records client operations with their call and return times:
// monotonic nanoseconds since the test began, made strictly increasing so
// that no call and return tie.
type e2eHistory struct {
	start time.Time

	mu struct {
		sync.Mutex
		last int64 // the latest time handed out
		ops  []porcupine.Operation
		// Operations left out of the history: failed reads and writes that
		// certainly were not applied.
		failed   int
		unknown  int
		acked    int // writes acknowledged (put, delete, cas either way)
		lastFail error
	}
}

func newE2EHistory() *e2eHistory { return &e2eHistory{start: time.Now()} }

// now returns the next time stamp.
func (h *e2eHistory) now() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := time.Since(h.start).Nanoseconds()
	if t <= h.mu.last {
		t = h.mu.last + 1
	}
	h.mu.last = t
	return t
}

// acked returns the number of writes acknowledged so far.
func (h *e2eHistory) acked() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.mu.acked
}

// run calls op on kc, recording it as client id.
func (h *e2eHistory) run(ctx context.Context, kc *kvclient.Client, id int, in e2eInput) e2eOutput {
	call := h.now()
	var out e2eOutput
	var err error
	switch in.Op {
	case e2eGet:
		var v []byte
		v, err = kc.Get(ctx, in.Key, kvclient.Linearizable)
		out = e2eOutput{Value: string(v), Exists: err == nil}
		if errors.Is(err, kvclient.ErrNotFound) {
			err = nil
		}
	case e2ePut:
		err = kc.Put(ctx, in.Key, []byte(in.Value))
	case e2eDelete:
		err = kc.Delete(ctx, in.Key)
	case e2eCAS:
		err = kc.CAS(ctx, in.Key, []byte(in.Expect), []byte(in.Value))
		out.OK = err == nil
		if errors.Is(err, kvclient.ErrCASMismatch) && !errors.Is(err, kvclient.ErrUnknownOutcome) {
			err = nil
		}
	}
	ret := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case err == nil:
		if in.Op != e2eGet {
			h.mu.acked++
		}
	case in.Op != e2eGet && errors.Is(err, kvclient.ErrUnknownOutcome):
		// It may take effect at any time after its call.
		h.mu.unknown++
		out, ret = e2eOutput{Unknown: true}, math.MaxInt64
	default:
		h.mu.failed++
		h.mu.lastFail = err
		return e2eOutput{Unknown: true}
	}
	h.mu.ops = append(h.mu.ops, porcupine.Operation{ClientId: id, Input: in, Call: call, Output: out, Return: ret})
	return out
}

// check runs porcupine over the history; on failure it writes the
// visualisation to a new file in dir, which outlives the test.
func (h *e2eHistory) check(dir string, timeout time.Duration) error {
	h.mu.Lock()
	ops := append([]porcupine.Operation(nil), h.mu.ops...)
	h.mu.Unlock()
	res, info := porcupine.CheckOperationsVerbose(e2eModel, ops, timeout)
	switch res {
	case porcupine.Ok:
		return nil
	case porcupine.Unknown:
		return fmt.Errorf("the check of %d operations did not finish within %v", len(ops), timeout)
	}
	where := ""
	if f, err := os.CreateTemp(dir, "raftkv-e2e-*.html"); err == nil {
		if porcupine.Visualize(e2eModel, info, f) == nil {
			where = "; visualisation in " + f.Name()
		}
		f.Close()
	}
	return fmt.Errorf("the history of %d operations is not linearizable%s", len(ops), where)
}

// counts returns the numbers of recorded, unknown and failed operations,
// and the last failure.
func (h *e2eHistory) counts() (recorded, unknown, failed int, lastFail error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.mu.ops), h.mu.unknown, h.mu.failed, h.mu.lastFail
}
