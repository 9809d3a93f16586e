package wal

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/quorumkit/raft/wal/segment"
)

var crashSeeds = flag.Int("wal.crash-seeds", 150, "how many seeds TestCrashSimulated runs (6 crashes each)")

// simLog is what a crash test knows the log must hold: the acknowledged
// range and the term of each entry in it.
type simLog struct {
	first, last uint64
	terms       map[uint64]uint64
	curTerm     uint64 // the CurrentTerm stable value
}

func (s simLog) clone() simLog {
	c := s
	c.terms = make(map[uint64]uint64, len(s.terms))
	for k, v := range s.terms {
		c.terms[k] = v
	}
	return c
}

func (s *simLog) store(from, to, term uint64) {
	if s.last == 0 {
		s.first = from
	}
	for i := from; i <= to; i++ {
		s.terms[i] = term
	}
	s.last = to
}

func (s *simLog) deleteHead(newMin uint64) {
	if newMin > s.last {
		s.first, s.last = 0, 0
		return
	}
	s.first = newMin
}

func (s *simLog) deleteTail(newMax uint64) { s.last = newMax }

func (s simLog) check(w *WAL) error {
	if err := verifyLog(w, s.first, s.last, func(i uint64) uint64 { return s.terms[i] }); err != nil {
		return err
	}
	term, err := w.GetUint64([]byte("CurrentTerm"))
	if err != nil {
		return err
	}
	if term != s.curTerm {
		return fmt.Errorf("CurrentTerm is %d, want %d", term, s.curTerm)
	}
	return nil
}

// TestCrashSimulated runs a raft-like workload on the in-memory file
// system with tiny segments, crashes it at a random operation (in the
// middle of a batch's write or sync, of a seal, of a rotation, of a head
// or tail truncation, of a stable write, or of the recovery in Open
// itself), restarts from what a crash leaves on disk, and checks that
// every acknowledged operation is there whole, and the one in flight is
// there whole or not at all. Each seed crashes several times in a row.
//
// Run more seeds with
//
//	go test ./wal -run TestCrashSimulated -wal.crash-seeds=5000
func TestCrashSimulated(t *testing.T) {
	seeds := *crashSeeds
	if testing.Short() {
		seeds = min(seeds, 40)
	}
	var stats crashStats
	for seed := 1; seed <= seeds; seed++ {
		runCrashSeed(t, uint64(seed), &stats)
	}
	t.Logf("%d seeds: %d crashes; in flight at the crash: %v; found after: %d whole, %d absent",
		seeds, stats.crashes, stats.inFlight, stats.landed, stats.lost)
}

type crashStats struct {
	crashes      int
	inFlight     map[string]int
	landed, lost int
}

func runCrashSeed(t *testing.T, seed uint64, stats *crashStats) {
	if stats.inFlight == nil {
		stats.inFlight = map[string]int{}
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	mfs := newMemFS(rng)
	meta := newMemMeta(mfs)
	size := 256 + rng.IntN(4096)
	acked := simLog{terms: map[uint64]uint64{}}
	term := uint64(1)
	for round := 0; round < 6; round++ {
		mfs.crashAt = mfs.ops + 1 + rng.IntN(120)
		w, err := Open("d", WithSegmentFiler(segment.NewFiler("d", mfs)), WithMetaStore(meta),
			WithSegmentSize(size), WithLogger(quietLogger()))
		if err == nil {
			if err := acked.check(w); err != nil {
				t.Fatalf("seed %d round %d: after reopening: %v", seed, round, err)
			}
		} else if !errors.Is(err, errCrashed) {
			t.Fatalf("seed %d round %d: Open: %v", seed, round, err)
		}
		var pending *simLog
		var kind string
		for step := 0; err == nil; step++ {
			next := acked.clone()
			switch op := rng.IntN(20); {
			case op < 13 || acked.last == 0:
				from := acked.last + 1
				if acked.last == 0 {
					from = 1 + uint64(rng.IntN(10))
				}
				to := from + uint64(rng.IntN(12))
				kind = "append"
				err = w.StoreLogs(batch(from, to, term))
				next.store(from, to, term)
			case op < 15:
				hi := acked.first + uint64(rng.IntN(int(acked.last-acked.first)+3))
				kind = "head truncation"
				err = w.DeleteRange(acked.first, hi)
				next.deleteHead(hi + 1)
			case op < 18 && acked.last > acked.first:
				lo := acked.first + 1 + uint64(rng.IntN(int(acked.last-acked.first)))
				kind = "tail truncation"
				err = w.DeleteRange(lo, acked.last)
				next.deleteTail(lo - 1)
				term++
			default:
				kind = "stable write"
				next.curTerm++
				err = w.SetUint64([]byte("CurrentTerm"), next.curTerm)
			}
			if err == nil {
				acked = next
			} else if errors.Is(err, errCrashed) {
				pending = &next
			} else {
				t.Fatalf("seed %d round %d step %d: %s: %v", seed, round, step, kind, err)
			}
		}
		if w != nil {
			w.Close()
		}
		stats.crashes++
		// Restart on what the crash left.
		mfs = mfs.crashImage(rng)
		meta = meta.image(mfs)
		w, err = Open("d", WithSegmentFiler(segment.NewFiler("d", mfs)), WithMetaStore(meta),
			WithSegmentSize(size), WithLogger(quietLogger()))
		if err != nil {
			t.Fatalf("seed %d round %d: reopening after a crash (%s in flight): %v", seed, round, kind, err)
		}
		errAcked := acked.check(w)
		switch {
		case errAcked == nil:
			if pending != nil {
				stats.inFlight[kind]++
				stats.lost++
			}
		case pending != nil && pending.check(w) == nil:
			stats.inFlight[kind]++
			stats.landed++
			acked = *pending
		default:
			t.Fatalf("seed %d round %d: after a crash with %s in flight: %v", seed, round, kind, errAcked)
		}
		if acked.last > 0 {
			term = max(term, acked.terms[acked.last]+1)
		}
		w.Close()
	}
}
