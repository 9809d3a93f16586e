package wal

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/quorumkit/raft"
	"github.com/quorumkit/raft/wal/metrics"
	"github.com/quorumkit/raft/wal/types"
)

var (
	// ErrNotFound is raft.ErrLogNotFound: GetLog's answer for an index
	// the log does not hold.
	ErrNotFound = types.ErrNotFound
	// ErrCorrupt is wrapped by errors that report damaged files.
	ErrCorrupt = types.ErrCorrupt
	// ErrSealed is returned by appends to a sealed segment.
	ErrSealed = types.ErrSealed
	// ErrClosed is returned by every method called after Close.
	ErrClosed = types.ErrClosed

	// DefaultSegmentSize is the segment size used unless WithSegmentSize
	// says otherwise: 64 MiB.
	DefaultSegmentSize = 64 * 1024 * 1024
)

var (
	_ raft.LogStore          = &WAL{}
	_ raft.StableStore       = &WAL{}
	_ raft.MonotonicLogStore = &WAL{}
)

// forceSealer is a segment writer that can seal itself before it is full.
// The package's own writer is one; a custom SegmentFiler's may not be, and
// then a tail truncation seals the segment in the metadata only, as
// raft-wal v0.4.0 does.
type forceSealer interface {
	ForceSeal() (indexStart uint64, err error)
}

// WAL is a raft.LogStore and raft.StableStore that keeps the log in
// segment files and the stable values, with the segment list, in a small
// meta store. See the package documentation.
type WAL struct {
	closed atomic.Bool

	dir         string
	codec       Codec
	sf          types.SegmentFiler
	metaDB      types.MetaStore
	ownMeta     bool // metaDB was made by Open, so Close closes it
	metrics     metrics.Collector
	log         hclog.Logger
	segmentSize int

	// view is the current segment list; readMu is held shared by its
	// readers (view.go).
	view   atomic.Pointer[view]
	readMu sync.RWMutex

	// writeMu is held by every change to the log: appends, truncations,
	// rotations, Close. The fields below are owned by its holder.
	writeMu sync.Mutex
	// rotatePending: the tail sealed itself, but starting the next
	// segment failed; the next write retries before anything else.
	rotatePending bool
	// failed is set when the files and the meta store may disagree with
	// the in-memory view (a step after a committed meta change failed);
	// every later write returns it, and reopening recovers.
	failed error
	// encBuf, ends and entries are reused from batch to batch when the
	// segment filer is package segment's, which copies a batch into its
	// file before Append returns. Another filer may keep the entries it
	// is given, so each batch then gets buffers of its own.
	reuseBufs bool
	encBuf    []byte
	ends      []int
	entries   []types.LogEntry
}

// Open opens the WAL in dir, which must exist, creating an empty one if
// there is none, and recovers from a crash if the last run ended in one:
// a batch whose append was cut short is dropped (it was never
// acknowledged), a segment whose sealing was cut short is sealed, and
// segment files the metadata no longer lists are deleted. Damaged files
// give an error wrapping ErrCorrupt.
func Open(dir string, opts ...walOpt) (*WAL, error) {
	w := &WAL{dir: dir}
	for _, opt := range opts {
		opt(w)
	}
	if err := w.applyDefaultsAndValidate(); err != nil {
		return nil, err
	}
	if err := w.open(); err != nil {
		if w.ownMeta {
			w.metaDB.Close()
		}
		return nil, err
	}
	return w, nil
}

