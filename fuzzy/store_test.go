package fuzzy

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/quorumkit/raft"
)

// A store that models a crash honestly.
//
// disk is what one server's disk keeps across crashes: its log and its
// stable values. Each incarnation of the server opens the disk through a
// diskHandle tagged with the disk's epoch at that moment. A crash bumps the
// epoch. Every write lands atomically, under the disk's lock, and only if
// its handle's epoch is still the disk's: a call that was still running when
// the crash happened either landed whole before it or never lands, even if
// its goroutine (abandoned by raft's Shutdown) finishes much later. What
// survives a crash is therefore exactly every call that returned, plus
// possibly, whole, calls that were in flight, which is what a disk with
// atomic batch writes (bbolt's transactions) keeps.
//
// A failing disk returns errors from some writes; half of those landed
// anyway.
//
// A slow disk is modelled by a latency drawn per write call. Half the time
// the write lands before the wait (the data is on disk, the call has not
// returned yet), half the time after it; a crash during the wait wakes the
// call, which then fails without landing in the second case.
//
// The disk holds the server's snapshots too, under the same rules
// (snapshots_test.go): a snapshot exists once its sink's Close landed.
//
// The disk also feeds the invariant checker: a leader's log, with its
// snapshots, holds every committed entry once it stored its first entry
// (see checker.onStored), and every snapshot holds the committed state at
// its index (checker.onSnapshotStored).
//
// Terms and votes are not checked here but where raft acts on them (a
// granted vote on the wire, a restart's term): a write can land and still
// be reported to raft as failed (an injected error, or a node already
// shutting down whose run loop is still serving), and raft never acts on
// such a write, so the disk alone cannot tell a promise from a leftover.

// errCrashed is what a handle returns once its incarnation has crashed.
var errCrashed = errors.New("fuzzy: the server crashed; this incarnation's disk is gone")

// errNotFound is a stable store miss, with the text raft reads as "absent".
var errNotFound = errors.New("not found")

// errDiskFailed is an injected write error.
var errDiskFailed = errors.New("fuzzy: injected disk write error")

// diskBehaviour decides how a write goes on a server's disk: how long it
// takes, and whether it fails. A failed write may still have landed, as
// when the data reached the disk but fsync reported an error: the caller
// cannot know.
type diskBehaviour func(id raft.ServerID) (latency time.Duration, fail, landAnyway bool)

type disk struct {
	id      raft.ServerID
	latency diskBehaviour
	check   *checker

	mu sync.Mutex
	// The fields below are guarded by mu.
	epoch uint64
	// crashCh is closed when the current epoch ends.
	crashCh chan struct{}
	logs    map[uint64]*raft.Log
	first   uint64
	last    uint64
	kv      map[string][]byte
	kvU64   map[string]uint64
	// snaps are the snapshots whose sink's Close landed, newest first
	// (snapshots_test.go); snapSeq numbers their IDs.
	snaps   []*storedSnapshot
	snapSeq int
	// inflight maps the log writes in flight, numbered by writeSeq, to
	// when they started.
	inflight map[uint64]time.Time
	writeSeq uint64
	// termWriting is the term a write of raft's current term in flight
	// carries, 0 when none is.
	termWriting uint64

	// logFaults, when set, adds the faults on log writes alone; set once,
	// before the disk is used.
	logFaults logFaults
}

func newDisk(id raft.ServerID, latency diskBehaviour, check *checker) *disk {
	return &disk{
		id:      id,
		latency: latency,
		check:   check,
		crashCh: make(chan struct{}),
		logs:    make(map[uint64]*raft.Log),
		kv:      make(map[string][]byte),
		kvU64:   make(map[string]uint64),
	}
}

// open returns a handle for a new incarnation of the server.
func (d *disk) open() *diskHandle {
	d.mu.Lock()
	defer d.mu.Unlock()
	return &diskHandle{d: d, epoch: d.epoch, crashCh: d.crashCh}
}

// crash ends the current epoch: no call made through an older handle
// changes the disk any more, and calls waiting on a slow write wake up.
func (d *disk) crash() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.epoch++
	close(d.crashCh)
	d.crashCh = make(chan struct{})
}

// currentTerm returns the stored current term.
func (d *disk) currentTerm() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.kvU64["CurrentTerm"]
}

// entry returns the stored entry at index. The caller holds mu.
func (d *disk) entryLocked(index uint64) (*raft.Log, bool) {
	l, ok := d.logs[index]
	return l, ok
}

