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
var ciSeeds = []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
	// Soak seeds that found a library defect (README.md, "What it found").
	7392399948086879820,
}

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
	var total ciTotals
	// The group returns once every parallel run in it finished.
	t.Run("seeds", func(t *testing.T) {
		for _, seed := range ciSeeds {
			t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
				t.Parallel()
				res := run(t, seed, length)
				total.add(res)
				t.Log(res.summary())
			})
		}
	})
	if !t.Failed() {
		total.check(t)
	}
}

// ciTotals adds up, over the CI seeds, what the runs exercised. A single
// run need not install a snapshot or complete every membership change
// (faults get in the way), but the CI seeds together must: a harness or
// core change that stops one from ever happening fails here instead of
// going unnoticed.
type ciTotals struct {
	mu                                 sync.Mutex
	snapshots, userSnapshots, opened   int64
	installs, startRestores, transfers int64
	readIndexReads, followerReads      int64
	leaseReads, leaseServed            int64
	changes                            [numFaultKinds]int64
	wipes, campaignWriteFailures       int64
	lateTimeoutNows, openLoopWrites    int64
}

func (c *ciTotals) add(r *runResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.snapshots += int64(r.snapshots)
	c.userSnapshots += r.stats.userSnapshots.Load()
	c.opened += r.stats.openedSnapshots.Load()
	c.installs += r.stats.installs.Load()
	c.startRestores += r.stats.startRestores.Load()
	c.transfers += r.stats.transfers.Load()
	c.readIndexReads += r.stats.readIndexReads.Load()
	c.leaseReads += r.stats.leaseReads.Load()
	c.leaseServed += r.stats.leaseServed.Load()
	c.followerReads += r.stats.followerReads.Load()
	for k := range numFaultKinds {
		c.changes[k] += r.stats.changes[k].Load()
	}
	c.wipes += r.stats.wipes.Load()
	c.campaignWriteFailures += r.stats.campaignWriteFailures.Load()
	c.lateTimeoutNows += r.stats.lateTimeoutNows.Load()
	c.openLoopWrites += r.stats.openLoopWrites.Load()
}

func (c *ciTotals) check(t *testing.T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range []struct {
		what string
		n    int64
	}{
		{"snapshot was stored", c.snapshots},
		{"user snapshot was taken", c.userSnapshots},
		{"user snapshot was read back", c.opened},
		{"snapshot was installed from a leader", c.installs},
		{"server restored a snapshot as it started", c.startRestores},
		{"leadership transfer succeeded", c.transfers},
		{"read went through ReadIndex", c.readIndexReads},
		{"read went through ReadLease", c.leaseReads},
		{"read was answered from a lease", c.leaseServed},
		{"read went through ReadIndex on a follower", c.followerReads},
		{"AddVoter committed", c.changes[opAddVoter]},
		{"AddNonvoter committed", c.changes[opAddNonvoter]},
		{"RemoveServer committed", c.changes[opRemove]},
		{"DemoteVoter committed", c.changes[opDemote]},
		{"disk was wiped", c.wipes},
		{"log write failed on a candidate or a new leader", c.campaignWriteFailures},
		{"late TimeoutNow was delivered", c.lateTimeoutNows},
		{"open-loop write was made", c.openLoopWrites},
	} {
		if x.n == 0 {
			t.Errorf("over all the CI seeds, no %s", x.what)
		}
	}
	t.Logf("CI seeds: %d snapshots stored (%d by users, %d read back), %d installed, %d restored at start; "+
		"%d add-voter, %d add-nonvoter, %d remove, %d demote committed; %d transfers; %d read-index reads (%d on followers); "+
		"%d lease reads (about %d from a lease); "+
		"%d disks wiped, %d log writes failed while campaigning, %d late TimeoutNows, %d open-loop writes",
		c.snapshots, c.userSnapshots, c.opened, c.installs, c.startRestores,
		c.changes[opAddVoter], c.changes[opAddNonvoter], c.changes[opRemove], c.changes[opDemote], c.transfers, c.readIndexReads, c.followerReads,
		c.leaseReads, c.leaseServed,
		c.wipes, c.campaignWriteFailures, c.lateTimeoutNows, c.openLoopWrites)
}

func TestFuzzySeedsCoverEveryFault(t *testing.T) {
	seen := make(map[faultKind]bool)
	var strict, lax int
	removedPreVote := make(map[bool]bool)
	for _, seed := range ciSeeds {
		s := newSchedule(seed, runLength(t))
		for k := range s.kinds() {
			seen[k] = true
		}
		if s.strict {
			strict++
		} else {
			lax++
		}
		for _, e := range s.episodes {
			if e.kind == faultRemovedReturns {
				removedPreVote[e.preVote] = true
			}
		}
	}
	for k := range numFaultKinds {
		if k == opUserRestore && !restoresOn() {
			continue
		}
		if !seen[k] {
			t.Errorf("no CI seed has a %v episode; add a seed that does", k)
		}
	}
	if strict == 0 || lax == 0 {
		t.Errorf("%d CI seeds run over the strict transport and %d over the plain one; both must be used", strict, lax)
	}
	for _, on := range []bool{false, true} {
		if !removedPreVote[on] {
			t.Errorf("no CI seed has a removed-returns episode whose server runs with pre-vote=%v", on)
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
	if os.Getenv("RAFT_FUZZY_EVENTS") != "" {
		t.Logf("events:\n%s", res.events.tail(100000))
	}
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
	var runs, ops, failedRuns, quorumStopped, droppedAtStart atomic.Int64
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
					if res.quorumStopped != "" {
						quorumStopped.Add(1)
					}
					droppedAtStart.Add(int64(res.droppedAtStart))
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
	t.Logf("soak: %d runs, %d failed, %v simulated, %d operations checked, %v of wall time; "+
		"%d runs ended with the quorum held by servers stopped for an uncommitted user restore (safety checked, liveness left to an operator); "+
		"%d uncommitted user restores loaded at a start and then replaced by the committed history",
		runs.Load(), failedRuns.Load(), time.Duration(simTime.Load()), ops.Load(), budget, quorumStopped.Load(), droppedAtStart.Load())
}
