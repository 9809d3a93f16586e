package raft

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Future is the pending result of an operation that completes later.
type Future interface {
	// Error blocks until the operation finished and returns its error, nil
	// on success. It may be called any number of times, from any number of
	// goroutines, and always returns the same value. It always returns:
	// if the node shuts down first, it returns ErrRaftShutdown.
	Error() error
}

// IndexFuture is a Future for an operation that created a log entry.
type IndexFuture interface {
	Future

	// Index returns the entry's index once Error returned nil, else 0.
	Index() uint64
}

// ApplyFuture is the Future of Apply, ApplyLog and Barrier.
type ApplyFuture interface {
	IndexFuture

	// Response returns what the FSM's Apply returned for the entry, once
	// Error returned nil. An FSM reports its own failures here, not through
	// Error.
	Response() interface{}
}

// ConfigurationFuture is the Future of GetConfiguration.
type ConfigurationFuture interface {
	IndexFuture

	// Configuration returns the latest configuration once Error returned
	// nil.
	Configuration() Configuration
}

// SnapshotFuture is the Future of Snapshot.
type SnapshotFuture interface {
	Future

	// Open opens the snapshot that was taken. It works once Error returned
	// nil; the caller must close the reader.
	Open() (*SnapshotMeta, io.ReadCloser, error)
}

// LeadershipTransferFuture is the Future of LeadershipTransfer and
// LeadershipTransferToServer.
type LeadershipTransferFuture interface {
	Future
}

// errorFuture is a Future that failed before it started.
type errorFuture struct {
	err error
}

func (e errorFuture) Error() error          { return e.err }
func (e errorFuture) Index() uint64         { return 0 }
func (e errorFuture) Response() interface{} { return nil }

// deferError is the completion shared by every future that raft answers
// later. It is answered exactly once; Error waits for the answer, or for
// the node to have stopped without answering, which means ErrRaftShutdown.
type deferError struct {
	// doneCh is closed by respond after err is set.
	doneCh chan struct{}
	err    error
	once   sync.Once
	// stoppedCh is closed once every goroutine of the node that might
	// answer this future has exited. Nil for futures not tied to a node.
	stoppedCh <-chan struct{}
}

func (d *deferError) init(stoppedCh <-chan struct{}) {
	d.doneCh = make(chan struct{})
	d.stoppedCh = stoppedCh
}

// respond answers the future; only the first answer counts.
func (d *deferError) respond(err error) {
	d.once.Do(func() {
		d.err = err
		close(d.doneCh)
	})
}

// Error waits for the answer.
func (d *deferError) Error() error {
	select {
	case <-d.doneCh:
		return d.err
	case <-d.stoppedCh:
		// Nothing can answer any more, but an answer may have raced with
		// the stop.
		select {
		case <-d.doneCh:
			return d.err
		default:
			d.respond(ErrRaftShutdown)
			return d.err
		}
	}
}

// answered reports whether the future has its answer.
func (d *deferError) answered() bool {
	select {
	case <-d.doneCh:
		return true
	default:
		return false
	}
}

// logFuture is the future of an entry appended through the leader: Apply,
// ApplyLog, Barrier, and the configuration and no-op entries raft appends
// itself.
type logFuture struct {
	deferError
	// enqueueState is the request's hand-off to the run loop (enqueue.go).
	enqueueState
	log      Log
	response interface{}
	// dispatched is when the leader took the entry into a batch.
	dispatched time.Time
}

func (l *logFuture) Index() uint64         { return l.log.Index }
func (l *logFuture) Response() interface{} { return l.response }

// shutdownFuture is returned by Shutdown. Its Error waits until the node's
// goroutines have stopped and the transport is closed, and is always nil.
type shutdownFuture struct {
	raft *Raft
}

func (s *shutdownFuture) Error() error {
	s.raft.waitStopped()
	return nil
}

// configurationFuture answers GetConfiguration.
type configurationFuture struct {
	deferError
	configurations configurations
}