// diskHandle is one incarnation's view of its disk. It implements
// raft.LogStore and raft.StableStore.
type diskHandle struct {
	d       *disk
	epoch   uint64
	crashCh <-chan struct{}
}

var (
	_ raft.LogStore    = (*diskHandle)(nil)
	_ raft.StableStore = (*diskHandle)(nil)
)

// read runs f under the disk's lock if this incarnation is alive.
func (h *diskHandle) read(f func(d *disk) error) error {
	h.d.mu.Lock()
	defer h.d.mu.Unlock()
	if h.epoch != h.d.epoch {
		return errCrashed
	}
	return f(h.d)
}

// write lands f atomically, after or before a simulated disk latency, or
// fails. A log write (log set) also meets the faults that act on log
// writes alone (logFaults): a stall, and a failure decided as it
// completes.
func (h *diskHandle) write(log bool, f func(d *disk)) error {
	return h.writeTracked(log, log, f)
}

// writeTracked is write; tracked says whether a log write counts as one
// in flight for stalledFor. A head compaction does not: raft runs it on
// its log compactor, beside the log writer's writes, and never takes a
// slow one for a stalled write (log_writer.go in the raft package).
func (h *diskHandle) writeTracked(log, tracked bool, f func(d *disk)) error {
	wait, fail, landAnyway := h.d.latency(h.d.id)
	lf := h.d.logFaults
	if !log {
		lf = nil
	}
	if fail {
		if landAnyway {
			if err := h.land(f); err != nil {
				return err
			}
		}
		return errDiskFailed
	}
	var early bool
	if lf != nil {
		wait = max(wait, lf.stall(h.d.id))
		early = lf.campaigningNow(h.d.id)
		if tracked {
			defer h.d.pending()()
		}
	}
	landFirst := wait > 0 && wait%2 == 0 // the low bit of a random duration is a fair coin
	if landFirst {
		if err := h.land(f); err != nil {
			return err
		}
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-h.crashCh:
			return errCrashed
		}
	}
	if lf != nil {
		if fail, landAnyway := lf.failLate(h.d.id, early); fail {
			if !landFirst && landAnyway {
				if err := h.land(f); err != nil {
					return err
				}
			}
			return errDiskFailed
		}
	}
	if landFirst {
		return nil
	}
	return h.land(f)
}

// logFaults are the faults that act on a server's log writes alone
// (faults_test.go): a stall that blocks them, and failures decided when a
// write completes, from the server's role at that moment.
type logFaults interface {
	// stall returns how long a log write starting now must block.
	stall(id raft.ServerID) time.Duration
	// campaigningNow reports whether id is a candidate or a new leader.
	campaigningNow(id raft.ServerID) bool
	// failLate decides whether a log write completing now fails, and if
	// so whether it landed anyway; early says whether its server was
	// campaigning when the write started.
	failLate(id raft.ServerID, early bool) (fail, landAnyway bool)
}

// latestConfiguration returns the servers of the newest configuration on
// the disk: the last configuration entry of its log, or its newest
// snapshot's when that is newer.
func (d *disk) latestConfiguration() []raft.Server {
	confs := d.newestConfigurations(1)
	if len(confs) == 0 {
		return nil
	}
	return confs[0]
}

// newestConfigurations returns the servers of up to n configurations on
// the disk, newest first by index: its log's configuration entries, and
// its newest snapshot's configuration (the one in force at the snapshot's
// index) unless a log entry at the same index holds it.
func (d *disk) newestConfigurations(n int) [][]raft.Server {
	d.mu.Lock()
	defer d.mu.Unlock()
	type indexed struct {
		index   uint64
		servers []raft.Server
	}
	var all []indexed
	for index, l := range d.logs {
		if l.Type == raft.LogConfiguration {
			if c, err := decodeConfiguration(l.Data); err == nil {
				all = append(all, indexed{index, c.Servers})
			}
		}
	}
	var snap *storedSnapshot
	for _, s := range d.snaps {
		if snap == nil || s.meta.ConfigurationIndex > snap.meta.ConfigurationIndex {
			snap = s
		}
	}
	if snap != nil && !slices.ContainsFunc(all, func(c indexed) bool { return c.index == snap.meta.ConfigurationIndex }) {
		all = append(all, indexed{snap.meta.ConfigurationIndex, snap.meta.Configuration.Servers})
	}
	slices.SortFunc(all, func(a, b indexed) int { return cmp.Compare(b.index, a.index) })
	var out [][]raft.Server
	for _, c := range all[:min(n, len(all))] {
		out = append(out, c.servers)
	}
	return out
}

