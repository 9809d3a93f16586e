package fuzzy

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The entry points.
//
//   - TestFuzzy runs a fixed set of seeds that, together, cover every fault
//     kind (TestFuzzySeedsCoverEveryFault keeps that true).
//   - TestFuzzySoak runs fresh seeds for RAFT_FUZZY_DURATION of wall time
//     (skipped when unset), printing each seed.
//   - TestFuzzyReplay replays RAFT_FUZZY_SEED (skipped when unset).
//
// RAFT_FUZZY_LENGTH overrides how long each run's faults go on, in fake
// time (default 20s).

// ciSeeds are the seeds TestFuzzy runs.
var ciSeeds = []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24}

const defaultLength = 20 * time.Second

func runLength(t *testing.T) time.Duration {
	s := os.Getenv("RAFT_FUZZY_LENGTH")
	if s == "" {
		return defaultLength
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("RAFT_FUZZY_LENGTH=%q: %v", s, err)
	}
	return d
}

func TestFuzzy(t *testing.T) {
	length := runLength(t)
	for _, seed := range ciSeeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			res := run(t, seed, length)
			t.Log(res.summary())
		})
	}
}

func TestFuzzySeedsCoverEveryFault(t *testing.T) {
	seen := make(map[faultKind]bool)
	for _, seed := range ciSeeds {
		for k := range newSchedule(seed, runLength(t)).kinds() {
			seen[k] = true
		}
	}
	for k := range numFaultKinds {
		if !seen[k] {
			t.Errorf("no CI seed has a %v episode; add a seed that does", k)
		}
	}
}

func TestFuzzyReplay(t *testing.T) {
	s := os.Getenv("RAFT_FUZZY_SEED")
	if s == "" {
		t.Skip("set RAFT_FUZZY_SEED to replay a seed")
	}
	seed, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("RAFT_FUZZY_SEED=%q: %v", s, err)
	}
	sched := newSchedule(seed, runLength(t))
	t.Logf("replaying %s", sched)
	res := run(t, seed, runLength(t))
	t.Log(res.summary())
}

func TestFuzzySoak(t *testing.T) {
	s := os.Getenv("RAFT_FUZZY_DURATION")
	if s == "" {
		t.Skip("set RAFT_FUZZY_DURATION (e.g. 30m) to run fresh seeds for that long")
	}
	budget, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("RAFT_FUZZY_DURATION=%q: %v", s, err)
	}
	length := runLength(t)
	deadline := time.Now().Add(budget)
	var runs, ops, failedRuns atomic.Int64
	var simTime atomic.Int64
	var wg sync.WaitGroup
	workers := 2
	for w := range workers {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				seed := rand.Uint64() >> 1
				fmt.Printf("soak worker %d: seed %d\n", w, seed)
				var res *runResult
				ok := t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
					res = run(t, seed, length)
				})
				runs.Add(1)
				if res != nil {
					ops.Add(int64(len(res.ops)))
					simTime.Add(int64(res.simTime))
					fmt.Printf("soak worker %d: %s\n", w, res.summary())
				}
				if !ok {
					failedRuns.Add(1)
					fmt.Printf("soak worker %d: seed %d FAILED\n", w, seed)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("soak: %d runs, %d failed, %v simulated, %d operations checked, %v of wall time",
		runs.Load(), failedRuns.Load(), time.Duration(simTime.Load()), ops.Load(), budget)
}
