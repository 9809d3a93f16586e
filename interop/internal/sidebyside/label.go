package sidebyside

import (
	"context"
	"runtime/pprof"
)

// Labelled runs f with the profiler label node=id. Goroutines inherit the
// labels of the goroutine that starts them, so a library adapter that
// opens a node's transport and starts its Raft inside f gets every
// goroutine of that node labelled, and a CPU profile (-cpuprofile) splits
// the process's CPU time by node with `go tool pprof -tags`. Labels cost
// nothing when no profile is taken.
func Labelled(id string, f func()) {
	pprof.Do(context.Background(), pprof.Labels("node", id), func(context.Context) { f() })
}
