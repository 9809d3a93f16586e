package fuzzy

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumkit/raft"
)

// faultPipeline wraps the in-memory transport's AppendEntries pipeline, so
// that pipelined requests meet the same faults as the others.
//
// Requests go through three goroutines, each handling them in the order
// they were sent:
//
//   - the sender draws each request's fate and, unless it is lost or sent
//     out of order, waits out its delay and hands it to the inner pipeline
//     (a link delays the requests behind a slow one too, as TCP would);
//     a reordered request instead travels alone, as a plain AppendEntries on
//     a goroutine of its own, and may overtake the ones sent after it;
//   - the matcher takes the inner pipeline's answers, in order, and passes
//     each back over the return link, which may lose or delay it;
//   - the collector hands futures to raft in the order they were sent, as
//     the AppendPipeline contract says, failing those that got no answer
//     within the RPC timeout.
type faultPipeline struct {
	t      *faultTransport
	id     raft.ServerID
	to     raft.ServerID
	target raft.ServerAddress
	inner  raft.AppendPipeline

	// sendCh carries new requests to the sender; orderCh carries them,
	// in the same order, to the collector; innerCh carries the ones handed
	// to the inner pipeline to the matcher. Only their senders' loops send
	// on them, and none is closed: shutdownCh stops everything.
	sendCh  chan *pipeFuture
	orderCh chan *pipeFuture
	innerCh chan *pipeFuture
	// doneCh carries answered futures to raft.
	doneCh chan raft.AppendFuture
	// shutdownCh is closed once, by Close or by the transport's Close.
	shutdownCh chan struct{}
	closeOnce  sync.Once

	// raftCloses and consumers count raft's calls of Close and Consumer,
	// which it makes once per pipeline (ARCHITECTURE.md, "Calls into user
	// code"); a second one, or a send after Close, is a violation.
	raftCloses atomic.Int32
	consumers  atomic.Int32
}

func (t *faultTransport) pipelineWrapped() {}

// AppendEntriesPipeline opens a pipeline to target over the inner one.
func (t *faultTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	inner, err := t.InmemTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	const depth = 64
	p := &faultPipeline{
		t:          t,
		id:         id,
		to:         t.net.id(target),
		target:     target,
		inner:      inner,
		sendCh:     make(chan *pipeFuture, depth),
		orderCh:    make(chan *pipeFuture, depth),
		innerCh:    make(chan *pipeFuture, depth),
		doneCh:     make(chan raft.AppendFuture, depth),
		shutdownCh: make(chan struct{}),
	}
	t.mu.Lock()
	t.pipelines = append(t.pipelines, p)
	t.mu.Unlock()
	t.net.goFlight(p.runSender)
	t.net.goFlight(p.runMatcher)
	t.net.goFlight(p.runCollector)
	return p, nil
}

func (p *faultPipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	if p.raftCloses.Load() > 0 {
		p.t.check.violation("%s: AppendPipeline.AppendEntries called after Close", p.id)
	}
	select {
	case <-p.shutdownCh:
		return nil, raft.ErrPipelineShutdown
	default:
	}
	p.t.stats.pipelined.Add(1)
	f := &pipeFuture{start: time.Now(), args: args, resp: resp, doneCh: make(chan struct{})}
	select {
	case p.sendCh <- f:
		return f, nil
	case <-p.shutdownCh:
		return nil, raft.ErrPipelineShutdown
	}
}

func (p *faultPipeline) Consumer() <-chan raft.AppendFuture {
	if p.consumers.Add(1) > 1 {
		p.t.check.violation("%s: AppendPipeline.Consumer called more than once", p.id)
	}
	return p.doneCh
}

// Close is raft's: it must come once.
func (p *faultPipeline) Close() error {
	if p.raftCloses.Add(1) > 1 {
		p.t.check.violation("%s: AppendPipeline.Close called twice", p.id)
	}
	p.shutdown()
	return nil
}

// shutdown stops the pipeline; the transport's Close calls it too.
func (p *faultPipeline) shutdown() {
	p.closeOnce.Do(func() {
		close(p.shutdownCh)
		p.inner.Close()
	})
}

// wait sleeps d in fake time unless the pipeline closes first.
func (p *faultPipeline) wait(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-p.shutdownCh:
		return false
	}
}

