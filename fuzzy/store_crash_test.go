package fuzzy

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quorumkit/raft"
)

// The disk keeps, after a crash, every write that returned and, whole or
// not at all, the writes in flight; nothing from a crashed incarnation
// lands later.

// fixedLatency makes every write take d. An even d lands the write before
// waiting, an odd one after (see diskHandle.write).
func fixedLatency(d time.Duration) diskBehaviour {
	return func(raft.ServerID) (time.Duration, bool, bool) { return d, false, false }
}

func entries(from, to uint64) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, &raft.Log{Index: i, Term: 1, Data: []byte{byte(i)}})
	}
	return out
}

func TestDisk_CrashKeepsReturnedWritesAndCutsThoseInFlight(t *testing.T) {
	for _, tc := range []struct {
		name    string
		latency time.Duration
		kept    bool // whether the batch in flight at the crash survives
	}{
		{"lands after its latency", 10*time.Millisecond + 1, false},
		{"lands before returning", 10 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				d := newDisk("n0", fixedLatency(tc.latency), newChecker())
				h := d.open()
				if err := h.StoreLogs(entries(1, 2)); err != nil {
					t.Fatalf("StoreLogs before the crash: %v", err)
				}
				errCh := make(chan error, 1)
				go func() { errCh <- h.StoreLogs(entries(3, 5)) }()
				time.Sleep(tc.latency / 2) // the crash comes mid-write
				d.crash()
				if err := <-errCh; !errors.Is(err, errCrashed) {
					t.Fatalf("write in flight at the crash returned %v, want errCrashed", err)
				}

				after := d.open()
				last, _ := after.LastIndex()
				want := uint64(2)
				if tc.kept {
					want = 5
				}
				if last != want {
					t.Fatalf("after the crash the disk ends at %d, want %d", last, want)
				}
				// The old incarnation can neither read nor write.
				if err := h.StoreLogs(entries(6, 6)); !errors.Is(err, errCrashed) {
					t.Fatalf("write through a crashed handle returned %v", err)
				}
				if _, err := h.LastIndex(); !errors.Is(err, errCrashed) {
					t.Fatalf("read through a crashed handle returned %v", err)
				}
				if err := after.StoreLogs(entries(want+1, want+1)); err != nil {
					t.Fatalf("write through the new handle: %v", err)
				}
			})
		})
	}
}

func TestDisk_StableValuesSurviveAndMissesSayNotFound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newDisk("n0", fixedLatency(0), newChecker())
		h := d.open()
		if _, err := h.GetUint64([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
			t.Fatalf("missing key: %v, want an error saying exactly \"not found\"", err)
		}
		if err := h.SetUint64([]byte("CurrentTerm"), 4); err != nil {
			t.Fatal(err)
		}
		d.crash()
		h = d.open()
		if v, err := h.GetUint64([]byte("CurrentTerm")); err != nil || v != 4 {
			t.Fatalf("CurrentTerm after a crash = %d, %v; want 4", v, err)
		}
	})
}
