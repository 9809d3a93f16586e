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

// writeSnapshot writes a kv snapshot at index through s and closes it.
func writeSnapshot(t *testing.T, s raft.SnapshotStore, term, index uint64) (string, error) {
	t.Helper()
	sink, err := s.Create(1, index, term, raft.Configuration{}, 0, nil)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := sink.Write([]byte(`{"i":0,"d":{}}`)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return sink.ID(), sink.Close()
}

func TestDisk_SnapshotExistsOnceItsCloseLanded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const latency = 10*time.Millisecond + 1 // lands after the wait
		d := newDisk("n0", fixedLatency(latency), newChecker())
		s := d.open().snapshots()
		if _, err := writeSnapshot(t, s, 1, 5); err != nil {
			t.Fatalf("Close: %v", err)
		}
		// A snapshot being written is not there, and a crash before its
		// Close lands loses it.
		sink, err := s.Create(1, 9, 1, raft.Configuration{}, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		sink.Write([]byte(`{"i":0,"d":{}}`))
		if list, _ := s.List(); len(list) != 1 || list[0].Index != 5 {
			t.Fatalf("while a sink is open the store lists %v, want only the snapshot at 5", list)
		}
		errCh := make(chan error, 1)
		go func() { errCh <- sink.Close() }()
		time.Sleep(latency / 2)
		d.crash()
		if err := <-errCh; !errors.Is(err, errCrashed) {
			t.Fatalf("Close in flight at the crash returned %v, want errCrashed", err)
		}
		after := d.open().snapshots()
		list, err := after.List()
		if err != nil || len(list) != 1 || list[0].Index != 5 {
			t.Fatalf("after the crash the store lists %v (%v), want only the snapshot at 5", list, err)
		}
		if _, _, err := s.Open(list[0].ID); !errors.Is(err, errCrashed) {
			t.Fatalf("Open through a crashed handle returned %v", err)
		}
	})
}

func TestDisk_SnapshotsListNewestFirstWhateverOrderTheyClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newDisk("n0", fixedLatency(0), newChecker())
		s := d.open().snapshots()
		newer, _ := writeSnapshot(t, s, 2, 20)
		writeSnapshot(t, s, 1, 10) // a slow local snapshot, overtaken
		writeSnapshot(t, s, 1, 5)  // falls out: the disk keeps two
		list, err := s.List()
		if err != nil {
			t.Fatal(err)
		}
		var got []uint64
		for _, m := range list {
			got = append(got, m.Index)
		}
		if len(got) != retainSnapshots || got[0] != 20 || got[1] != 10 {
			t.Fatalf("the store lists snapshots at %v, want [20 10]", got)
		}
		meta, rc, err := s.Open(newer)
		if err != nil {
			t.Fatal(err)
		}
		rc.Close()
		if meta.Size != int64(len(`{"i":0,"d":{}}`)) {
			t.Fatalf("meta.Size = %d", meta.Size)
		}
	})
}
