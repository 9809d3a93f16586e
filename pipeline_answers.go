package raft

import "sync"

// directAnswerPipeline is implemented by this package's pipelines
// (net_pipeline.go, inmem_transport.go). Their goroutine that answers
// futures hands each answered one to the replicator's handler itself, in
// order, instead of delivering it on Consumer() to a collector goroutine
// of the replicator's: one goroutine hand-off less per answer on the way
// to a commit. A user's pipeline still goes through Consumer().
type directAnswerPipeline interface {
	// deliverTo makes the pipeline call handle with every answered
	// future, in order, instead of sending it on Consumer(). It must be
	// called before the pipeline's first AppendEntries, and at most once.
	deliverTo(handle func(AppendFuture))
}

// directAnswers is the handler a replicator gives a directAnswerPipeline:
// collectPipeline's work, run on the pipeline's goroutine. After stop, it
// touches nothing of the replicator's, so that nothing of a stopped
// replicator runs on a goroutine the node does not track.
type directAnswers struct {
	s        *replicator
	failedCh chan struct{}

	mu      sync.Mutex
	stopped bool
	failed  bool
}

// handle records one answer; after the first that is not a success it
// closes failedCh and ignores the rest, as collectPipeline does.
func (d *directAnswers) handle(f AppendFuture) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped || d.failed {
		return
	}
	if !d.s.handlePipelined(f) {
		d.failed = true
		close(d.failedCh)
	}
}

// stop waits for a handle call in progress and makes later ones do
// nothing.
func (d *directAnswers) stop() {
	d.mu.Lock()
	d.stopped = true
	d.mu.Unlock()
}
