package raft

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-metrics"
)

// Snapshots and log compaction (Raft paper §7).
//
// Every server snapshots on its own. The snapshot goroutine wakes at a
// random point in [SnapshotInterval, 2×SnapshotInterval) and takes one when
// SnapshotThreshold entries accumulated since the last; Snapshot() asks it
// directly. Taking a snapshot has three stages, none of which blocks the
// run loop or later applies:
//
//  1. the FSM goroutine calls FSM.Snapshot, between two applies, so the
//     snapshot is exactly the state at the last entry it applied;
//  2. the snapshot goroutine persists it to the SnapshotStore, while the
//     FSM goes on applying;
//  3. the run loop records the snapshot and queues the compaction of the
//     log on the log writer, keeping TrailingLogs entries, and never the
//     entries a follower still needs after the snapshot it is being sent
//     (which is what stops a slow follower from chasing snapshot after
//     snapshot forever).
//
// Installing a snapshot received from the leader is the reverse: a
// goroutine streams it from the transport into the store, the run loop
// resets the log around it, and the FSM goroutine restores it, in order
// with the entries applied before and after.
//
// Snapshots are written into the store one at a time (snapshotWriteCh),
// and a snapshot of the node's own FSM is dropped if a newer one was
// installed or restored into the store since the FSM took it: a store may
// keep only its newest snapshot, which must be the one the node adopted.

// snapshotRequest asks the FSM goroutine for a snapshot of the FSM.
type snapshotRequest struct {
	// done receives the answer; it has room for it.
	done chan snapshotResponse
	// user is set for Raft.Snapshot: a snapshot is taken even when nothing
	// was applied since the last one, once the FSM has been given anything
	// since the node started (fsmApplier.fed). The periodic snapshots skip
	// that case.
	user bool
}

type snapshotResponse struct {
	snapshot    FSMSnapshot
	index, term uint64
	err         error
}

// snapshotTaken reports a persisted snapshot to the run loop, which closes
// recorded once the node knows of it.
type snapshotTaken struct {
	id          string
	index, term uint64
	// user is set for Raft.Snapshot: recorded is closed only once the log
	// compaction the snapshot allows has run (snapshot_compaction_wait.go).
	user     bool
	recorded chan struct{}
}

// runSnapshots is the snapshot goroutine.
func (r *Raft) runSnapshots() {
	for {
		timer := time.NewTimer(randomDuration(r.config().SnapshotInterval))
		select {
		case <-timer.C:
			if !r.shouldSnapshot() {
				continue
			}
			if _, err := r.takeSnapshot(false); err != nil && !errors.Is(err, ErrNothingNewToSnapshot) && !errors.Is(err, ErrRaftShutdown) {
				r.logger.Error("failed to take snapshot", "error", err)
			}
		case f := <-r.userSnapshotCh:
			timer.Stop()
			id, err := r.takeSnapshot(true)
			if err != nil && !errors.Is(err, ErrNothingNewToSnapshot) {
				r.logger.Error("failed to take snapshot", "error", err)
			}
			if err == nil {
				f.opener = func() (*SnapshotMeta, io.ReadCloser, error) { return r.snapshots.Open(id) }
			}
			f.respond(err)
		case <-r.shutdownCh:
			timer.Stop()
			return
		}
	}
}

// shouldSnapshot reports whether enough entries accumulated since the last
// snapshot.
func (r *Raft) shouldSnapshot() bool {
	last, _ := r.pub.lastLog()
	snap, _ := r.pub.lastSnapshot()
	return last >= snap && last-snap >= r.config().SnapshotThreshold
}

