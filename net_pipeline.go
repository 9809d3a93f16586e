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
		// One request is written while the reader waits for the answer
		// before it, and one more waits to be handed over, so a buffer of
		// MaxRPCsInFlight-2 lets exactly MaxRPCsInFlight be unanswered.
		inflightCh: make(chan *appendFuture, n.maxInFlight-minInFlightForPipelining),
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
	// AppendEntries to readResponses. Its buffer, with the request being
	// written and the one being read, bounds the requests in flight: a
	// full channel blocks AppendEntries (back-pressure). Never closed.
	inflightCh chan *appendFuture

	// doneCh carries answered futures, in order, from readResponses to the
	// caller's Consumer loop. Never closed.
	doneCh chan AppendFuture

	// shutdownCh is closed by Close, once.
	shutdownCh chan struct{}
	closeOnce  sync.Once

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
	if timeout := p.trans.timeout; timeout > 0 {
		_ = p.conn.conn.SetWriteDeadline(time.Now().Add(timeout))
	}
	if err := p.conn.enc.writeRequest(rpcAppendEntries, args); err != nil {
		_ = p.conn.Release()
		return nil, fmt.Errorf("pipelining to %s: %w", p.conn.target, err)
	}
	select {
	case p.inflightCh <- f:
		return f, nil
	case <-p.shutdownCh:
		return nil, ErrPipelineShutdown
	}
}

// readResponses answers the futures in the order their requests were sent
// and hands them to Consumer. Once an answer cannot be read the stream is
// out of step, so that error answers every later future too.
func (p *netPipeline) readResponses() {
	var broken error
	for {
		var f *appendFuture
		select {
		case f = <-p.inflightCh:
		case <-p.shutdownCh:
			return
		}
		if broken == nil {
			if timeout := p.trans.timeout; timeout > 0 {
				_ = p.conn.conn.SetReadDeadline(time.Now().Add(timeout))
			}
			if reusable, err := p.conn.readResponse(f.resp); !reusable {
				broken = err
				_ = p.conn.Release()
			} else {
				f.respond(err)
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
