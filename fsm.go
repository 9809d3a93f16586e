package raft

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/go-metrics"
)

// FSM is the application's state machine. Raft calls its methods from a
// single goroutine, in log order, so an FSM needs no locking against
// itself; it does against the application's own readers.
type FSM interface {
	// Apply applies a committed LogCommand entry and returns a value that
	// the entry's ApplyFuture.Response returns on the node that appended it.
	// It must be deterministic: every server applies the same entries and
	// must reach the same state.
	Apply(*Log) interface{}

	// Snapshot returns a point-in-time snapshot of the state. It should be
	// quick: Apply is not called until it returns, but FSMSnapshot.Persist
	// runs concurrently with later Apply calls, so Snapshot must capture
	// what Persist needs (for example, a copy-on-write view).
	Snapshot() (FSMSnapshot, error)

	// Restore replaces the whole state with the snapshot read from snapshot
	// and closes it. It is never called concurrently with other methods.
	Restore(snapshot io.ReadCloser) error
}

// BatchingFSM is an FSM that can apply several entries at once, which lets
// it amortise work such as a disk transaction over a batch.
type BatchingFSM interface {
	// ApplyBatch applies committed entries in order and returns one
	// response per entry, in the same order. Entries of type LogCommand and
	// LogConfiguration are passed; the FSM should ignore types it does not
	// know. The returned slice must have the same length as the input.
	ApplyBatch([]*Log) []interface{}

	FSM
}

// ConfigurationStore is an FSM that wants to record cluster membership
// alongside its state.
type ConfigurationStore interface {
	FSM

	// StoreConfiguration is called, in log order with Apply, for every
	// committed configuration entry.
	StoreConfiguration(index uint64, configuration Configuration)
}

// FSMSnapshot is a point-in-time snapshot returned by FSM.Snapshot.
type FSMSnapshot interface {
	// Persist writes the snapshot to sink and closes it, or calls
	// sink.Cancel on failure.
	Persist(sink SnapshotSink) error

	// Release is called when raft no longer needs the snapshot.
	Release()
}

// CountingReader is a reader that knows how many bytes it has produced.
type CountingReader interface {
	io.Reader
	Count() int64
}

// ReadCloserWrapper is a reader that wraps another one, which it exposes.
type ReadCloserWrapper interface {
	io.ReadCloser
	WrappedReadCloser() io.ReadCloser
}

// WrappingFSM is an FSM that wraps another one, which it exposes.
type WrappingFSM interface {
	Underlying() FSM
}

// The FSM goroutine.
//
// It owns the FSM: Apply, ApplyBatch, StoreConfiguration, Snapshot and
// Restore are called from it alone, in log order. The run loop hands it
// committed entries in tasks on fsmCh (up to fsmQueueLen tasks queue up;
// Stats reports how many as fsm_pending) and never waits for it.

// fsmQueueLen is the capacity of fsmCh.
const fsmQueueLen = 128

// fsmTask is work for the FSM goroutine: a run of committed entries, or,
// when restoreID is set, the restore of a stored snapshot whose last entry
// is at from (== to).
type fsmTask struct {
	from, to uint64
	// restoreID is the snapshot to restore. userRestore is the Restore
	// that put it there on this leader, answered once the FSM restored it
	// (nil for any other restore, or once the leadership ended first and
	// answered it).
	restoreID   string
	userRestore *userRestoreFuture
	// received says that restoreID is a snapshot this node's receive
	// goroutine has just written, so its store may skip checking it again
	// (openWrittenSnapshot).
	received bool
	// answer, when set, answers the InstallSnapshot that brought
	// restoreID once the restore is done.
	answer *installAnswer
	// entries are the entries from..to when the run loop held them in
	// memory; nil means the FSM goroutine reads them from the log store.
	// heldBytes is their memory charge (backpressure.go), counted in
	// Raft.fsmHeld from dispatch until the task is done.
	entries   []*Log
	heldBytes int64
	// futures are the futures of entries in from..to, in index order.
	futures []*logFuture
	// reads are answered once the task is applied. A task with reads and
	// nothing else (from == 0) is a marker behind tasks already sent.
	reads []*readIndexFuture
	// ready is when a run of entries was ready for the FSM goroutine; the
	// wait until it takes them is measured as raft.fsm.enqueue.
	ready time.Time
}