// takeSnapshot snapshots the FSM, persists the snapshot and has the run
// loop compact the log. It returns the new snapshot's ID. user is set for
// Raft.Snapshot (see snapshotRequest).
func (r *Raft) takeSnapshot(user bool) (string, error) {
	defer metrics.MeasureSince([]string{"raft", "snapshot", "takeSnapshot"}, time.Now())

	req := snapshotRequest{done: make(chan snapshotResponse, 1), user: user}
	select {
	case r.fsmSnapshotCh <- req:
	case <-r.shutdownCh:
		return "", ErrRaftShutdown
	}
	// The FSM goroutine answers every request it took, shutdown or not,
	// and a snapshot it hands back must be released: wait for the answer.
	snap := <-req.done
	if snap.err == nil && r.stopping.Load() {
		snap.snapshot.Release()
		return "", ErrRaftShutdown
	}
	if snap.err != nil {
		if errors.Is(snap.err, ErrNothingNewToSnapshot) {
			return "", snap.err
		}
		return "", fmt.Errorf("failed to start snapshot: %v", snap.err)
	}
	defer snap.snapshot.Release()

	// The configuration in effect at the snapshot's index is the committed
	// one, provided it was appended at or before that index.
	cf := &configurationFuture{}
	cf.init(r.stoppedCh)
	select {
	case r.eventCh <- cf:
	case <-r.shutdownCh:
		return "", ErrRaftShutdown
	}
	if err := cf.Error(); err != nil {
		return "", err
	}
	committed, committedIndex := cf.configurations.committed, cf.configurations.committedIndex
	if snap.index < committedIndex {
		return "", fmt.Errorf("cannot take snapshot now, wait until the configuration entry at %v has been applied (have applied %v)",
			committedIndex, snap.index)
	}

	id, err := r.writeOwnSnapshot(snap, committed, committedIndex)
	if err != nil {
		return "", err
	}

	taken := snapshotTaken{id: id, index: snap.index, term: snap.term, user: user, recorded: make(chan struct{})}
	select {
	case r.eventCh <- taken:
	case <-r.shutdownCh:
		return "", ErrRaftShutdown
	}
	select {
	case <-taken.recorded:
	case <-r.shutdownCh:
		return "", ErrRaftShutdown
	}
	r.logger.Info("snapshot complete up to", "index", snap.index)
	return id, nil
}

// writeOwnSnapshot persists a snapshot of the node's FSM into the store and
// returns its ID, unless a snapshot installed from the leader or restored
// by a user, newer than it, was written into the store since the FSM took
// it: that one must stay the store's newest.
func (r *Raft) writeOwnSnapshot(snap snapshotResponse, c Configuration, cIndex uint64) (string, error) {
	if err := r.holdSnapshotWrites(); err != nil {
		return "", err
	}
	defer r.releaseSnapshotWrites()
	if snap.index < r.writtenUpTo {
		r.logger.Info("not writing a snapshot older than one installed or restored meanwhile",
			"index", snap.index, "newer", r.writtenUpTo)
		return "", ErrNothingNewToSnapshot
	}
	if u := r.pub.unconfirmed.Load(); u != 0 && snap.index <= u {
		r.logger.Info("not writing a snapshot of a state not yet known to be committed",
			"index", snap.index, "unconfirmed-snapshot", u)
		return "", ErrNothingNewToSnapshot
	}
	r.logger.Info("starting snapshot up to", "index", snap.index)
	start := time.Now()
	sink, err := r.snapshots.Create(SnapshotVersionMax, snap.index, snap.term, c, cIndex, r.trans)
	if err != nil {
		return "", fmt.Errorf("failed to create snapshot: %v", err)
	}
	metrics.MeasureSince([]string{"raft", "snapshot", "create"}, start)
	start = time.Now()
	if err := snap.snapshot.Persist(sink); err != nil {
		sink.Cancel()
		return "", fmt.Errorf("failed to persist snapshot: %v", err)
	}
	metrics.MeasureSince([]string{"raft", "snapshot", "persist"}, start)
	if err := sink.Close(); err != nil {
		return "", fmt.Errorf("failed to close snapshot: %v", err)
	}
	return sink.ID(), nil
}

// holdSnapshotWrites waits until nobody else is writing a snapshot into
// the store (see snapshotWriteCh); releaseSnapshotWrites lets the next
// writer go.
func (r *Raft) holdSnapshotWrites() error {
	select {
	case r.snapshotWriteCh <- struct{}{}:
		return nil
	case <-r.shutdownCh:
		return ErrRaftShutdown
	}
}

func (r *Raft) releaseSnapshotWrites() { <-r.snapshotWriteCh }

// onSnapshotTaken records a persisted snapshot and compacts the log
// behind it.
func (r *Raft) onSnapshotTaken(s snapshotTaken) {
	if s.index > r.st.lastSnapshotIndex {
		r.setLastSnapshot(s.index, s.term)
	}
	r.compactLog(s.index)
	if s.user && r.compactionPending() {
		r.st.snapshotWaiters = append(r.st.snapshotWaiters, snapshotWaiter{upTo: r.st.compactedTo, recorded: s.recorded})
		return
	}
	close(s.recorded)
}

// setLastSnapshot records the newest snapshot. What it covers is durable,
// whatever the log store holds (invariant I3).
func (r *Raft) setLastSnapshot(index, term uint64) {
	r.st.lastSnapshotIndex, r.st.lastSnapshotTerm = index, term
	r.st.writes.floor = max(r.st.writes.floor, index)
	r.st.writes.durable = max(r.st.writes.durable, r.st.writes.floor)
	r.pub.setLastSnapshot(index, term)
}

