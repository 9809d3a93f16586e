package wal

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/quorumkit/raft"
	"github.com/quorumkit/raft/wal/segment"
)

// TestConcurrentReaders reads random entries from several goroutines while
// one goroutine appends, rotates segments and truncates the head (and,
// now and then, the tail). A read returns the right entry or
// ErrLogNotFound, never an error from a file closed under it. (It caught
// segments closed while a reader still used a view two changes old.)
func TestConcurrentReaders(t *testing.T) {
	// The in-memory file system, which fails reads of closed files as
	// the real one does, keeps the writer from waiting on real syncs.
	mfs := newMemFS(rand.New(rand.NewPCG(5, 5)))
	w, err := Open("d", WithSegmentFiler(segment.NewFiler("d", mfs)), WithMetaStore(newMemMeta(mfs)),
		WithSegmentSize(4096), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var (
		stop  atomic.Bool
		wg    sync.WaitGroup
		reads atomic.Int64
		mu    sync.RWMutex // guards terms
		terms = map[uint64]uint64{}
	)
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			var l raft.Log
			for n := uint64(r); !stop.Load(); n++ {
				first, _ := w.FirstIndex()
				last, _ := w.LastIndex()
				if last < first || last == 0 {
					continue
				}
				idx := first + n*7919%(last-first+1)
				err := w.GetLog(idx, &l)
				if errors.Is(err, raft.ErrLogNotFound) {
					continue
				}
				if err != nil {
					t.Errorf("GetLog(%d): %v", idx, err)
					return
				}
				mu.RLock()
				term := terms[idx]
				mu.RUnlock()
				// A tail truncation may have rewritten idx since the
				// read: only check entries whose term is settled.
				if term == l.Term && !sameLog(&l, testLog(idx, term)) {
					t.Errorf("GetLog(%d) returned the wrong entry", idx)
					return
				}
				reads.Add(1)
			}
		}(r)
	}
	term, last := uint64(1), uint64(0)
	for i := 0; i < 1000 && !t.Failed(); i++ {
		logs := batch(last+1, last+8, term)
		mu.Lock()
		for _, l := range logs {
			terms[l.Index] = term
		}
		mu.Unlock()
		if err := w.StoreLogs(logs); err != nil {
			t.Fatal(err)
		}
		last += 8
		if i%10 == 9 {
			if err := w.DeleteRange(1, last-100); err != nil {
				t.Fatal(err)
			}
		}
		if i%37 == 36 {
			if err := w.DeleteRange(last-5, last); err != nil {
				t.Fatal(err)
			}
			last -= 6
			term++
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d reads checked", reads.Load())
}