// isMarker reports whether the task only answers reads.
func (t *fsmTask) isMarker() bool { return t.restoreID == "" && t.from == 0 }

// readsStore reports whether the FSM goroutine reads the task's entries
// from the log store.
func (t *fsmTask) readsStore() bool { return t.restoreID == "" && t.from > 0 && t.entries == nil }

// String describes the task, for state dumps.
func (t *fsmTask) String() string {
	switch {
	case t.restoreID != "":
		return fmt.Sprintf("restore %s at %d (user %v, reads %d)", t.restoreID, t.to, t.userRestore != nil, len(t.reads))
	case t.from == 0:
		return fmt.Sprintf("reads marker (%d)", len(t.reads))
	}
	return fmt.Sprintf("apply %d-%d (from store %v, futures %d, reads %d)", t.from, t.to, t.entries == nil, len(t.futures), len(t.reads))
}

// nextFSMTask returns the next run of committed, durable entries for the
// FSM goroutine, building it once and keeping it until it is taken.
func (r *Raft) nextFSMTask() *fsmTask {
	if r.st.pendingFSM != nil {
		return r.st.pendingFSM
	}
	if len(r.st.fsmQueue) > 0 {
		r.st.pendingFSM = r.st.fsmQueue[0]
		r.st.fsmQueue[0] = nil
		r.st.fsmQueue = r.st.fsmQueue[1:]
		return r.st.pendingFSM
	}
	if r.st.heldRestore != nil {
		// Every entry past it waits for its restore, which waits until
		// the snapshot is confirmed (unconfirmed_snapshot.go).
		return nil
	}
	// Only entries durable here are applied: whatever the FSM shows must
	// survive this node's crash.
	upTo := min(r.st.commitIndex, r.st.writes.durable)
	if upTo <= r.st.dispatched {
		return nil
	}
	from := r.st.dispatched + 1
	to := min(upTo, from+uint64(r.config().MaxAppendEntries)-1)
	t := &fsmTask{from: from, to: to, ready: time.Now()}
	if r.st.log.held() > 0 && r.st.log.firstHeld() <= from {
		t.entries = make([]*Log, 0, to-from+1)
		for i := from; i <= to; i++ {
			l, _ := r.st.log.get(i)
			t.entries = append(t.entries, l)
			t.heldBytes += entryMemoryBytes(l)
		}
	}
	n := 0
	for n < len(r.st.futures) && r.st.futures[n].log.Index <= to {
		n++
	}
	if n > 0 {
		t.futures = append([]*logFuture(nil), r.st.futures[:n]...)
		clear(r.st.futures[:n])
		r.st.futures = r.st.futures[n:]
	}
	n = 0
	for n < len(r.st.reads) && r.st.reads[n].index <= to {
		n++
	}
	if n > 0 {
		t.reads = append([]*readIndexFuture(nil), r.st.reads[:n]...)
		clear(r.st.reads[:n])
		r.st.reads = r.st.reads[n:]
	}
	r.st.pendingFSM = t
	return t
}

// onFSMDispatched records that the FSM goroutine took a task.
// dispatchFSM hands the next FSM task to the FSM goroutine now if its
// queue has room, as the run loop's select would on its next round. The
// run loop calls it right after an event that may make entries
// applicable, which saves a round of its select (the costliest part of
// the loop under load) and starts the FSM before anything else is woken.
func (r *Raft) dispatchFSM() {
	t := r.nextFSMTask()
	if t == nil {
		return
	}
	select {
	case r.fsmCh <- t:
		r.onFSMDispatched(t)
	default:
	}
}

