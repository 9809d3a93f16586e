// Package fuzzy holds the fault-injection tests of the raft package: seeded
// runs of an in-process cluster, in fake time (testing/synctest), under a
// schedule of network faults, disk faults and crashes, interleaved with
// operations (user snapshots, membership changes, leadership transfers),
// with small snapshot thresholds so that logs are compacted and lagging
// followers install snapshots, and a key-value state machine whose client
// history is checked for linearizability with porcupine and with the Raft
// invariants asserted throughout.
//
// The package has no exported API; everything lives in its tests. Run it
// with
//
//	go test ./fuzzy/                              # the fixed CI seeds
//	RAFT_FUZZY_DURATION=30m go test ./fuzzy/ -run TestFuzzySoak -timeout 0 -v
//	RAFT_FUZZY_SEED=1234 go test ./fuzzy/ -run TestFuzzyReplay -v
//
// A failing run prints its seed, its fault schedule, what happened, and the
// command that replays it. A seed fixes the cluster, the fault schedule and
// the clients' workload; it does not fix the goroutine interleaving, so a
// replay explores the same schedule but may take a different path through
// it. See README.md in this directory for the harness's design.
package fuzzy
