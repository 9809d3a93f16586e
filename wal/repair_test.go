package wal

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/quorumkit/raft/wal/metadb"
	"github.com/quorumkit/raft/wal/segment"
	"github.com/quorumkit/raft/wal/types"
)

const raceSegSize = 32 << 10

// writeRaceBase writes 1..last with this WAL into 32 KiB segments, in
// batches of step, and returns the directory and the segment list it
// committed.
func writeRaceBase(t *testing.T, last, step uint64) (string, types.PersistentState) {
	t.Helper()
	dir := t.TempDir()
	w, err := Open(dir, WithSegmentSize(raceSegSize), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= last; i += step {
		if err := w.StoreLogs(batch(i, min(i+step-1, last), 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, loadState(t, dir)
}

func loadState(t *testing.T, dir string) types.PersistentState {
	t.Helper()
	m := &metadb.BoltMetaDB{}
	st, err := m.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	return st
}

func commitState(t *testing.T, dir string, st types.PersistentState) {
	t.Helper()
	m := &metadb.BoltMetaDB{}
	if _, err := m.Load(dir); err != nil {
		t.Fatal(err)
	}
	if err := m.CommitState(st); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}

// makeRaceState turns a directory this WAL wrote into the one raft-wal
// v0.4.0 leaves when its background rotation runs right after the tail
// truncation DeleteRange(newMax+1, ...): the tail truncated at newMax
// (the segment holding it sealed in the metadata only), an empty segment
// X after it recorded as sealed with MaxIndex 0, and an empty unsealed
// segment Y at index 1 that replaced the record of the segment starting
// there. Segments wholly above newMax are dropped from the list.
func makeRaceState(t *testing.T, dir string, st types.PersistentState, newMax uint64) {
	t.Helper()
	var kept []types.SegmentInfo
	var foreignIndex uint64
	for _, s := range st.Segments {
		if s.BaseIndex > newMax {
			if err := os.Remove(filepath.Join(dir, segment.FileName(s))); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if s.MaxIndex == 0 || s.MaxIndex > newMax {
			s.MaxIndex = newMax
			foreignIndex = s.IndexStart
			s.IndexStart = 0
			if s.SealTime.IsZero() {
				s.SealTime = time.Now()
			}
		}
		kept = append(kept, s)
	}
	if kept[0].BaseIndex != 1 {
		t.Fatalf("the first segment starts at %d", kept[0].BaseIndex)
	}
	xID := st.NextSegmentID
	x := types.SegmentInfo{ID: xID, BaseIndex: newMax + 1, MinIndex: newMax + 1, Codec: kept[0].Codec,
		IndexStart: foreignIndex, CreateTime: time.Now(), SealTime: time.Now(), SizeLimit: raceSegSize}
	y := types.SegmentInfo{ID: xID + 1, BaseIndex: 1, MinIndex: 1, Codec: kept[0].Codec,
		CreateTime: time.Now(), SizeLimit: raceSegSize}
	for _, s := range []types.SegmentInfo{x, y} {
		if err := os.WriteFile(filepath.Join(dir, segment.FileName(s)), make([]byte, raceSegSize), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	segs := append([]types.SegmentInfo{y}, kept[1:]...)
	commitState(t, dir, types.PersistentState{NextSegmentID: xID + 2, Segments: append(segs, x)})
}

func term1(uint64) uint64 { return 1 }

// TestOpenRepairsReferenceRotationRace: the directory raft-wal v0.4.0
// leaves when its background rotation runs after a tail truncation (its
// own Open refuses it) opens under ours with exactly the entries that
// were acknowledged and not truncated; the repaired list is committed, the
// two empty segments' files are deleted, and the WAL continues. Before
// wal/repair.go, Open refused the directory with ErrCorrupt.
func TestOpenRepairsReferenceRotationRace(t *testing.T) {
	for _, tc := range []struct {
		name       string
		last, step uint64
		newMax     uint64
	}{
		// One batch fills the first segment: the truncated tail is the
		// segment whose record Y replaced (as in the interop test).
		{name: "one segment", last: 200, step: 200, newMax: 190},
		// Several segments: Y replaced the first one's record; the
		// truncated tail keeps its own.
		{name: "several segments", last: 300, step: 10, newMax: 295},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, st := writeRaceBase(t, tc.last, tc.step)
			if tc.name == "several segments" && len(st.Segments) < 4 {
				t.Fatalf("only %d segments", len(st.Segments))
			}
			makeRaceState(t, dir, st, tc.newMax)
			raced := loadState(t, dir)

			w, err := Open(dir, WithSegmentSize(raceSegSize), WithLogger(quietLogger()))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			checkLog(t, w, 1, tc.newMax, term1)
			if err := w.StoreLogs(batch(tc.newMax+1, tc.newMax+20, 2)); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			y, x := raced.Segments[0], raced.Segments[len(raced.Segments)-1]
			for _, s := range []types.SegmentInfo{x, y} {
				if _, err := os.Stat(filepath.Join(dir, segment.FileName(s))); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("segment file %s of the race is still there: %v", segment.FileName(s), err)
				}
			}
			after := loadState(t, dir)
			for i, s := range after.Segments {
				if s.SealTime.IsZero() != (i == len(after.Segments)-1) {
					t.Errorf("segment %d of %d: sealed %v", i, len(after.Segments), !s.SealTime.IsZero())
				}
			}
			w, err = Open(dir, WithSegmentSize(raceSegSize), WithLogger(quietLogger()))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			checkLog(t, w, 1, tc.newMax+20, func(i uint64) uint64 {
				if i > tc.newMax {
					return 2
				}
				return 1
			})
		})
	}
}

// TestOpenRotationRaceRefusesWhatItCannotRepair: a list that looks like
// raft-wal's rotation race but is not exactly it (the segment file holding
// the first entries is gone, or Y holds entries) is refused with
// ErrCorrupt, never opened with entries missing or invented.
func TestOpenRotationRaceRefusesWhatItCannotRepair(t *testing.T) {
	t.Run("first segment missing", func(t *testing.T) {
		dir, st := writeRaceBase(t, 200, 200)
		makeRaceState(t, dir, st, 190)
		if err := os.Remove(filepath.Join(dir, segment.FileName(st.Segments[0]))); err != nil {
			t.Fatal(err)
		}
		err := openRaceErr(dir)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open: %v, want ErrCorrupt", err)
		}
		t.Log(err)
	})
	t.Run("Y holds entries", func(t *testing.T) {
		dir, st := writeRaceBase(t, 200, 200)
		makeRaceState(t, dir, st, 190)
		raced := loadState(t, dir)
		y := raced.Segments[0]
		// Let this WAL write a segment with Y's ID and BaseIndex that
		// holds entries 1..3.
		tmp := t.TempDir()
		commitState(t, tmp, types.PersistentState{NextSegmentID: y.ID + 1, Segments: []types.SegmentInfo{y}})
		if err := os.WriteFile(filepath.Join(tmp, segment.FileName(y)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		tw, err := Open(tmp, WithSegmentSize(raceSegSize), WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.StoreLogs(batch(1, 3, 1)); err != nil {
			t.Fatal(err)
		}
		tw.Close()
		full, err := os.ReadFile(filepath.Join(tmp, segment.FileName(y)))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, segment.FileName(y)), full, 0o644); err != nil {
			t.Fatal(err)
		}
		err = openRaceErr(dir)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open: %v, want ErrCorrupt", err)
		}
		t.Log(err)
	})
}

func openRaceErr(dir string) error {
	w, err := Open(dir, WithSegmentSize(raceSegSize), WithLogger(quietLogger()))
	if err == nil {
		w.Close()
	}
	return err
}