func (r *Raft) onFSMDispatched(t *fsmTask) {
	r.st.dispatched = max(r.st.dispatched, t.to)
	r.st.pendingFSM = nil
	if !t.ready.IsZero() {
		metrics.MeasureSince(keyFSMEnqueue, t.ready)
	}
	r.fsmHeld.Add(t.heldBytes)
	if t.readsStore() {
		r.st.fsmStoreReads = append(r.storeReads(), indexRange{t.from, t.to})
	}
	if r.st.restoring != nil {
		r.adoptUserRestore()
	}
	r.trimMemLog()
}

// takeBackPendingFSM puts the entry task built but not yet taken back
// into the run loop's queues, so that a reset can rebuild it: its futures
// and reads go back to the head of st.futures and st.reads.
func (r *Raft) takeBackPendingFSM() {
	t := r.st.pendingFSM
	if t == nil || t.restoreID != "" || t.from == 0 {
		return
	}
	r.st.pendingFSM = nil
	r.st.futures = append(t.futures, r.st.futures...)
	r.st.reads = append(t.reads, r.st.reads...)
}

// runFSM is the FSM goroutine.
func (r *Raft) runFSM() {
	a := fsmApplier{r: r, lastIndex: r.restored.index, lastTerm: r.restored.term, epoch: time.Now()}
	a.batching, _ = r.fsm.(BatchingFSM)
	a.configStore, _ = r.fsm.(ConfigurationStore)
	load := newLoadMeter(keyFSMLoad)
	for {
		load.waiting()
		select {
		case t := <-r.fsmCh:
			load.working()
			ok := true
			switch {
			case t.restoreID != "":
				ok = a.restore(t)
			case t.from > 0:
				ok = a.apply(t)
			}
			if !ok {
				return
			}
			for _, f := range t.reads {
				f.respond(nil)
			}
			r.appliedWaiters.release(r.pub.appliedIndex.Load())
			r.fsmHeld.Add(-t.heldBytes)
			notify(r.fsmProgressCh)
		case req := <-r.fsmSnapshotCh:
			load.working()
			req.done <- a.snapshot(req.user)
		case <-r.shutdownCh:
			return
		}
	}
}

// snapshot takes a snapshot of the FSM as it is now, between two applies.
// As in the reference, there is nothing to snapshot until the FSM was fed
// something since the node started (see fed); a periodic request (user
// false) also skips it when nothing was applied since the last snapshot,
// while a user's request takes another one then, as the reference does.
func (a *fsmApplier) snapshot(user bool) snapshotResponse {
	snapIndex, _ := a.r.pub.lastSnapshot()
	if !a.fed || a.lastIndex == 0 || (!user && a.lastIndex <= snapIndex) {
		return snapshotResponse{err: ErrNothingNewToSnapshot}
	}
	start := time.Now()
	a.r.fsmCall.begin("FSM.Snapshot", a.lastIndex, a.lastIndex, start)
	snap, err := a.r.fsm.Snapshot()
	a.r.fsmCall.end()
	metrics.MeasureSince([]string{"raft", "fsm", "snapshot"}, start)
	if err == nil && snap == nil {
		err = errors.New("FSM.Snapshot returned no snapshot")
	}
	return snapshotResponse{snapshot: snap, index: a.lastIndex, term: a.lastTerm, err: err}
}