// decodeConfiguration decodes a configuration entry's data, without the
// panic raft.DecodeConfiguration raises on bad input.
func decodeConfiguration(data []byte) (c raft.Configuration, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("undecodable configuration: %v", r)
		}
	}()
	return raft.DecodeConfiguration(data), nil
}

// pending records a log write in flight; the returned function ends it.
func (d *disk) pending() func() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.writeSeq++
	seq := d.writeSeq
	if d.inflight == nil {
		d.inflight = make(map[uint64]time.Time)
	}
	d.inflight[seq] = time.Now()
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		delete(d.inflight, seq)
	}
}

// stalledFor returns how long the oldest log write in flight has been
// waiting, or 0.
func (d *disk) stalledFor() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	var worst time.Duration
	for _, start := range d.inflight {
		worst = max(worst, time.Since(start))
	}
	return worst
}

// land applies f if this incarnation is alive.
func (h *diskHandle) land(f func(d *disk)) error {
	h.d.mu.Lock()
	defer h.d.mu.Unlock()
	if h.epoch != h.d.epoch {
		return errCrashed
	}
	f(h.d)
	return nil
}

func (h *diskHandle) FirstIndex() (uint64, error) {
	var i uint64
	err := h.read(func(d *disk) error { i = d.first; return nil })
	return i, err
}

func (h *diskHandle) LastIndex() (uint64, error) {
	var i uint64
	err := h.read(func(d *disk) error { i = d.last; return nil })
	return i, err
}

func (h *diskHandle) GetLog(index uint64, out *raft.Log) error {
	return h.read(func(d *disk) error {
		l, ok := d.logs[index]
		if !ok {
			return raft.ErrLogNotFound
		}
		*out = *l
		return nil
	})
}

func (h *diskHandle) StoreLog(l *raft.Log) error { return h.StoreLogs([]*raft.Log{l}) }

func (h *diskHandle) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	copies := make([]raft.Log, len(logs))
	for i, l := range logs {
		if l == nil {
			return fmt.Errorf("StoreLogs: entry %d is nil", i)
		}
		copies[i] = *l
	}
	return h.write(true, func(d *disk) {
		for i := range copies {
			l := &copies[i]
			d.logs[l.Index] = l
			if d.first == 0 || l.Index < d.first {
				d.first = l.Index
			}
			if l.Index > d.last {
				d.last = l.Index
			}
		}
		d.check.onStored(d, copies)
	})
}

func (h *diskHandle) DeleteRange(lo, hi uint64) error {
	// A range that starts at the log's first entry and keeps its last is
	// a head compaction.
	h.d.mu.Lock()
	head := lo <= h.d.first && hi < h.d.last
	h.d.mu.Unlock()
	return h.writeTracked(true, !head, func(d *disk) {
		for i := lo; i <= hi && i <= d.last; i++ {
			delete(d.logs, i)
		}
		d.first, d.last = 0, 0
		for i := range d.logs {
			if d.first == 0 || i < d.first {
				d.first = i
			}
			d.last = max(d.last, i)
		}
	})
}

func (h *diskHandle) Set(key, val []byte) error {
	v := append([]byte(nil), val...)
	return h.write(false, func(d *disk) { d.kv[string(key)] = v })
}

func (h *diskHandle) Get(key []byte) ([]byte, error) {
	var out []byte
	err := h.read(func(d *disk) error {
		v, ok := d.kv[string(key)]
		if !ok {
			return errNotFound
		}
		out = append([]byte(nil), v...)
		return nil
	})
	return out, err
}

func (h *diskHandle) SetUint64(key []byte, val uint64) error {
	if string(key) == currentTermKey {
		h.d.setTermWriting(val)
		defer h.d.setTermWriting(0)
	}
	return h.write(false, func(d *disk) { d.kvU64[string(key)] = val })
}

// currentTermKey is the stable-store key raft keeps its current term under.
const currentTermKey = "CurrentTerm"

func (d *disk) setTermWriting(term uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.termWriting = term
}

// termInFlight returns the term a write of raft's current term still in
// flight carries, or 0: a server whose election is past its pre-vote round
// but still writing its new term (a slow disk) already belongs to that
// term as far as the stability check goes (stability_test.go).
func (d *disk) termInFlight() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.termWriting
}

func (h *diskHandle) GetUint64(key []byte) (uint64, error) {
	var out uint64
	err := h.read(func(d *disk) error {
		v, ok := d.kvU64[string(key)]
		if !ok {
			return errNotFound
		}
		out = v
		return nil
	})
	return out, err
}