// compactLog queues the deletion of log entries covered by the snapshot
// at snapIndex, keeping TrailingLogs entries behind the end of the log and
// every entry a follower needs after the snapshot it is being sent.
func (r *Raft) compactLog(snapIndex uint64) {
	last := r.st.log.lastIndex
	trailing := r.config().TrailingLogs
	if last <= trailing {
		return
	}
	upTo := min(snapIndex, last-trailing)
	if r.st.lead != nil {
		for _, repl := range r.st.lead.repls {
			if installing := repl.installing.Load(); installing > 0 {
				// Keep the snapshot's last entry too: the follower's next
				// AppendEntries names its term.
				upTo = min(upTo, installing-1)
			}
		}
	}
	if upTo == 0 || upTo <= r.st.compactedTo {
		return
	}
	r.st.compactedTo = upTo
	r.queueWrite(newCompaction(upTo))
}

// --- Installing a snapshot sent by the leader. ---

// pendingInstall is a snapshot being received from the leader.
type pendingInstall struct {
	rpc  RPC
	req  *InstallSnapshotRequest
	resp *InstallSnapshotResponse
	// term is the node's term when the install started; a later term makes
	// the result stale.
	term          uint64
	configuration Configuration
	configIndex   uint64
	// stale is set by the run loop when its term moves on (setTerm): the
	// receiving goroutine then cancels the sink instead of closing it, so
	// that a restart does not load a snapshot this node never adopted,
	// which may be a user restore the cluster never commits
	// (unconfirmed_snapshot.go).
	stale atomic.Bool
}

// errStaleInstall reports a received snapshot cancelled because the
// node's term moved on while it streamed in.
var errStaleInstall = errors.New("the term moved on while the snapshot streamed in")

// installResult reports the end of a snapshot's reception.
type installResult struct {
	install *pendingInstall
	id      string
	err     error
}

// receiveSnapshot streams a snapshot from the transport into the snapshot
// store, on its own goroutine, and reports to the run loop.
func (r *Raft) receiveSnapshot(in *pendingInstall) {
	res := installResult{install: in}
	defer func() {
		// Whatever happened, the stream must be left at its end.
		io.Copy(io.Discard, in.rpc.Reader)
		select {
		case r.eventCh <- res:
		case <-r.shutdownCh:
			in.rpc.Respond(in.resp, ErrRaftShutdown)
		}
	}()
	req := in.req
	if err := r.holdSnapshotWrites(); err != nil {
		res.err = err
		return
	}
	defer r.releaseSnapshotWrites()
	sink, err := r.snapshots.Create(SnapshotVersionMax, req.LastLogIndex, req.LastLogTerm, in.configuration, in.configIndex, r.trans)
	if err != nil {
		res.err = fmt.Errorf("failed to create snapshot: %v", err)
		return
	}
	n, err := copyInChunks(sink, in.rpc.Reader)
	if err != nil {
		sink.Cancel()
		res.err = fmt.Errorf("failed to copy snapshot: %w", err)
		return
	}
	if n != req.Size {
		sink.Cancel()
		r.logger.Error("failed to receive whole snapshot", "received", n, "size", req.Size)
		res.err = fmt.Errorf("short read")
		return
	}
	if in.stale.Load() {
		sink.Cancel()
		res.err = errStaleInstall
		return
	}
	if err := sink.Close(); err != nil {
		res.err = fmt.Errorf("failed to finalize snapshot: %w", err)
		return
	}
	r.writtenUpTo = max(r.writtenUpTo, req.LastLogIndex)
	r.logger.Info("copied to local snapshot", "bytes", n)
	res.id = sink.ID()
}

// installChunk is how much a received snapshot is read before it is
// handed to the sink: a FileSnapshotSink writes chunks of its buffer's
// size straight to its file, without copying them into the buffer.
const installChunk = snapshotBufferSize

