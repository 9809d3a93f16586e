package fuzzy

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/anishathalye/porcupine"
)

// The sequential specification of one key, for porcupine. A history is
// checked key by key (Partition): operations on different keys commute.

// kvState is one key's value.
type kvState struct {
	Value  string
	Exists bool
}

var kvModel = porcupine.Model{
	Partition: func(ops []porcupine.Operation) [][]porcupine.Operation {
		byKey := make(map[string][]porcupine.Operation)
		var keys []string
		for _, op := range ops {
			k := op.Input.(kvInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() interface{} { return kvState{} },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		st := state.(kvState)
		in := input.(kvInput)
		out := output.(kvOutput)
		// A known result must be the one the state gives.
		before := out.Unknown || (out.Value == st.Value && out.Exists == st.Exists)
		switch in.Op {
		case opGet:
			return before, st
		case opPut:
			return before, kvState{Value: in.Value, Exists: true}
		case opDelete:
			return before && (out.Unknown || out.OK == st.Exists), kvState{}
		case opRestore:
			return true, kvState{Value: in.Value, Exists: in.Exists}
		case opCAS:
			match := st.Exists && st.Value == in.Expect
			if !out.Unknown && out.OK != match {
				return false, st
			}
			if match {
				return before, kvState{Value: in.Value, Exists: true}
			}
			return before, st
		}
		return false, st
	},
	DescribeOperation: func(input, output interface{}) string {
		in := input.(kvInput)
		out := output.(kvOutput)
		if in.Op == opRestore {
			if !in.Exists {
				return fmt.Sprintf("restore(%s, ∅)", in.Key)
			}
			return fmt.Sprintf("restore(%s, %s)", in.Key, in.Value)
		}
		cmd := kvCommand{Op: in.Op, Key: in.Key, Value: in.Value, Expect: in.Expect}
		if out.Unknown {
			return fmt.Sprintf("%v → ?", cmd)
		}
		return fmt.Sprintf("%v → %q exists=%v ok=%v", cmd, out.Value, out.Exists, out.OK)
	},
	DescribeState: func(state interface{}) string {
		st := state.(kvState)
		if !st.Exists {
			return "∅"
		}
		return st.Value
	},
}

// linearizabilityTimeout bounds the check of one run, in wall time. The
// check runs after the run's bubble ended, so this is a real timeout.
const linearizabilityTimeout = 2 * time.Minute

// checkLinearizable checks ops with porcupine. On failure it writes the
// visualisation to a temporary file and says where.
func checkLinearizable(ops []porcupine.Operation, seed uint64) error {
	res, info := porcupine.CheckOperationsVerbose(kvModel, ops, linearizabilityTimeout)
	switch res {
	case porcupine.Ok:
		return nil
	case porcupine.Unknown:
		return fmt.Errorf("the linearizability check of %d operations did not finish within %v", len(ops), linearizabilityTimeout)
	}
	path := filepath.Join(os.TempDir(), fmt.Sprintf("raft-fuzzy-%d.html", seed))
	where := ""
	if f, err := os.Create(path); err == nil {
		if err := porcupine.Visualize(kvModel, info, f); err == nil {
			where = "; visualisation in " + path
		}
		f.Close()
	}
	return fmt.Errorf("the history of %d operations is not linearizable%s", len(ops), where)
}
