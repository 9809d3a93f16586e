package wal

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/quorumkit/raft"
	"github.com/quorumkit/raft/wal/segment"
)

func quietLogger() hclog.Logger { return hclog.NewNullLogger() }

// TestModel runs random raft-like operations against a WAL with tiny
// segments and against raft.InmemStore, and after each one checks that
// both agree on the bounds and on every entry. Now and then it closes and
// reopens the WAL.
//
// Most seeds run on the in-memory file system; the last ones on real files.
func TestModel(t *testing.T) {
	const seeds, onDisk = 25, 1
	for seed := uint64(1); seed <= seeds; seed++ {
		rng := rand.New(rand.NewPCG(seed, 99))
		dir := t.TempDir()
		size := 512 + rng.IntN(8192)
		opts := []walOpt{WithSegmentSize(size), WithLogger(quietLogger())}
		if seed <= seeds-onDisk {
			mfs := newMemFS(rng)
			opts = append(opts, WithSegmentFiler(segment.NewFiler(dir, mfs)), WithMetaStore(newMemMeta(mfs)))
		}
		open := func() *WAL {
			w, err := Open(dir, opts...)
			if err != nil {
				t.Fatalf("seed %d: Open: %v", seed, err)
			}
			return w
		}
		w := open()
		model := raft.NewInmemStore()
		terms := map[uint64]uint64{}
		termOf := func(i uint64) uint64 { return terms[i] }
		term := uint64(1)
		for step := 0; step < 300; step++ {
			first, _ := model.FirstIndex()
			last, _ := model.LastIndex()
			switch op := rng.IntN(20); {
			case op < 12:
				from := last + 1
				if last == 0 {
					from = 1 + uint64(rng.IntN(50))
				}
				logs := batch(from, from+uint64(rng.IntN(20)), term)
				if err := w.StoreLogs(logs); err != nil {
					t.Fatalf("seed %d step %d: StoreLogs: %v", seed, step, err)
				}
				model.StoreLogs(logs)
				for _, l := range logs {
					terms[l.Index] = term
				}
			case op < 15 && last > 0:
				hi := first + uint64(rng.IntN(int(last-first)+5))
				if err := w.DeleteRange(first, hi); err != nil {
					t.Fatalf("seed %d step %d: head DeleteRange(%d, %d): %v", seed, step, first, hi, err)
				}
				model.DeleteRange(first, hi)
				if hi >= last {
					// Raft restores a snapshot and continues after it.
					lo := hi + 1
					logs := batch(lo, lo+uint64(rng.IntN(5)), term)
					if err := w.StoreLogs(logs); err != nil {
						t.Fatalf("seed %d step %d: StoreLogs after emptying: %v", seed, step, err)
					}
					model.StoreLogs(logs)
					for _, l := range logs {
						terms[l.Index] = term
					}
				}
			case op < 18 && last > first:
				lo := first + 1 + uint64(rng.IntN(int(last-first)))
				if err := w.DeleteRange(lo, last); err != nil {
					t.Fatalf("seed %d step %d: tail DeleteRange(%d, %d): %v", seed, step, lo, last, err)
				}
				model.DeleteRange(lo, last)
				term++
			case op == 18:
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				w = open()
			default:
				if last > first+2 {
					if err := w.DeleteRange(first+1, last-1); err == nil {
						t.Fatalf("seed %d: DeleteRange in the middle succeeded", seed)
					}
				}
			}
			first, _ = model.FirstIndex()
			last, _ = model.LastIndex()
			if err := verifyLog(w, first, last, termOf); err != nil {
				t.Fatalf("seed %d step %d: %v", seed, step, err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		w = open()
		first, _ := model.FirstIndex()
		last, _ := model.LastIndex()
		checkLog(t, w, first, last, termOf)
		w.Close()
		if _, err := w.LastIndex(); !errors.Is(err, ErrClosed) {
			t.Fatalf("LastIndex after Close: %v", err)
		}
	}
}