// copyInChunks copies src to dst until src ends, in writes of installChunk
// bytes (the last one shorter), and returns how many bytes it copied. A
// goroutine reads the next chunk from src while dst stores the last one,
// so that receiving a snapshot from the network overlaps with writing and
// hashing it. Only that goroutine reads src, and it has stopped when
// copyInChunks returns, so the caller may read src again (to drain it).
func copyInChunks(dst io.Writer, src io.Reader) (int64, error) {
	type chunk struct {
		buf []byte
		n   int
		err error
	}
	const buffers = 2
	free := make(chan []byte, buffers)
	for range buffers {
		free <- make([]byte, installChunk)
	}
	// full has room for every buffer: the reader never waits to hand
	// one over.
	full := make(chan chunk, buffers)
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			var buf []byte
			select {
			case <-stop:
				return
			case buf = <-free:
			}
			n, err := io.ReadFull(src, buf)
			full <- chunk{buf: buf, n: n, err: err}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		close(stop)
		<-stopped
	}()
	var total int64
	for {
		c := <-full
		if c.n > 0 {
			w, werr := dst.Write(c.buf[:c.n])
			total += int64(w)
			if werr != nil {
				return total, werr
			}
			if w != c.n {
				return total, io.ErrShortWrite
			}
		}
		switch {
		case c.err == io.EOF || c.err == io.ErrUnexpectedEOF:
			return total, nil
		case c.err != nil:
			return total, c.err
		}
		free <- c.buf
	}
}

// onInstallDone finishes installing a received snapshot: the log is reset
// around it, the FSM restores it, and the leader is answered.
func (r *Raft) onInstallDone(res installResult) {
	in := res.install
	r.st.installing = nil
	if errors.Is(res.err, errStaleInstall) {
		in.resp.Term = r.st.currentTerm
		in.rpc.Respond(in.resp, nil)
		return
	}
	if res.err != nil {
		r.logger.Error("failed to install snapshot", "error", res.err)
		in.rpc.Respond(in.resp, res.err)
		return
	}
	if r.st.currentTerm != in.term || r.st.role != Follower {
		// A newer leader appeared meanwhile (as the sink closed: before,
		// it is cancelled); the snapshot stays in the store, and a
		// restart may load it: if it is a user restore the cluster never
		// commits, the node stops then (unconfirmed_snapshot.go).
		in.resp.Term = r.st.currentTerm
		in.rpc.Respond(in.resp, nil)
		return
	}
	req := in.req
	if req.LastLogIndex <= r.st.commitIndex && req.LastLogIndex <= r.st.lastSnapshotIndex {
		// This node took a snapshot of its own at or past it while it
		// streamed in (installSnapshot checked only on arrival): it already
		// holds everything the snapshot does, and adopting it would move
		// its snapshot, and its log if compacted, back.
		r.logger.Info("a received snapshot is no newer than this node's own: not adopted",
			"index", req.LastLogIndex, "own-snapshot", r.st.lastSnapshotIndex)
		in.resp.Success = true
		in.rpc.Respond(in.resp, nil)
		return
	}
	in.resp.Success = true
	answer := &installAnswer{rpc: in.rpc, resp: in.resp}
	if t := r.adoptSnapshot(res.id, req.LastLogIndex, req.LastLogTerm, in.configuration, in.configIndex); t != nil && t != r.st.heldRestore {
		// As in the reference, the leader hears of the install once the
		// FSM has restored the snapshot: until then it sends this node
		// nothing more, whose storing would only compete with the restore
		// for the CPU and the disk (see installAnswer).
		t.answer = answer
	} else {
		// Nothing to restore, or a restore held until the leader shows
		// the snapshot committed, which it can only do once it has heard
		// of the install (unconfirmed_snapshot.go): the snapshot is
		// stored, which is what the answer vouches for.
		answer.respond(nil)
	}
	r.setLastContact(r.clock.now())
	r.logger.Info("installed remote snapshot", "index", req.LastLogIndex, "term", req.LastLogTerm)
}

// installAnswer is the answer to an InstallSnapshot whose snapshot the
// FSM goroutine restores: it answers once the restore is done (fsm.go),
// or ErrRaftShutdown when the node stops first (exitRunLoop for tasks the
// run loop still holds, waitStopped for those left on fsmCh). Whichever
// comes first answers; the others do nothing.
type installAnswer struct {
	once sync.Once
	rpc  RPC
	resp *InstallSnapshotResponse
}

// respond answers the RPC the first time it is called: a failed restore
// or a shutdown answers Success false with the error.
func (a *installAnswer) respond(err error) {
	a.once.Do(func() {
		if err != nil {
			a.resp.Success = false
		}
		a.rpc.Respond(a.resp, err)
	})
}

