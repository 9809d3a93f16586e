package wal

import (
	"fmt"

	"github.com/quorumkit/raft/wal/types"
)

// Every change to the segment list follows one order, so that a crash at
// any point leaves a directory that opens to the state before the change
// or the state after it:
//
//  1. write and sync whatever the files need first (the index frame that
//     seals a segment);
//  2. commit the new segment list to the meta store: the commit point;
//  3. create the new tail file (if the run stops before this, Open
//     creates it: the meta store lists it and nothing in it was
//     acknowledged);
//  4. install the new view; once every reader that could see an older one
//     is done, close and delete the files the new one dropped (a crash before that leaves files
//     the meta store no longer lists, which Open deletes).
//
// A failure after step 2 leaves the meta store ahead of the in-memory
// view, so the WAL refuses further writes (WAL.failed) until reopened.

// newSegment returns the info for a new tail segment.
func (w *WAL) newSegment(id, base uint64) types.SegmentInfo {
	return types.SegmentInfo{
		ID:         id,
		BaseIndex:  base,
		MinIndex:   base,
		Codec:      w.codec.ID(),
		CreateTime: now(),
		SizeLimit:  uint32(w.segmentSize),
	}
}

// startTail appends a new tail starting at base to next, commits next's
// segment list and creates the tail's file (steps 2 and 3 above).
func (w *WAL) startTail(next *view, base uint64) error {
	si := w.newSegment(next.nextSegmentID, base)
	next.nextSegmentID++
	next.segs = append(next.segs, segState{SegmentInfo: si})
	if err := w.metaDB.CommitState(next.persistent()); err != nil {
		return err
	}
	sw, err := w.sf.Create(si)
	if err != nil {
		err = fmt.Errorf("creating segment file for index %d: %w", base, err)
		w.failed = err
		return err
	}
	next.tail = sw
	next.tailInfo().r = sw
	return nil
}

// rotateLocked records the sealed tail as sealed and starts the next
// segment after it.
func (w *WAL) rotateLocked() error {
	v := w.view.Load()
	sealed, indexStart, err := v.tail.Sealed()
	if err != nil {
		return err
	}
	if !sealed {
		return fmt.Errorf("rotating a segment that is not sealed")
	}
	next := v.clone()
	t := next.tailInfo()
	t.SealTime = now()
	t.MaxIndex = v.tail.LastIndex()
	t.IndexStart = indexStart
	if t.MaxIndex < t.BaseIndex {
		return fmt.Errorf("%w: sealed segment %d-%x holds no entries", ErrCorrupt, t.BaseIndex, t.ID)
	}
	if err := w.startTail(next, t.MaxIndex+1); err != nil {
		return err
	}
	w.installView(next, nil)
	w.metrics.IncrementCounter("segment_rotations", 1)
	w.metrics.SetGauge("last_segment_age_seconds", uint64(t.SealTime.Sub(t.CreateTime).Seconds()))
	return nil
}

// resetTailLocked replaces the empty log's tail with one starting at base,
// so that every segment's BaseIndex is its first entry's index.
func (w *WAL) resetTailLocked(base uint64) error {
	v := w.view.Load()
	next := v.clone()
	old := next.segs[len(next.segs)-1]
	next.segs = next.segs[:len(next.segs)-1]
	if err := w.startTail(next, base); err != nil {
		return err
	}
	w.installView(next, func() { w.dropSegments([]segState{old}) })
	return nil
}

// dropSegments closes and deletes segments no view uses any more.
func (w *WAL) dropSegments(segs []segState) {
	closeSegments(w.log, segs, nil)
	for _, s := range segs {
		if err := w.sf.Delete(s.BaseIndex, s.ID); err != nil {
			w.log.Warn("failed to delete a truncated segment file; the next Open retries", "baseIndex", s.BaseIndex, "id", s.ID, "error", err)
		}
	}
}

// DeleteRange removes the entries min through max. The range must be a
// prefix or a suffix of the log (raft never asks for anything else); a
// range outside the log is a no-op. A prefix removes whole segments only
// (the first one remaining hides its removed entries); a suffix seals the
// segment holding max, with its index frame, and starts a new tail after
// it.
func (w *WAL) DeleteRange(min, max uint64) error {
	if w.closed.Load() {
		return ErrClosed
	}
	if min > max {
		return nil
	}
	w.writeMu.Lock()
	defer w.writeMu.Unlock()
	if err := w.beginWriteLocked(); err != nil {
		return err
	}
	v := w.view.Load()
	first, last := v.firstIndex(), v.lastIndex()
	switch {
	case last == 0 || max < first || min > last:
		return nil
	case min <= first:
		return w.truncateHeadLocked(max + 1)
	case max >= last:
		return w.truncateTailLocked(min - 1)
	default:
		return fmt.Errorf("only suffix or prefix ranges may be deleted from log")
	}
}

// truncateHeadLocked removes every entry below newMin.
func (w *WAL) truncateHeadLocked(newMin uint64) error {
	v := w.view.Load()
	oldFirst, oldLast := v.firstIndex(), v.lastIndex()
	next := v.clone()
	keep := len(next.segs)
	for i, s := range next.segs {
		end := s.MaxIndex
		if s.SealTime.IsZero() {
			end = oldLast
		}
		if end >= newMin {
			keep = i
			break
		}
	}
	dropped := append([]segState(nil), next.segs[:keep]...)
	next.segs = next.segs[keep:]
	removed := min(newMin, oldLast+1) - oldFirst
	if len(next.segs) > 0 {
		next.segs[0].MinIndex = newMin
		if err := w.metaDB.CommitState(next.persistent()); err != nil {
			return err
		}
	} else {
		// Nothing left: start an empty tail where the next index would
		// go (raft appends oldLast+1 after restoring a snapshot there).
		next.tail = nil
		if err := w.startTail(next, oldLast+1); err != nil {
			return err
		}
	}
	w.installView(next, func() { w.dropSegments(dropped) })
	w.metrics.IncrementCounter("head_truncations", removed)
	return nil
}

// truncateTailLocked removes every entry above newMax, which is at least
// the first index.
func (w *WAL) truncateTailLocked(newMax uint64) error {
	v := w.view.Load()
	oldLast := v.lastIndex()
	next := v.clone()
	keep := len(next.segs)
	for keep > 0 && next.segs[keep-1].BaseIndex > newMax {
		keep--
	}
	if keep == 0 {
		return fmt.Errorf("tail truncation to %d would remove the first segment", newMax)
	}
	dropped := append([]segState(nil), next.segs[keep:]...)
	next.segs = next.segs[:keep]
	end := next.tailInfo()
	if end.SealTime.IsZero() {
		// The tail itself ends early: seal it with its index frame, so
		// that it reads after a restart. raft-wal v0.4.0 marks it sealed
		// in the metadata only, and cannot read it after a restart.
		if fs, ok := v.tail.(forceSealer); ok {
			indexStart, err := fs.ForceSeal()
			if err != nil {
				return err
			}
			end.IndexStart = indexStart
		}
		end.SealTime = now()
	}
	end.MaxIndex = newMax
	next.tail = nil
	if err := w.startTail(next, newMax+1); err != nil {
		if sealed, _, _ := v.tail.Sealed(); sealed {
			// The truncation did not happen, but the tail is sealed: the
			// next write records it as a full segment and moves on.
			w.rotatePending = true
		}
		return err
	}
	w.installView(next, func() { w.dropSegments(dropped) })
	w.rotatePending = false
	w.metrics.IncrementCounter("tail_truncations", oldLast-newMax)
	return nil
}