func (p *faultPipeline) runSender() {
	for {
		var f *pipeFuture
		select {
		case f = <-p.sendCh:
		case <-p.shutdownCh:
			return
		}
		select {
		case p.orderCh <- f:
		case <-p.shutdownCh:
			return
		}
		h := p.t.net.plan(p.t.id, p.to)
		if h.drop {
			continue // the collector times it out
		}
		if h.duplicate {
			p.t.stats.duplicated.Add(1)
			p.t.net.goFlight(func() { p.sendAlone(f, h.dupDelay, false) })
		}
		if h.reorder {
			p.t.stats.reordered.Add(1)
			p.t.net.goFlight(func() { p.sendAlone(f, h.delay, true) })
			continue
		}
		if !p.wait(h.delay) {
			return
		}
		if !p.t.net.linkUp(p.t.id, p.to) {
			continue
		}
		innerF, err := p.inner.AppendEntries(f.args, new(raft.AppendEntriesResponse))
		if err != nil {
			f.resolve(nil, err)
			continue
		}
		f.inner = innerF
		select {
		case p.innerCh <- f:
		case <-p.shutdownCh:
			return
		}
	}
}

// sendAlone delivers f's request after delay as a plain AppendEntries,
// outside the pipeline's order. When answer is set, its answer (if it
// makes it back) answers f; otherwise it is a duplicate and is discarded.
func (p *faultPipeline) sendAlone(f *pipeFuture, delay time.Duration, answer bool) {
	waitDelay(delay)
	if !p.t.net.linkUp(p.t.id, p.to) || !p.t.net.alive(p.t.id, p.t.inc) {
		return
	}
	var out raft.AppendEntriesResponse
	err := p.t.InmemTransport.AppendEntries(p.id, p.target, f.args, &out)
	if !answer {
		return
	}
	if err == nil && !p.returns() {
		return
	}
	f.resolve(&out, err)
}

// returns draws whether an answer makes it back to the sender, waiting
// out its delay.
func (p *faultPipeline) returns() bool {
	back := p.t.net.plan(p.to, p.t.id)
	if back.drop || !p.t.net.linkUp(p.to, p.t.id) {
		return false
	}
	return p.wait(back.delay)
}

func (p *faultPipeline) runMatcher() {
	for {
		var innerF raft.AppendFuture
		select {
		case innerF = <-p.inner.Consumer():
		case <-p.shutdownCh:
			return
		}
		var f *pipeFuture
		select {
		case f = <-p.innerCh:
		case <-p.shutdownCh:
			return
		}
		if innerF != f.inner {
			panic("fuzzy: inner pipeline answered out of order")
		}
		if err := innerF.Error(); err != nil {
			f.resolve(nil, err)
			continue
		}
		if p.returns() {
			f.resolve(innerF.Response(), nil)
		}
	}
}

func (p *faultPipeline) runCollector() {
	for {
		var f *pipeFuture
		select {
		case f = <-p.orderCh:
		case <-p.shutdownCh:
			return
		}
		if left := time.Until(f.start.Add(2 * p.t.net.rpcTimeout)); left <= 0 {
			// Its time is up already: no timer (see waitDelay).
			select {
			case <-f.doneCh:
			default:
				f.resolve(nil, errTimeout)
			}
		} else {
			deadline := time.NewTimer(left)
			select {
			case <-f.doneCh:
			case <-deadline.C:
				f.resolve(nil, errTimeout)
			case <-p.shutdownCh:
				deadline.Stop()
				return
			}
			deadline.Stop()
		}
		select {
		case p.doneCh <- f:
		case <-p.shutdownCh:
			return
		}
	}
}

// pipeFuture is the AppendFuture of a faultPipeline request.
type pipeFuture struct {
	start time.Time
	args  *raft.AppendEntriesRequest
	// inner is the inner pipeline's future for the request; set by the
	// sender before the matcher sees it.
	inner raft.AppendFuture

	mu     sync.Mutex
	resp   *raft.AppendEntriesResponse // filled under mu before doneCh closes
	err    error
	doneCh chan struct{}
}

// resolve answers the future once; later answers are ignored.
func (f *pipeFuture) resolve(resp *raft.AppendEntriesResponse, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.doneCh:
		return
	default:
	}
	if err == nil && resp != nil {
		*f.resp = *resp
	}
	f.err = err
	close(f.doneCh)
}

func (f *pipeFuture) Error() error {
	<-f.doneCh
	return f.err
}

func (f *pipeFuture) Start() time.Time                      { return f.start }
func (f *pipeFuture) Request() *raft.AppendEntriesRequest   { return f.args }
func (f *pipeFuture) Response() *raft.AppendEntriesResponse { return f.resp }
