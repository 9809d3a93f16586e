package raft

import (
	"fmt"
	"sync"
	"time"
)

// AppendEntriesPipeline returns a pipeline that sends AppendEntries to
// target on a connection of its own without waiting for each answer. It
// returns ErrPipelineReplicationNotSupported when MaxRPCsInFlight is below
// 2, and an error if target cannot be reached.
func (n *NetworkTransport) AppendEntriesPipeline(id ServerID, target ServerAddress) (AppendPipeline, error) {
	if n.maxInFlight < minInFlightForPipelining {
		return nil, ErrPipelineReplicationNotSupported
	}
	c, err := n.getConn(n.dialAddress(id, target))
	if err != nil {
		return nil, err
	}
	p := &netPipeline{
		trans: n,
		conn:  c,
		// The reader leaves every future in the channel until its answer
		// arrives, and one more request is written while AppendEntries
		// waits to queue its future, so a buffer of MaxRPCsInFlight-1
		// lets exactly MaxRPCsInFlight be unanswered.
		inflightCh: make(chan *appendFuture, n.maxInFlight-1),
		doneCh:     make(chan AppendFuture, n.maxInFlight-minInFlightForPipelining),
		shutdownCh: make(chan struct{}),
	}
	if !n.pipelines.add(p) {
		_ = c.Release()
		return nil, ErrTransportShutdown
	}
	n.goFunc(p.readResponses)
	return p, nil
}

// netPipeline is the AppendPipeline of a NetworkTransport.
type netPipeline struct {
	trans *NetworkTransport
	conn  *netConn

	// sendMu makes writing a request and queueing its future one step, so
	// that answers match futures even if AppendEntries is called from
	// several goroutines.
	sendMu sync.Mutex

	// inflightCh carries the futures of written requests, in order, from
	// AppendEntries to readResponses, which takes one once its answer
	// has begun to arrive. Its buffer, with the request being written,
	// bounds the requests in flight: a full channel blocks AppendEntries
	// (back-pressure). Never closed.
	inflightCh chan *appendFuture

	// doneCh carries answered futures, in order, from readResponses to the
	// caller's Consumer loop. Never closed.
	doneCh chan AppendFuture

	// shutdownCh is closed by Close, once.
	shutdownCh chan struct{}
	closeOnce  sync.Once

	// deadlineMu guards outstanding and orders the changes of the
	// connection's read deadline: AppendEntries arms it when it writes
	// into an idle pipeline, readResponses moves it on after each answer
	// while more are outstanding and clears it when none are. So the
	// deadline is set exactly while an answer is awaited, and the reader,
	// which waits on the socket even when idle, never times out on a quiet
	// pipeline.
	deadlineMu  sync.Mutex
	outstanding int // requests written whose answers are not read yet

	// handle, when set (deliverTo, before the first AppendEntries),
	// receives answered futures instead of doneCh. readResponses reads it
	// only after taking a future that AppendEntries queued, which orders
	// the read after the write.
	handle func(AppendFuture)
}

// deliverTo implements directAnswerPipeline.
func (p *netPipeline) deliverTo(handle func(AppendFuture)) { p.handle = handle }

// AppendEntries writes a request and returns its future. It blocks while
// MaxRPCsInFlight requests are unanswered. After Close it returns
// ErrPipelineShutdown.
func (p *netPipeline) AppendEntries(args *AppendEntriesRequest, resp *AppendEntriesResponse) (AppendFuture, error) {
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	select {
	case <-p.shutdownCh:
		return nil, ErrPipelineShutdown
	default:
	}

	f := newAppendFuture(args, resp)
	timeout := p.trans.timeout
	if timeout > 0 {
		_ = p.conn.conn.SetWriteDeadline(time.Now().Add(timeout))
	}
	if err := p.conn.enc.writeRequest(rpcAppendEntries, args); err != nil {
		_ = p.conn.Release()
		return nil, fmt.Errorf("pipelining to %s: %w", p.conn.target, err)
	}
	p.deadlineMu.Lock()
	p.outstanding++
	if p.outstanding == 1 && timeout > 0 {
		_ = p.conn.conn.SetReadDeadline(time.Now().Add(timeout))
	}
	p.deadlineMu.Unlock()
	// The future is queued before its answer can be decoded: the reader
	// takes it from inflightCh first.
	select {
	case p.inflightCh <- f:
		return f, nil
	case <-p.shutdownCh:
		return nil, ErrPipelineShutdown
	}
}

// readResponses answers the futures in the order their requests were sent
// and hands them to Consumer. It waits on the connection itself, not on
// inflightCh, so an answer costs it one wake-up (the socket's) rather than
// two; the future is queued before its answer is decoded, since
// AppendEntries queues it right after writing the request. Once an answer
// cannot be read the stream is out of step, so that error answers every
// later future too.
func (p *netPipeline) readResponses() {
	var broken error
	for {
		if broken == nil {
			if err := p.conn.dec.awaitData(); err != nil {
				select {
				case <-p.shutdownCh:
					return
				default:
				}
				broken = fmt.Errorf("reading response from %s: %w", p.conn.target, err)
				_ = p.conn.Release()
			}
		}
		var f *appendFuture
		select {
		case f = <-p.inflightCh:
		case <-p.shutdownCh:
			return
		}
		if broken == nil {
			if reusable, err := p.conn.readResponse(f.resp); !reusable {
				broken = err
				_ = p.conn.Release()
			} else {
				f.respond(err)
				p.answerRead()
			}
		}
		if broken != nil {
			f.respond(broken)
		}
		if p.handle != nil {
			p.handle(f)
			continue
		}
		select {
		case p.doneCh <- f:
		case <-p.shutdownCh:
			return
		}
	}
}

// answerRead counts one answer read: the read deadline moves on for the
// next outstanding answer, or is cleared when none is outstanding.
func (p *netPipeline) answerRead() {
	p.deadlineMu.Lock()
	defer p.deadlineMu.Unlock()
	p.outstanding--
	if timeout := p.trans.timeout; timeout > 0 {
		var deadline time.Time
		if p.outstanding > 0 {
			deadline = time.Now().Add(timeout)
		}
		_ = p.conn.conn.SetReadDeadline(deadline)
	}
}

// Consumer returns the channel on which answered futures arrive, in the
// order their requests were sent.
func (p *netPipeline) Consumer() <-chan AppendFuture {
	return p.doneCh
}

// Close closes the pipeline's connection and stops its reader. Futures
// still unanswered are not answered. Calling Close again does nothing.
func (p *netPipeline) Close() error {
	p.closeOnce.Do(func() {
		close(p.shutdownCh)
		_ = p.conn.Release()
		p.trans.pipelines.remove(p)
	})
	return nil
}

// pipelineSet is the set of open pipelines of a transport.
type pipelineSet struct {
	// mu guards the fields below: pipelines are opened and closed by
	// replication goroutines while Close may walk the set.
	mu     sync.Mutex
	open   map[*netPipeline]struct{}
	closed bool
}

// add records p, unless the transport is closed.
func (s *pipelineSet) add(p *netPipeline) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.open == nil {
		s.open = make(map[*netPipeline]struct{})
	}
	s.open[p] = struct{}{}
	return true
}

func (s *pipelineSet) remove(p *netPipeline) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.open, p)
}

// closeAll closes every open pipeline and refuses new ones.
func (s *pipelineSet) closeAll() {
	s.mu.Lock()
	s.closed = true
	open := s.open
	s.open = nil
	s.mu.Unlock()
	for p := range open {
		_ = p.Close()
	}
}