func (w *WAL) open() error {
	persisted, err := w.metaDB.Load(w.dir)
	if err != nil {
		return err
	}
	present, err := w.sf.List()
	if err != nil {
		return err
	}
	persisted, _, err = w.repairRotationRace(persisted, present)
	if err != nil {
		return err
	}
	if err := checkPersisted(persisted); err != nil {
		return err
	}
	v := &view{nextSegmentID: persisted.NextSegmentID}
	var opened []types.SegmentReader
	fail := func(err error) error {
		for _, r := range opened {
			r.Close()
		}
		return err
	}
	for _, si := range persisted.Segments {
		if si.Codec != w.codec.ID() {
			return fail(fmt.Errorf("segment with BaseIndex=%d uses an unknown codec %d (this WAL's is %d)", si.BaseIndex, si.Codec, w.codec.ID()))
		}
		_, exists := present[si.ID]
		delete(present, si.ID)
		if !si.SealTime.IsZero() {
			if !exists {
				return fail(fmt.Errorf("%w: sealed segment file %d-%x is missing", ErrCorrupt, si.BaseIndex, si.ID))
			}
			r, err := w.sf.Open(si)
			if err != nil {
				return fail(err)
			}
			opened = append(opened, r)
			v.segs = append(v.segs, segState{SegmentInfo: si, r: r})
			continue
		}
		if si.SizeLimit == 0 || si.SizeLimit > math.MaxInt32 {
			// Absent (written by an older raft-wal) or impossible: the
			// tail seals at this WAL's size instead.
			si.SizeLimit = uint32(w.segmentSize)
		}
		// The tail. If its file is missing, the last run crashed after
		// recording it and before creating it (or before the first sync
		// of its directory): nothing in it was ever acknowledged.
		sw, err := w.sf.RecoverTail(si)
		if errors.Is(err, os.ErrNotExist) {
			sw, err = w.sf.Create(si)
		}
		if err != nil {
			return fail(err)
		}
		opened = append(opened, sw)
		if si.MinIndex > si.BaseIndex && sw.LastIndex() < si.MinIndex {
			return fail(fmt.Errorf("%w: tail segment %d-%x ends at index %d, before its first index %d: acknowledged entries are missing",
				ErrCorrupt, si.BaseIndex, si.ID, sw.LastIndex(), si.MinIndex))
		}
		v.segs = append(v.segs, segState{SegmentInfo: si, r: sw})
		v.tail = sw
	}
	w.view.Store(&view{}) // the closed view, replaced below
	if v.tail == nil {
		// No segments at all (a new WAL, or a head truncation removed
		// everything and the run ended before the new tail was recorded).
		base := uint64(1)
		if n := len(v.segs); n > 0 {
			base = v.segs[n-1].MaxIndex + 1
		}
		if err := w.startTail(v, base); err != nil {
			return fail(err)
		}
	}
	w.installView(v, nil)
	for id, base := range present {
		if err := w.sf.Delete(base, id); err != nil {
			w.log.Warn("failed to delete a segment file the metadata no longer lists", "baseIndex", base, "id", id, "error", err)
		}
	}
	if sealed, _, _ := v.tail.Sealed(); sealed {
		// The last run crashed between sealing the tail and recording it.
		w.writeMu.Lock()
		defer w.writeMu.Unlock()
		if err := w.rotateLocked(); err != nil {
			w.closeView()
			return err
		}
	}
	return nil
}

// checkPersisted checks the segment list the meta store returned: ours
// goes further than raft-wal here, which trusts it.
func checkPersisted(st types.PersistentState) error {
	for i, s := range st.Segments {
		bad := func(why string) error {
			return fmt.Errorf("%w: segment %d (ID %x, BaseIndex %d) in the metadata: %s", ErrCorrupt, i, s.ID, s.BaseIndex, why)
		}
		sealed := !s.SealTime.IsZero()
		switch {
		case s.BaseIndex == 0:
			return bad("BaseIndex is zero")
		case s.ID >= st.NextSegmentID:
			return bad("ID is not below NextSegmentID")
		case s.MinIndex < s.BaseIndex:
			return bad("MinIndex is below BaseIndex")
		case sealed && s.MaxIndex < s.MinIndex:
			return bad("MaxIndex is below MinIndex")
		case !sealed && i != len(st.Segments)-1:
			return bad("an unsealed segment is not at tail")
		}
		if i > 0 {
			prev := st.Segments[i-1]
			if s.BaseIndex != prev.MaxIndex+1 || s.ID <= prev.ID {
				return bad("does not follow the segment before it")
			}
		}
	}
	return nil
}

// FirstIndex returns the first index in the log, zero if it is empty.
func (w *WAL) FirstIndex() (uint64, error) {
	if w.closed.Load() {
		return 0, ErrClosed
	}
	v, err := w.acquireView()
	if err != nil {
		return 0, err
	}
	defer w.releaseView(v)
	return v.firstIndex(), nil
}

// LastIndex returns the last index in the log, zero if it is empty.
func (w *WAL) LastIndex() (uint64, error) {
	if w.closed.Load() {
		return 0, ErrClosed
	}
	v, err := w.acquireView()
	if err != nil {
		return 0, err
	}
	defer w.releaseView(v)
	return v.lastIndex(), nil
}

// GetLog fills log with the entry at index, or returns ErrNotFound. With
// the default codec, Data and Extensions share one buffer read from the
// file for this call, with no further copy.
func (w *WAL) GetLog(index uint64, log *raft.Log) error {
	if w.closed.Load() {
		return ErrClosed
	}
	v, err := w.acquireView()
	if err != nil {
		return err
	}
	defer w.releaseView(v)
	w.metrics.IncrementCounter("log_entries_read", 1)
	r, err := v.find(index)
	if err != nil {
		return err
	}
	raw, err := r.GetLog(index)
	if err != nil {
		return err
	}
	w.metrics.IncrementCounter("log_entry_bytes_read", uint64(len(raw.Bs)))
	if _, ok := w.codec.(*BinaryCodec); ok {
		// The buffer is ours when it has no pool to return to.
		err = decodeLog(raw.Bs, log, raw.CloseFn != nil)
		raw.Close()
		if err == nil && log.Index != index {
			err = fmt.Errorf("entry stored for index %d says it is index %d", index, log.Index)
		}
		if err != nil {
			return fmt.Errorf("%w: decoding entry %d: %v", ErrCorrupt, index, err)
		}
		return nil
	}
	defer raw.Close()
	return w.codec.Decode(raw.Bs, log)
}

// StoreLog appends one entry. See StoreLogs.
func (w *WAL) StoreLog(log *raft.Log) error {
	return w.StoreLogs([]*raft.Log{log})
}