// adoptSnapshot makes a stored snapshot the node's state: the snapshot
// adopt reset (write_path_invariants.go). When the log holds the
// snapshot's last entry it is kept, and only compacted (Raft paper, figure
// 13, step 6); otherwise it is discarded. The FSM restores the snapshot
// unless it is already past it; committed entries whose futures this node
// still holds (it led when they were appended) are applied first, so
// those futures get their responses. It returns the restore task it
// queued, if any.
func (r *Raft) adoptSnapshot(id string, index, term uint64, c Configuration, cIndex uint64) *fsmTask {
	// The entry task built but not taken may reach past the snapshot, and
	// the restore would then roll the FSM back: rebuild it after.
	r.takeBackPendingFSM()
	held, err := r.termAt(index)
	keep := err == nil && held == term
	r.applyFuturesBefore(index)
	r.setLastSnapshot(index, term)
	if keep {
		r.compactLog(index)
		if r.st.configs.committedIndex < cIndex {
			r.st.configs.committed, r.st.configs.committedIndex = c, cIndex
		}
		if r.st.configs.latestIndex < cIndex {
			r.setLatestConfiguration(c, cIndex)
		}
	} else {
		last := r.st.log.lastIndex
		r.st.log.reset(index, term)
		r.queueWrite(&writeOp{deleteFrom: 1, deleteTo: max(last, index), last: index, oldLogs: true})
		r.pub.setLastLog(index, term)
		r.st.configs.committed, r.st.configs.committedIndex = c, cIndex
		r.setLatestConfiguration(c, cIndex)
	}
	unconfirmed := index > r.st.commitIndex
	if unconfirmed {
		r.st.commitIndex = index
		r.pub.commitIndex.Store(index)
		// A leader may send a user restore that its cluster never
		// commits: until one shows it committed, reads wait, in st.reads,
		// and so does the FSM's restore (unconfirmed_snapshot.go). One
		// at or below the commit index is known committed.
		r.markUnconfirmed(index)
	}
	if index > r.st.dispatched {
		// The snapshot was received by this node's own sink a moment ago.
		t := &fsmTask{restoreID: id, from: index, to: index, received: true}
		r.st.dispatched = index
		if unconfirmed {
			// A restore held for an older unconfirmed snapshot is
			// superseded: this one covers more.
			r.st.heldRestore = t
		} else {
			r.st.heldRestore = nil
			r.st.fsmQueue = append(r.st.fsmQueue, t)
		}
		return t
	}
	return nil
}

// applyFuturesBefore hands the FSM goroutine the committed entries up to
// the last future at or below index, with their futures, ahead of a
// snapshot at index: a snapshot moves dispatched past them, and no entry
// task would answer those futures after it. They are taken from memLog,
// which holds every entry not yet dispatched unless a resync emptied it;
// then the futures are answered ErrLeadershipLost (the outcome is unknown
// to this node: the entry is applied, but its response is lost).
func (r *Raft) applyFuturesBefore(index uint64) {
	n := 0
	for n < len(r.st.futures) && r.st.futures[n].log.Index <= index {
		n++
	}
	if n == 0 {
		return
	}
	futures := append([]*logFuture(nil), r.st.futures[:n]...)
	clear(r.st.futures[:n])
	r.st.futures = r.st.futures[n:]
	from, to := r.st.dispatched+1, futures[n-1].log.Index
	if to > r.st.commitIndex || r.st.log.held() == 0 || r.st.log.firstHeld() > from || to > r.st.log.lastIndex {
		for _, f := range futures {
			f.respond(ErrLeadershipLost)
		}
		return
	}
	t := &fsmTask{from: from, to: to, futures: futures, entries: make([]*Log, 0, to-from+1)}
	for i := from; i <= to; i++ {
		l, _ := r.st.log.get(i)
		t.entries = append(t.entries, l)
	}
	r.st.fsmQueue = append(r.st.fsmQueue, t)
	r.st.dispatched = to
}

// --- Restoring a user's snapshot on the leader (Raft.Restore). ---

// userRestore is a Restore in progress on the leader. Owned by the run
// loop; only one runs at a time, and applies and membership changes wait
// until it ends. Its stages: the snapshot is copied into the store; once
// every entry committed when it started has been handed to the FSM
// goroutine (after), adoptUserRestore makes it the node's snapshot and
// appends the no-op after it. The FSM restores it only once that no-op
// commits (unconfirmed_snapshot.go).
type userRestore struct {
	future      *userRestoreFuture
	index, term uint64
	id          string
	after       uint64
	copied      bool
	// termStart is the leader's termStart before the restore moved it
	// past the snapshot; a restore that fails puts it back.
	termStart uint64
	// closing is set once the copy's sink is being closed: from then on
	// the store may hold the snapshot at (index, term), whatever Close
	// answers.
	closing atomic.Bool
	// abandoned is set by the run loop when leadership ends first; the
	// copying goroutine then cancels the copy instead of closing it, so
	// the store never holds a snapshot the cluster did not take.
	abandoned atomic.Bool
}