func (c *configurationFuture) Index() uint64 { return 0 }

func (c *configurationFuture) Configuration() Configuration {
	return c.configurations.latest
}

// configurationChangeFuture carries a membership change to the leader and
// is answered once the new configuration entry commits.
type configurationChangeFuture struct {
	deferError
	req   configurationChangeRequest
	index uint64
}

func (c *configurationChangeFuture) Index() uint64 { return c.index }

// verifyFuture carries a VerifyLeader request.
type verifyFuture struct {
	deferError
}

// readIndexFuture carries a ReadIndex request. index is set by the run
// loop before the future is answered.
type readIndexFuture struct {
	deferError
	index uint64
	// lease is set by ReadLease: the leader may answer from its lease
	// (lease.go) instead of confirming with a quorum.
	lease bool
	// remote is set for a follower's ReadIndex RPC (follower_read.go): it
	// is answered once confirmed, without waiting for this node's FSM.
	remote bool
	// calls counts the ReadIndex calls that share this future, made on
	// this node while it waited in the intake (read_intake.go); 0 for a
	// future made for one request only. Written under the intake's lock
	// until the run loop takes the future.
	calls int
	// shared is set, before the future is handed out, on a future that
	// ReadIndex calls share (read_intake.go): its Error waits for the
	// answer alone, and answerOnStop answers it if the node stops first.
	shared bool
}

// callers returns how many calls on this node this future answers.
func (f *readIndexFuture) callers() int { return max(f.calls, 1) }

// Error waits for the answer. The callers of a shared future wait for the
// answer only: answerOnStop gives it one if the node stops first.
func (f *readIndexFuture) Error() error {
	if !f.shared {
		return f.deferError.Error()
	}
	<-f.doneCh
	return f.err
}

// answerOnStop answers a shared future ErrRaftShutdown if the node stops
// without answering it, as deferError.Error does for the futures that
// wait for the stop themselves. It returns once the future is answered.
func (f *readIndexFuture) answerOnStop() {
	select {
	case <-f.doneCh:
	case <-f.stoppedCh:
		// respond keeps an answer that raced with the stop.
		f.respond(ErrRaftShutdown)
	}
}

func (f *readIndexFuture) Index() uint64 { return f.index }

// bootstrapFuture carries a live BootstrapCluster request.
type bootstrapFuture struct {
	deferError
	configuration Configuration
}

// leadershipTransferFuture carries a leadership transfer request.
type leadershipTransferFuture struct {
	deferError
	id      *ServerID
	address *ServerAddress
}

// userSnapshotFuture carries a Snapshot request; once answered, it opens
// the snapshot that was taken.
type userSnapshotFuture struct {
	deferError
	// opener opens the snapshot taken; set before the future is answered.
	opener func() (*SnapshotMeta, io.ReadCloser, error)
}

func (u *userSnapshotFuture) Open() (*SnapshotMeta, io.ReadCloser, error) {
	if u.opener == nil {
		return nil, nil, fmt.Errorf("no snapshot available")
	}
	defer func() { u.opener = nil }()
	return u.opener()
}

// userRestoreFuture carries a Restore request.
type userRestoreFuture struct {
	deferError
	meta   *SnapshotMeta
	reader io.Reader
}

// appendFuture is the AppendFuture of the in-memory and network
// pipelines.
type appendFuture struct {
	deferError
	start time.Time
	args  *AppendEntriesRequest
	resp  *AppendEntriesResponse
}

func newAppendFuture(args *AppendEntriesRequest, resp *AppendEntriesResponse) *appendFuture {
	f := &appendFuture{start: time.Now(), args: args, resp: resp}
	f.init(nil)
	return f
}

func (a *appendFuture) Start() time.Time                 { return a.start }
func (a *appendFuture) Request() *AppendEntriesRequest   { return a.args }
func (a *appendFuture) Response() *AppendEntriesResponse { return a.resp }