// StoreLogs appends entries, which must continue the log without a gap
// (an empty log accepts any first index above zero), with one write and
// one sync, and returns once they are durable.
func (w *WAL) StoreLogs(logs []*raft.Log) error {
	if w.closed.Load() {
		return ErrClosed
	}
	if len(logs) == 0 {
		return nil
	}
	w.writeMu.Lock()
	defer w.writeMu.Unlock()
	if err := w.beginWriteLocked(); err != nil {
		return err
	}
	v := w.view.Load()
	last := v.lastIndex()
	if logs[0].Index == 0 {
		return fmt.Errorf("cannot append index 0: raft indexes start at 1")
	}
	if last == 0 && logs[0].Index != v.tailInfo().BaseIndex {
		if err := w.resetTailLocked(logs[0].Index); err != nil {
			return err
		}
		v = w.view.Load()
	}
	want := logs[0].Index
	if last > 0 {
		want = last + 1
	}
	for i, l := range logs {
		if l.Index != want+uint64(i) {
			after := last
			if i > 0 {
				after = logs[i-1].Index
			}
			return fmt.Errorf("non-monotonic log entries: tried to append index %d after %d", l.Index, after)
		}
	}
	entries, n, err := w.encodeLocked(logs)
	if err != nil {
		return err
	}
	if err := v.tail.Append(entries); err != nil {
		return err
	}
	w.metrics.IncrementCounter("log_appends", 1)
	w.metrics.IncrementCounter("log_entries_written", uint64(len(entries)))
	w.metrics.IncrementCounter("log_entry_bytes_written", n)
	sealed, _, err := v.tail.Sealed()
	if err != nil || !sealed {
		return err
	}
	// The batch is durable whatever happens next: a failure to start the
	// next segment is retried by the next write, not reported here.
	if err := w.rotateLocked(); err != nil {
		w.rotatePending = true
		w.log.Error("failed to start a new segment; the next write retries", "error", err)
	}
	return nil
}

// beginWriteLocked is the first step of every change to the log.
func (w *WAL) beginWriteLocked() error {
	if w.closed.Load() {
		return ErrClosed
	}
	if w.failed != nil {
		return w.failed
	}
	if w.rotatePending {
		if err := w.rotateLocked(); err != nil {
			return err
		}
		w.rotatePending = false
	}
	return nil
}

// encodeLocked encodes logs into one buffer (reused when w.reuseBufs)
// and returns the entries, slices of it, and their total size.
func (w *WAL) encodeLocked(logs []*raft.Log) ([]types.LogEntry, uint64, error) {
	if !w.reuseBufs {
		w.encBuf, w.ends, w.entries = nil, nil, nil
	}
	ends := w.ends[:0]
	var buf []byte
	if _, ours := w.codec.(*BinaryCodec); ours {
		buf = w.encBuf[:0]
		for _, l := range logs {
			var err error
			if buf, err = appendLog(buf, l); err != nil {
				return nil, 0, fmt.Errorf("encoding entry %d: %w", l.Index, err)
			}
			ends = append(ends, len(buf))
		}
	} else {
		bb := bytes.NewBuffer(w.encBuf[:0])
		for _, l := range logs {
			if err := w.codec.Encode(l, bb); err != nil {
				return nil, 0, fmt.Errorf("encoding entry %d: %w", l.Index, err)
			}
			ends = append(ends, bb.Len())
		}
		buf = bb.Bytes()
	}
	entries := w.entries[:0]
	start := 0
	for i, end := range ends {
		entries = append(entries, types.LogEntry{Index: logs[i].Index, Data: buf[start:end:end]})
		start = end
	}
	if cap(buf) <= 4<<20 {
		w.encBuf = buf
	}
	w.ends, w.entries = ends, entries
	return entries, uint64(len(buf)), nil
}

// Close closes the segment files and, unless it came from WithMetaStore,
// the meta store, releasing its lock so the directory can be opened again
// at once, in this process or another. Reads in progress finish first;
// every later call returns ErrClosed. Closing twice is harmless.
func (w *WAL) Close() error {
	if w.closed.Swap(true) {
		return nil
	}
	w.writeMu.Lock()
	defer w.writeMu.Unlock()
	w.closeView()
	if w.ownMeta {
		return w.metaDB.Close()
	}
	return nil
}

// closeView installs the closed view; the segments close once the last
// reader of the old view is done.
func (w *WAL) closeView() {
	old := w.view.Load()
	w.installView(&view{}, func() { closeSegments(w.log, old.segs, nil) })
}

// closeSegments closes the readers of segs, except keep.
func closeSegments(log hclog.Logger, segs []segState, keep types.SegmentReader) {
	for _, s := range segs {
		if s.r != nil && s.r != keep {
			if err := s.r.Close(); err != nil {
				log.Warn("failed to close a segment file", "baseIndex", s.BaseIndex, "id", s.ID, "error", err)
			}
		}
	}
}

// IsMonotonic reports true: the WAL holds no gaps (raft.MonotonicLogStore).
func (w *WAL) IsMonotonic() bool { return true }

// now is the clock for segment creation and seal times.
var now = time.Now