// restoreCopied reports that a user's snapshot was copied into the store.
type restoreCopied struct {
	restore *userRestore
	err     error
}

// onUserRestore starts restoring a user's snapshot: entries in flight
// that are not committed are aborted, and the snapshot is copied into the
// store on another goroutine. Committed ones are applied first, with their
// responses, as the reference does. The snapshot becomes the state at the
// next index after everything the log holds, so followers must install it
// (Raft thesis §5.4).
func (r *Raft) onUserRestore(f *userRestoreFuture) {
	if err := r.leaderRefusal(); err != nil {
		f.respond(err)
		return
	}
	meta := f.meta
	if meta.Version < SnapshotVersionMin || meta.Version > SnapshotVersionMax {
		f.respond(fmt.Errorf("unsupported snapshot version %d", meta.Version))
		return
	}
	if !r.st.configs.stable() {
		f.respond(fmt.Errorf("cannot restore snapshot now, wait until the configuration entry at %v has been applied (have applied %v)",
			r.st.configs.latestIndex, r.st.configs.committedIndex))
		return
	}
	kept := r.st.futures[:0]
	for _, lf := range r.st.futures {
		if lf.log.Index <= r.st.commitIndex {
			kept = append(kept, lf)
			continue
		}
		lf.respond(ErrAbortedByRestore)
	}
	clear(r.st.futures[len(kept):])
	r.st.futures = kept
	index := max(meta.Index, r.st.log.lastIndex, r.st.lastSnapshotIndex) + 1
	ur := &userRestore{future: f, index: index, term: r.st.currentTerm, after: r.st.commitIndex, termStart: r.st.lead.termStart}
	// No lease read is answered from here until the restore commits
	// (leaseHoldable): withdraw the view before the FSM can change.
	r.revokeLease()
	r.st.restoring = ur
	// Nothing commits, and no read or lease is answered, until the no-op
	// after the snapshot does (unconfirmed_snapshot.go).
	r.st.lead.termStart = max(r.st.lead.termStart, index+1)
	configuration, configIndex := r.st.configs.latest.Clone(), r.st.configs.latestIndex
	r.routines.goFunc(func() {
		err := r.copyUserSnapshot(ur, configuration, configIndex)
		select {
		case r.eventCh <- restoreCopied{restore: ur, err: err}:
		case <-r.shutdownCh:
		}
	})
}

// copyUserSnapshot copies a user's snapshot into the snapshot store.
func (r *Raft) copyUserSnapshot(ur *userRestore, c Configuration, cIndex uint64) error {
	meta := ur.future.meta
	if err := r.holdSnapshotWrites(); err != nil {
		return err
	}
	defer r.releaseSnapshotWrites()
	sink, err := r.snapshots.Create(meta.Version, ur.index, ur.term, c, cIndex, r.trans)
	if err != nil {
		return fmt.Errorf("failed to create snapshot: %v", err)
	}
	n, err := io.Copy(sink, ur.future.reader)
	if err != nil {
		sink.Cancel()
		return fmt.Errorf("failed to write snapshot: %v", err)
	}
	if n != meta.Size {
		sink.Cancel()
		return fmt.Errorf("failed to write snapshot, size didn't match (%d != %d)", n, meta.Size)
	}
	if ur.abandoned.Load() {
		sink.Cancel()
		return ErrLeadershipLost
	}
	ur.closing.Store(true)
	if err := sink.Close(); err != nil {
		return fmt.Errorf("failed to close snapshot: %v", err)
	}
	r.writtenUpTo = max(r.writtenUpTo, ur.index)
	ur.id = sink.ID()
	r.logger.Info("copied to local snapshot", "bytes", n)
	return nil
}

// onRestoreCopied adopts a copied user snapshot once the committed
// entries before it are with the FSM goroutine.
func (r *Raft) onRestoreCopied(rc restoreCopied) {
	ur := rc.restore
	if ur != r.st.restoring {
		// Leadership ended meanwhile; stopLeading answered the future.
		if rc.err == nil {
			r.logger.Warn("a user snapshot copied after leadership ended stays in the snapshot store unused",
				"id", ur.id, "index", ur.index)
		}
		return
	}
	if rc.err != nil {
		r.failUserRestore(ur, rc.err)
		return
	}
	ur.copied = true
	r.adoptUserRestore()
}