// restore replaces the FSM's state with a stored snapshot. A failed restore
// leaves the FSM in an unknown state, so the node stops. It returns false
// if the FSM goroutine must stop.
func (a *fsmApplier) restore(t *fsmTask) bool {
	r := a.r
	open := r.snapshots.Open
	if t.received {
		open = func(id string) (*SnapshotMeta, io.ReadCloser, error) { return openWrittenSnapshot(r.snapshots, id) }
	}
	meta, source, err := open(t.restoreID)
	if err == nil {
		start := time.Now()
		r.fsmCall.begin("FSM.Restore", meta.Index, meta.Index, start)
		err = r.fsm.Restore(source)
		r.fsmCall.end()
		source.Close()
		metrics.MeasureSince([]string{"raft", "fsm", "restore"}, start)
		metrics.SetGauge([]string{"raft", "fsm", "lastRestoreDuration"}, float32(time.Since(start).Milliseconds()))
	}
	if err != nil {
		err = fmt.Errorf("failed to restore snapshot %v: %w", t.restoreID, err)
		r.fatal(err)
	} else {
		a.lastIndex, a.lastTerm = meta.Index, meta.Term
		a.fed = true
		r.pub.appliedIndex.Store(meta.Index)
	}
	if t.answer != nil {
		t.answer.respond(err)
	}
	if t.userRestore != nil {
		// The restore committed before the FSM was handed it
		// (unconfirmed_snapshot.go); a failure stopped the node above.
		if err == nil {
			r.logger.Info("restored user snapshot", "index", meta.Index)
		}
		t.userRestore.respond(err)
	}
	return err == nil
}

// fsmApplier applies tasks to the FSM. Owned by the FSM goroutine.
type fsmApplier struct {
	r           *Raft
	batching    BatchingFSM
	configStore ConfigurationStore
	// lastIndex and lastTerm are those of the last entry applied, which a
	// snapshot of the FSM covers.
	lastIndex, lastTerm uint64
	// fed is set once this goroutine has handed the FSM something since
	// the node started: a command, a barrier, a configuration entry the FSM
	// receives (ConfigurationStore or BatchingFSM), or a snapshot to
	// restore. Until then Raft.Snapshot answers ErrNothingNewToSnapshot,
	// as the reference does (the snapshot restored by NewRaft and no-op
	// entries do not count).
	fed bool
	// epoch is when the goroutine started; see stamp.
	epoch time.Time
}

// stamp returns the current time for measuring how long a call takes: it
// reads only the monotonic clock, as an offset from epoch, which costs
// about half of time.Now and is paid once per applied entry. Durations
// between stamps, and from a stamp to time.Now, are exact; only the wall
// clock reading of a stamp may be off, by however much the wall clock was
// set since epoch, and nothing reads it.
func (a *fsmApplier) stamp() time.Time {
	return a.epoch.Add(time.Since(a.epoch))
}

// feeds reports whether applying entries hands the FSM anything (see fed).
func (a *fsmApplier) feeds(entries []*Log) bool {
	for _, e := range entries {
		switch e.Type {
		case LogCommand, LogBarrier:
			return true
		case LogConfiguration:
			if a.configStore != nil || a.batching != nil {
				return true
			}
		}
	}
	return false
}

// apply applies one task; it returns false if the FSM goroutine must stop.
func (a *fsmApplier) apply(t *fsmTask) bool {
	r := a.r
	entries := t.entries
	if entries == nil {
		var err error
		if entries, err = a.readEntries(t.from, t.to); err != nil {
			if !errors.Is(err, ErrRaftShutdown) {
				r.fatal(fmt.Errorf("reading committed entries for the FSM: %w", err))
			}
			for _, f := range t.futures {
				f.respond(err)
			}
			return false
		}
	}
	if err := checkApplicable(entries); err != nil {
		// A type this version does not know would make this FSM diverge
		// from servers that do: stop rather than guess.
		r.fatal(err)
		for _, f := range t.futures {
			f.respond(err)
		}
		return false
	}
	var responses []interface{}
	if a.batching != nil {
		responses = a.applyBatch(entries)
	} else {
		responses = a.applyEach(entries)
	}
	last := entries[len(entries)-1]
	a.lastIndex, a.lastTerm = last.Index, last.Term
	a.fed = a.fed || a.feeds(entries)
	r.pub.appliedIndex.Store(last.Index)
	fi := 0
	for i, e := range entries {
		for fi < len(t.futures) && t.futures[fi].log.Index < e.Index {
			fi++
		}
		if fi < len(t.futures) && t.futures[fi].log.Index == e.Index {
			f := t.futures[fi]
			f.response = responses[i]
			f.respond(nil)
			fi++
		}
	}
	return true
}

