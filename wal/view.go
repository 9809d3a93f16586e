package wal

import (
	"sort"

	"github.com/quorumkit/raft/wal/types"
)

// A view is one version of the log's segment list. Readers use the
// current view between acquireView and releaseView; the writer (holding
// writeMu) builds a new view and installs it. A view's segment list never
// changes once installed; its tail's content grows by appends, which the
// tail writer publishes safely to readers.
//
// Files a new view no longer uses (truncated or replaced segments) must
// not be closed under a reader still using an older view, however old.
// So readers hold readMu shared from acquireView to releaseView, and the
// writer, after installing a view, takes readMu exclusively once before
// closing and deleting the files the new view dropped: every reader that
// could still see them has finished, and later readers see the new view.
// Only truncations and Close do this; appends and rotations drop nothing.
type view struct {
	// segs are the log's segments in index order; the last is the tail.
	segs []segState
	// tail writes the last segment; nil only in the closed view.
	tail          types.SegmentWriter
	nextSegmentID uint64
}

// segState is a segment's metadata and its open reader (for the tail, its
// writer).
type segState struct {
	types.SegmentInfo
	r types.SegmentReader
}

// acquireView returns the current view, or ErrClosed. The caller must
// call releaseView once done with it.
func (w *WAL) acquireView() (*view, error) {
	w.readMu.RLock()
	v := w.view.Load()
	if v.tail == nil {
		w.readMu.RUnlock()
		return nil, ErrClosed
	}
	return v, nil
}

func (w *WAL) releaseView(*view) { w.readMu.RUnlock() }

// installView makes next the current view, then, if drop is not nil,
// waits for every reader of an older view to finish and runs drop to
// close the files next no longer uses. Called with writeMu held and
// never by a reader.
func (w *WAL) installView(next *view, drop func()) {
	w.view.Store(next)
	if drop != nil {
		// An empty critical section: waiting for the readers is the point.
		w.readMu.Lock()
		//lint:ignore SA2001 taking the write lock waited out every reader of the old view
		w.readMu.Unlock()
		drop()
	}
}

// clone returns a new, uninstalled view with the same segments.
func (v *view) clone() *view {
	return &view{
		segs:          append([]segState(nil), v.segs...),
		tail:          v.tail,
		nextSegmentID: v.nextSegmentID,
	}
}

// persistent returns the state the meta store records for v.
func (v *view) persistent() types.PersistentState {
	st := types.PersistentState{NextSegmentID: v.nextSegmentID, Segments: make([]types.SegmentInfo, len(v.segs))}
	for i, s := range v.segs {
		st.Segments[i] = s.SegmentInfo
	}
	return st
}

func (v *view) tailInfo() *segState { return &v.segs[len(v.segs)-1] }

// firstIndex is the log's first index, zero if it is empty.
func (v *view) firstIndex() uint64 {
	if len(v.segs) == 1 && v.tail.LastIndex() == 0 {
		return 0
	}
	return v.segs[0].MinIndex
}

// lastIndex is the log's last index, zero if it is empty. An empty tail
// after sealed segments starts right after the last of them.
func (v *view) lastIndex() uint64 {
	if last := v.tail.LastIndex(); last > 0 {
		return last
	}
	if len(v.segs) > 1 {
		return v.tailInfo().BaseIndex - 1
	}
	return 0
}

// find returns the reader of the segment holding idx, or ErrNotFound.
func (v *view) find(idx uint64) (types.SegmentReader, error) {
	i := sort.Search(len(v.segs), func(i int) bool { return v.segs[i].BaseIndex > idx }) - 1
	if i < 0 {
		return nil, ErrNotFound
	}
	s := &v.segs[i]
	if idx < s.MinIndex || !s.SealTime.IsZero() && idx > s.MaxIndex {
		return nil, ErrNotFound
	}
	return s.r, nil
}