// adoptUserRestore makes the copied user snapshot this leader's state, once
// every entry committed when the restore started has been handed to the
// FSM goroutine: the user restore reset (write_path_invariants.go). The
// log continues from the snapshot, and the no-op after it is appended. The
// snapshot is committed once that no-op is (§5.4.2); until then it is
// unconfirmed and the FSM's restore of it is held (st.heldRestore), so
// that neither this node's FSM nor a read of it ever shows a state the
// next leader may not have. Restore is answered once the FSM restored it
// (confirmAsLeader, fsm.go), or with an error if the leadership ends
// first (stopLeading).
func (r *Raft) adoptUserRestore() {
	ur := r.st.restoring
	if ur == nil || !ur.copied || r.st.dispatched < ur.after {
		return
	}
	// An entry task built meanwhile holds only entries the restore
	// replaces.
	r.takeBackPendingFSM()
	r.st.restoring = nil
	r.st.log.reset(ur.index, ur.term)
	r.pub.setLastLog(ur.index, ur.term)
	r.setLastSnapshot(ur.index, ur.term)
	r.st.writes.durable = max(r.st.writes.durable, ur.index)
	r.st.lead.shared.lastIndex.Store(ur.index)
	if ml, ok := r.logs.LogStore.(MonotonicLogStore); ok && ml.IsMonotonic() {
		// A store that cannot hold gaps loses its old entries instead.
		r.st.compactedTo = ur.index
		r.queueWrite(&writeOp{compactTo: ur.index, last: ur.index, oldLogs: true})
	}
	r.logger.Info("adopted user snapshot; the FSM restores it once the no-op after it commits", "index", ur.index)
	r.markUnconfirmed(ur.index)
	r.st.heldRestore = &fsmTask{restoreID: ur.id, from: ur.index, to: ur.index}
	r.st.dispatched = ur.index
	r.st.lead.restored, r.st.lead.restoredAt = ur.future, ur.index
	noop := &logFuture{log: Log{Type: LogNoop}}
	noop.init(r.stoppedCh)
	r.appendAsLeader([]*logFuture{noop})
}

// endUserRestore ends a user restore when this node stops leading, as part
// of the step-down reset: the future fails with err and a copy in progress
// is cancelled. The FSM never restores the snapshot, which the cluster
// never saw.
func (r *Raft) endUserRestore(err error) {
	ur := r.st.restoring
	if ur == nil {
		return
	}
	r.st.restoring = nil
	ur.abandoned.Store(true)
	ur.future.respond(err)
}

// failUserRestore ends a user restore that failed while this node still
// leads: the leader's termStart goes back to where it was, and the reads
// held meanwhile go on.
//
// If the store may hold the snapshot (its sink was being closed), the
// leader steps down: a restart may load
// that snapshot, at (index, term), and it must never match a log entry of
// this leader's at index, which the next entry it appended would be. A
// later leader's entry there has a later term, which restoreSnapshotOnStart
// and snapshotConflict (unconfirmed_snapshot.go) tell apart.
func (r *Raft) failUserRestore(ur *userRestore, err error) {
	r.st.restoring = nil
	if r.st.lead != nil && (ur.closing.Load() || ur.copied) {
		// Stepped down before the answer, so that a caller woken by it
		// sees this node a follower.
		r.logger.Error("stepping down: a failed user snapshot restore may have left its snapshot in the store",
			"index", ur.index, "term", ur.term, "error", err)
		r.becomeFollower(r.st.currentTerm)
	} else if lead := r.st.lead; lead != nil {
		lead.termStart = ur.termStart
	}
	ur.future.respond(err)
	r.releaseHeldReads()
	if r.st.lead != nil {
		r.startDeferredReads()
	}
}

// --- Restoring on start. ---