// readEntries reads committed entries from the log store.
func (a *fsmApplier) readEntries(from, to uint64) ([]*Log, error) {
	out := make([]*Log, 0, to-from+1)
	for i := from; i <= to; i++ {
		l := new(Log)
		if err := a.r.logs.GetLog(i, l); err != nil {
			return nil, fmt.Errorf("reading log entry %d: %w", i, err)
		}
		out = append(out, l)
	}
	return out, nil
}

// checkApplicable refuses entry types this version does not know.
func checkApplicable(entries []*Log) error {
	for _, e := range entries {
		if e.Type > LogConfiguration {
			return fmt.Errorf("committed entry %d has unrecognized log type %v", e.Index, e.Type)
		}
	}
	return nil
}

// applyEach applies entries one by one and returns one response each.
func (a *fsmApplier) applyEach(entries []*Log) []interface{} {
	responses := make([]interface{}, len(entries))
	for i, e := range entries {
		switch e.Type {
		case LogCommand:
			start := a.stamp()
			a.r.fsmCall.begin("FSM.Apply", e.Index, e.Index, start)
			responses[i] = a.r.fsm.Apply(e)
			a.r.fsmCall.end()
			metrics.MeasureSince(keyFSMApply, start)
		case LogConfiguration:
			a.storeConfiguration(e)
		}
	}
	return responses
}

// storeConfiguration hands a configuration entry to a ConfigurationStore.
func (a *fsmApplier) storeConfiguration(e *Log) {
	if a.configStore == nil {
		return
	}
	c, err := decodeConfiguration(e.Data)
	if err != nil {
		a.r.logger.Error("not storing undecodable configuration", "index", e.Index, "error", err)
		return
	}
	start := time.Now()
	a.r.fsmCall.begin("ConfigurationStore.StoreConfiguration", e.Index, e.Index, start)
	a.configStore.StoreConfiguration(e.Index, c)
	a.r.fsmCall.end()
	metrics.MeasureSince([]string{"raft", "fsm", "store_config"}, start)
}

// applyBatch hands command and configuration entries to a BatchingFSM in
// one call and returns one response per entry (nil for the others).
func (a *fsmApplier) applyBatch(entries []*Log) []interface{} {
	responses := make([]interface{}, len(entries))
	batch := make([]*Log, 0, len(entries))
	at := make([]int, 0, len(entries))
	for i, e := range entries {
		if e.Type == LogCommand || e.Type == LogConfiguration {
			batch = append(batch, e)
			at = append(at, i)
		}
	}
	if len(batch) == 0 {
		return responses
	}
	start := time.Now()
	a.r.fsmCall.begin("BatchingFSM.ApplyBatch", batch[0].Index, batch[len(batch)-1].Index, start)
	got := a.batching.ApplyBatch(batch)
	a.r.fsmCall.end()
	metrics.MeasureSince(keyFSMApplyBatch, start)
	metrics.AddSample(keyFSMApplyBatchNum, float32(len(batch)))
	if len(got) != len(batch) {
		a.r.logger.Error("BatchingFSM.ApplyBatch returned the wrong number of responses",
			"entries", len(batch), "responses", len(got))
	}
	for j := range min(len(got), len(batch)) {
		responses[at[j]] = got[j]
	}
	return responses
}

// answerUnrestoredInstalls answers ErrRaftShutdown to the InstallSnapshot
// RPCs of restore tasks left on fsmCh, which the FSM goroutine stopped
// before taking. Called once the node's goroutines have stopped.
func answerUnrestoredInstalls(fsmCh chan *fsmTask) {
	for {
		select {
		case t := <-fsmCh:
			if t.answer != nil {
				t.answer.respond(ErrRaftShutdown)
			}
		default:
			return
		}
	}
}
