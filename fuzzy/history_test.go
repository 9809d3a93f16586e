package fuzzy

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/anishathalye/porcupine"
)

// history records every client operation with its call and return stamps.
// Stamps come from a counter that every call and return increments, not
// from the clock: in fake time the clock stands still while goroutines run,
// so many events share a time, while the counter orders them as they
// happened (an operation that returned before another was called has a
// smaller return stamp than the other's call stamp).
type history struct {
	clock atomic.Int64

	mu  sync.Mutex
	ops []porcupine.Operation // guarded by mu
	// unknown and failed count operations whose outcome was unknown, and
	// definite failures, which are left out of the history.
	unknown, failed int
}

// kvInput is an operation as a client called it.
type kvInput struct {
	Op     kvOp
	Key    string
	Value  string
	Expect string
	// Exists is whether a restore sets the key (opRestore).
	Exists bool
}

// kvOutput is what a client saw. Unknown means the client cannot tell
// whether the operation took effect; the checker then accepts any result.
type kvOutput struct {
	Value   string
	Exists  bool
	OK      bool
	Unknown bool
}

// stamp returns the next event stamp.
func (h *history) stamp() int64 { return h.clock.Add(1) }

// outcome is how an operation ended, from the client's point of view.
type outcome int

const (
	// done: the operation took effect, and its result is known.
	done outcome = iota
	// failed: the operation certainly did not take effect.
	failed
	// unknown: the operation may or may not take effect, now or later.
	unknown
)

// record adds an operation that ended with the given outcome.
func (h *history) record(client int, in kvInput, out kvOutput, call, ret int64, how outcome) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch how {
	case failed:
		h.failed++
		return
	case unknown:
		h.unknown++
		if in.Op == opGet {
			// A read that may not have happened changes nothing.
			return
		}
		// It may take effect at any time after its call, however late:
		// it never returns.
		out = kvOutput{Unknown: true}
		ret = math.MaxInt64
	}
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
}

// operations returns the recorded history.
func (h *history) operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]porcupine.Operation(nil), h.ops...)
}

func (h *history) counts() (ops, unknownN, failedN int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ops), h.unknown, h.failed
}