// restoreSnapshotOnStart loads the newest snapshot that opens and restores,
// as NewRaft does, skipping those that do not fit the log (strayOnStart).
// Newest is by index: the store may list by term first, and a stray of a
// higher term than the node's own newer snapshot would then come first
// (for snapshots the node adopted, both orders agree). restoreFSM false
// uses the metadata only.
func (r *Raft) restoreSnapshotOnStart(restoreFSM bool) error {
	snapshots, err := r.snapshots.List()
	if err != nil {
		return fmt.Errorf("failed to list snapshots: %w", err)
	}
	snapshots = slices.Clone(snapshots)
	slices.SortStableFunc(snapshots, func(a, b *SnapshotMeta) int { return cmp.Compare(b.Index, a.Index) })
	first, err := r.logs.FirstIndex()
	if err != nil {
		return fmt.Errorf("failed to read first log index: %w", err)
	}
	last, err := r.logs.LastIndex()
	if err != nil {
		return fmt.Errorf("failed to read last log index: %w", err)
	}
	var skipped *SnapshotMeta
	for _, meta := range snapshots {
		if why := r.strayOnStart(meta, first, last); why != "" {
			r.logger.Warn("not loading a snapshot that does not fit the log", "id", meta.ID,
				"index", meta.Index, "term", meta.Term, "why", why)
			if skipped == nil {
				skipped = meta
			}
			continue
		}
		if restoreFSM {
			if err := r.restoreFSMFrom(meta.ID); err != nil {
				r.logger.Error("failed to restore snapshot", "id", meta.ID, "error", err)
				continue
			}
		}
		c, cIndex := meta.Configuration, meta.ConfigurationIndex
		if meta.Version == 0 {
			if c, err = decodePeers(meta.Peers, r.trans); err != nil {
				return fmt.Errorf("decoding the peers of snapshot %s: %w", meta.ID, err)
			}
			cIndex = meta.Index
		}
		r.setLastSnapshot(meta.Index, meta.Term)
		r.st.configs.committed, r.st.configs.committedIndex = c, cIndex
		r.setLatestConfiguration(c, cIndex)
		r.st.commitIndex = meta.Index
		r.pub.commitIndex.Store(meta.Index)
		r.pub.appliedIndex.Store(meta.Index)
		r.st.dispatched = meta.Index
		r.restored = indexTerm{meta.Index, meta.Term}
		// It may be a user restore that never committed.
		r.markUnconfirmed(meta.Index)
		r.logger.Info("restored from snapshot", "id", meta.ID, "index", meta.Index)
		return nil
	}
	if skipped != nil && (first != 1 || last == 0) {
		// The log does not reach back to the first entry: without a
		// snapshot below it, this node cannot rebuild its state.
		return fmt.Errorf("no stored snapshot fits the log (entries %d to %d); the newest, at index %d (term %d), "+
			"was never this server's state: wipe its data and add it back", first, last, skipped.Index, skipped.Term)
	}
	if len(snapshots) > 0 && skipped == nil {
		return fmt.Errorf("failed to load any existing snapshots")
	}
	return nil
}

// strayOnStart returns why meta, a stored snapshot, is not this node's
// state, or "" when it may be. The store may hold snapshots this node
// never adopted: a user restore whose leadership ended as the copy landed,
// or whose sink's Close failed; an install whose term ended as its sink
// closed. Such a snapshot may be a user restore the cluster never
// committed. A snapshot the node adopted fits its log: an entry the log
// holds at the snapshot's index has the snapshot's term (adoptSnapshot
// keeps the log only then, a leader whose failed restore may have left a
// snapshot steps down before it appends there: failUserRestore, and a
// conflict there while the snapshot is unconfirmed stops the node:
// unconfirmed_snapshot.go), and the log, unless empty, goes on right after
// it or earlier (compaction never passes the newest snapshot). first and
// last are the log store's.
func (r *Raft) strayOnStart(meta *SnapshotMeta, first, last uint64) string {
	if last == 0 || first == 0 {
		return ""
	}
	if first > meta.Index+1 {
		return fmt.Sprintf("the log starts at %d, past the entry after it", first)
	}
	if meta.Index < first || meta.Index > last {
		return ""
	}
	var l Log
	if err := r.logs.GetLog(meta.Index, &l); err != nil {
		return ""
	}
	if l.Term != meta.Term {
		return fmt.Sprintf("the log holds an entry of term %d at its index", l.Term)
	}
	return ""
}

// restoreFSMFrom opens a stored snapshot and restores the FSM from it.
func (r *Raft) restoreFSMFrom(id string) error {
	meta, source, err := r.snapshots.Open(id)
	if err != nil {
		return fmt.Errorf("failed to open snapshot %v: %w", id, err)
	}
	defer source.Close()
	start := time.Now()
	if err := r.fsm.Restore(source); err != nil {
		return fmt.Errorf("failed to restore snapshot %v: %w", id, err)
	}
	metrics.MeasureSince([]string{"raft", "fsm", "restore"}, start)
	metrics.SetGauge([]string{"raft", "fsm", "lastRestoreDuration"}, float32(time.Since(start).Milliseconds()))
	r.logger.Info("restored FSM from snapshot", "id", id, "index", meta.Index, "size", meta.Size)
	return nil
}
