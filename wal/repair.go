package wal

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/quorumkit/raft/wal/types"
)

// raft-wal v0.4.0 seals a full tail in the background: the append that
// fills a segment returns, and a goroutine later records the seal and
// starts the next segment. When a tail truncation takes the write lock
// between the two, the truncation seals the old tail at the new last index
// and starts an empty segment X after it; then the background step runs
// against X, which it takes for the segment it was asked to seal: it
// records X as sealed with MaxIndex 0 (X holds nothing) and the old
// tail's index offset, and starts a segment Y at MaxIndex+1, that is at
// index 1. raft-wal keys its segment list by BaseIndex, so Y replaces the
// record of whichever segment started at index 1 (the old tail itself
// when the log fit in one segment), whose file stays on disk unlisted.
// The list it commits reads, by BaseIndex:
//
//	Y (unsealed, BaseIndex 1, ID n-1), the remaining sealed segments, X (sealed, empty, ID n-2)
//
// with NextSegmentID n. raft-wal's own Open refuses it ("unsealed segment
// is not at tail"). repairRotationRace recognises exactly that list and
// returns the one raft-wal meant to commit: Y and X dropped (both hold
// nothing, which is checked), the record Y replaced restored from its
// file, and the log ending where the truncation ended it. The WAL never
// writes such a list itself: it seals and rotates under its write lock in
// one meta store commit, and every list it commits has one unsealed
// segment, the last.
//
// It returns ok false, and st unchanged, if st is not that list.
func (w *WAL) repairRotationRace(st types.PersistentState, present map[uint64]uint64) (_ types.PersistentState, ok bool, _ error) {
	segs := st.Segments
	n := len(segs)
	if n < 2 {
		return st, false, nil
	}
	y, x := segs[0], segs[n-1]
	if !y.SealTime.IsZero() || x.SealTime.IsZero() || x.MaxIndex >= x.BaseIndex ||
		y.BaseIndex != x.MaxIndex+1 || y.BaseIndex == 0 || y.ID != x.ID+1 || st.NextSegmentID != y.ID+1 {
		return st, false, nil
	}
	rest := segs[1 : n-1]
	for _, s := range rest {
		if s.SealTime.IsZero() {
			return st, false, nil
		}
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: the segment list looks like raft-wal v0.4.0's rotation racing a tail truncation, but %s",
			ErrCorrupt, fmt.Sprintf(format, args...))
	}
	for _, s := range []types.SegmentInfo{y, x} {
		empty, err := w.holdsNothing(s)
		if err != nil {
			return st, false, err
		}
		if !empty {
			return st, false, bad("segment %d-%x holds entries", s.BaseIndex, s.ID)
		}
	}
	newMax := x.BaseIndex - 1

	// The record Y replaced: the newest unlisted file starting where Y
	// does, older than every listed segment.
	limit := x.ID
	end := newMax
	if len(rest) > 0 {
		limit, end = rest[0].ID, rest[0].BaseIndex-1
	}
	var lost *types.SegmentInfo
	if end >= y.BaseIndex {
		for id, base := range present {
			if base == y.BaseIndex && id < limit && (lost == nil || id > lost.ID) {
				lost = &types.SegmentInfo{ID: id}
			}
		}
	}
	if lost != nil {
		*lost = types.SegmentInfo{
			ID:         lost.ID,
			BaseIndex:  y.BaseIndex,
			MinIndex:   y.BaseIndex,
			MaxIndex:   end,
			Codec:      y.Codec,
			CreateTime: y.CreateTime,
			SealTime:   x.SealTime,
			SizeLimit:  y.SizeLimit,
		}
		// Its file must hold every entry through end, each batch's
		// checksum matching; it is read by scanning (IndexStart 0).
		r, err := w.sf.Open(*lost)
		if err != nil {
			if len(rest) == 0 {
				return st, false, fmt.Errorf("restoring segment %d-%x: %w", lost.BaseIndex, lost.ID, err)
			}
			// A file a head truncation left behind, not the record Y
			// replaced: the log starts at rest[0].
			w.log.Warn("ignoring an unlisted segment file that does not continue the log", "baseIndex", lost.BaseIndex, "id", lost.ID, "error", err)
			lost = nil
		} else {
			r.Close()
		}
	}
	var fixed []types.SegmentInfo
	if lost != nil {
		fixed = append(fixed, *lost)
	}
	fixed = append(fixed, rest...)
	if len(fixed) == 0 {
		return st, false, bad("no file holds the entries %d..%d", y.BaseIndex, newMax)
	}
	if last := fixed[len(fixed)-1]; last.MaxIndex != newMax {
		return st, false, bad("the last sealed segment ends at %d, not at %d where the truncation left the log", last.MaxIndex, newMax)
	}
	w.log.Warn("repairing the segment list raft-wal v0.4.0 left when its background rotation ran after a tail truncation",
		"lastIndex", newMax, "restoredSegment", lost != nil)
	return types.PersistentState{NextSegmentID: st.NextSegmentID, Segments: fixed}, true, nil
}

// holdsNothing reports whether the segment s (whatever its metadata says
// about sealing) has no complete batch in its file, or no file.
func (w *WAL) holdsNothing(s types.SegmentInfo) (bool, error) {
	s.SealTime, s.IndexStart, s.MaxIndex = time.Time{}, 0, 0
	sw, err := w.sf.RecoverTail(s)
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	empty := sw.LastIndex() == 0
	if err := sw.Close(); err != nil {
		return false, err
	}
	return empty, nil
}
