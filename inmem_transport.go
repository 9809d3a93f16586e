package raft

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// NewInmemAddr returns a random address for an InmemTransport.
func NewInmemAddr() ServerAddress {
	return ServerAddress(generateUUID())
}

// InmemTransport is a Transport that delivers RPCs between nodes of the
// same process, for tests and examples. Routes are set up by hand with
// Connect; a request to an unconnected address fails at once.
//
// Unlike the reference's, it honours SetHeartbeatHandler: heartbeats go to
// the receiver's handler instead of its consumer channel, so tests exercise
// the same fast path as the network transport.
type InmemTransport struct {
	// RWMutex guards the routes, the open pipelines and the heartbeat
	// handler, which Connect, Disconnect and SetHeartbeatHandler change
	// while RPCs are in flight. It is embedded, as in the reference, so it
	// is part of the exported API.
	sync.RWMutex
	consumerCh  chan RPC
	localAddr   ServerAddress
	peers       map[ServerAddress]*InmemTransport
	pipelines   []*inmemPipeline
	timeout     time.Duration
	heartbeatFn func(RPC)
}

// inmemEndpoint is implemented by *InmemTransport, and by any wrapper that
// embeds one, so that Connect can route to a wrapped transport.
type inmemEndpoint interface {
	inmemTransport() *InmemTransport
}

func (i *InmemTransport) inmemTransport() *InmemTransport { return i }

// NewInmemTransportWithTimeout returns a transport at addr (a random
// address when empty) whose RPCs give up after timeout, both waiting for
// the peer to take the request and waiting for its answer.
func NewInmemTransportWithTimeout(addr ServerAddress, timeout time.Duration) (ServerAddress, *InmemTransport) {
	if addr == "" {
		addr = NewInmemAddr()
	}
	return addr, &InmemTransport{
		consumerCh: make(chan RPC, 16),
		localAddr:  addr,
		peers:      make(map[ServerAddress]*InmemTransport),
		timeout:    timeout,
	}
}

// NewInmemTransport returns a transport at addr (a random address when
// empty) with a 500ms RPC timeout.
func NewInmemTransport(addr ServerAddress) (ServerAddress, *InmemTransport) {
	return NewInmemTransportWithTimeout(addr, 500*time.Millisecond)
}

// SetHeartbeatHandler registers cb to receive heartbeats instead of the
// consumer channel.
func (i *InmemTransport) SetHeartbeatHandler(cb func(RPC)) {
	i.Lock()
	i.heartbeatFn = cb
	i.Unlock()
}

// Consumer returns the channel of incoming requests.
func (i *InmemTransport) Consumer() <-chan RPC { return i.consumerCh }

// LocalAddr returns this transport's address.
func (i *InmemTransport) LocalAddr() ServerAddress { return i.localAddr }

// AppendEntriesPipeline opens a pipeline to target.
func (i *InmemTransport) AppendEntriesPipeline(id ServerID, target ServerAddress) (AppendPipeline, error) {
	i.Lock()
	defer i.Unlock()
	peer, ok := i.peers[target]
	if !ok {
		return nil, fmt.Errorf("failed to connect to peer: %v", target)
	}
	p := newInmemPipeline(i, peer, target)
	i.pipelines = append(i.pipelines, p)
	return p, nil
}

// AppendEntries sends an AppendEntries RPC.
func (i *InmemTransport) AppendEntries(id ServerID, target ServerAddress, args *AppendEntriesRequest, resp *AppendEntriesResponse) error {
	return call(i, target, args, nil, i.timeout, resp)
}

// RequestVote sends a RequestVote RPC.
func (i *InmemTransport) RequestVote(id ServerID, target ServerAddress, args *RequestVoteRequest, resp *RequestVoteResponse) error {
	return call(i, target, args, nil, i.timeout, resp)
}

// RequestPreVote sends a RequestPreVote RPC.
func (i *InmemTransport) RequestPreVote(id ServerID, target ServerAddress, args *RequestPreVoteRequest, resp *RequestPreVoteResponse) error {
	return call(i, target, args, nil, i.timeout, resp)
}

// InstallSnapshot sends an InstallSnapshot RPC whose bytes the receiver
// reads from data. It allows ten times the usual timeout.
func (i *InmemTransport) InstallSnapshot(id ServerID, target ServerAddress, args *InstallSnapshotRequest, resp *InstallSnapshotResponse, data io.Reader) error {
	return call(i, target, args, data, 10*i.timeout, resp)
}

// TimeoutNow sends a TimeoutNow RPC.
func (i *InmemTransport) TimeoutNow(id ServerID, target ServerAddress, args *TimeoutNowRequest, resp *TimeoutNowResponse) error {
	return call(i, target, args, nil, 10*i.timeout, resp)
}

// ReadIndex sends a ReadIndex RPC (WithReadIndex).
func (i *InmemTransport) ReadIndex(id ServerID, target ServerAddress, args *ReadIndexRequest, resp *ReadIndexResponse) error {
	return call(i, target, args, nil, i.timeout, resp)
}

// call makes an RPC and copies the answer into resp.
func call[T any](i *InmemTransport, target ServerAddress, args interface{}, data io.Reader, timeout time.Duration, resp *T) error {
	out, err := i.makeRPC(target, args, data, timeout)
	if err != nil {
		return err
	}
	answer, ok := out.Response.(*T)
	if !ok || answer == nil {
		return fmt.Errorf("peer %v answered with %T, not %T", target, out.Response, resp)
	}
	*resp = *answer
	return nil
}

// makeRPC delivers one request to target and waits for its answer.
func (i *InmemTransport) makeRPC(target ServerAddress, args interface{}, data io.Reader, timeout time.Duration) (RPCResponse, error) {
	i.RLock()
	peer, ok := i.peers[target]
	i.RUnlock()
	if !ok {
		return RPCResponse{}, fmt.Errorf("failed to connect to peer: %v", target)
	}

	respCh := make(chan RPCResponse, 1)
	rpc := RPC{Command: args, Reader: data, RespChan: respCh}
	timer := time.NewTimer(timeout)
	defer timer.Stop()

	if hb, isHB := args.(*AppendEntriesRequest); isHB && isHeartbeat(hb) && peer.heartbeatHandler() != nil {
		peer.heartbeatHandler()(rpc)
	} else {
		select {
		case peer.consumerCh <- rpc:
		case <-timer.C:
			return RPCResponse{}, errors.New("send timed out")
		}
	}

	select {
	case out := <-respCh:
		return out, out.Error
	case <-timer.C:
		return RPCResponse{}, errors.New("command timed out")
	}
}

func (i *InmemTransport) heartbeatHandler() func(RPC) {
	i.RLock()
	defer i.RUnlock()
	return i.heartbeatFn
}

// EncodePeer returns the address as bytes.
func (i *InmemTransport) EncodePeer(id ServerID, p ServerAddress) []byte { return []byte(p) }

// DecodePeer returns the bytes as an address.
func (i *InmemTransport) DecodePeer(buf []byte) ServerAddress { return ServerAddress(buf) }

// Connect routes requests for peer to t, which must be an InmemTransport
// or a wrapper that embeds one. Anything else is a programming error and
// panics with a message saying so.
func (i *InmemTransport) Connect(peer ServerAddress, t Transport) {
	ep, ok := t.(inmemEndpoint)
	if !ok {
		panic(fmt.Sprintf("raft: InmemTransport.Connect needs an *InmemTransport (or a wrapper embedding one), got %T", t))
	}
	i.Lock()
	defer i.Unlock()
	i.peers[peer] = ep.inmemTransport()
}

// Disconnect removes the route to peer and closes pipelines to it.
func (i *InmemTransport) Disconnect(peer ServerAddress) {
	i.Lock()
	defer i.Unlock()
	delete(i.peers, peer)
	kept := i.pipelines[:0]
	for _, p := range i.pipelines {
		if p.peerAddr == peer {
			p.Close()
			continue
		}
		kept = append(kept, p)
	}
	clear(i.pipelines[len(kept):])
	i.pipelines = kept
}

// DisconnectAll removes every route and closes every pipeline.
func (i *InmemTransport) DisconnectAll() {
	i.Lock()
	defer i.Unlock()
	i.peers = make(map[ServerAddress]*InmemTransport)
	for _, p := range i.pipelines {
		p.Close()
	}
	i.pipelines = nil
}

// Close disconnects the transport from every peer. It may be called more
// than once.
func (i *InmemTransport) Close() error {
	i.DisconnectAll()
	return nil
}

// inmemPipeline pipelines AppendEntries to one peer: requests go to the
// peer's consumer at once, and a goroutine collects the answers in order.
type inmemPipeline struct {
	trans    *InmemTransport
	peer     *InmemTransport
	peerAddr ServerAddress

	// inflightCh carries sent requests, in order, to the collector
	// goroutine; its capacity bounds how many are in flight.
	inflightCh chan inmemInflight
	// doneCh carries answered futures to the pipeline's consumer.
	doneCh chan AppendFuture
	// shutdownCh is closed once, by Close, under closeOnce.
	shutdownCh chan struct{}
	closeOnce  sync.Once
	// handle, when set, receives answered futures instead of doneCh.
	handle func(AppendFuture)
}

type inmemInflight struct {
	future *appendFuture
	respCh <-chan RPCResponse
}

func newInmemPipeline(trans, peer *InmemTransport, addr ServerAddress) *inmemPipeline {
	p := &inmemPipeline{
		trans:      trans,
		peer:       peer,
		peerAddr:   addr,
		inflightCh: make(chan inmemInflight, 16),
		doneCh:     make(chan AppendFuture, 16),
		shutdownCh: make(chan struct{}),
	}
	go p.collectAnswers()
	return p
}

// collectAnswers waits for each request's answer, in order, and hands the
// answered future to the consumer.
func (p *inmemPipeline) collectAnswers() {
	for {
		var in inmemInflight
		select {
		case in = <-p.inflightCh:
		case <-p.shutdownCh:
			return
		}
		timer := time.NewTimer(p.trans.timeout)
		select {
		case out := <-in.respCh:
			if answer, ok := out.Response.(*AppendEntriesResponse); ok && answer != nil {
				*in.future.resp = *answer
			}
			in.future.respond(out.Error)
		case <-timer.C:
			in.future.respond(errors.New("command timed out"))
		case <-p.shutdownCh:
			timer.Stop()
			return
		}
		timer.Stop()
		if p.handle != nil {
			p.handle(in.future)
			continue
		}
		select {
		case p.doneCh <- in.future:
		case <-p.shutdownCh:
			return
		}
	}
}

// AppendEntries sends a request without waiting for its answer.
func (p *inmemPipeline) AppendEntries(args *AppendEntriesRequest, resp *AppendEntriesResponse) (AppendFuture, error) {
	select {
	case <-p.shutdownCh:
		return nil, ErrPipelineShutdown
	default:
	}
	future := newAppendFuture(args, resp)
	respCh := make(chan RPCResponse, 1)
	timer := time.NewTimer(p.trans.timeout)
	defer timer.Stop()
	select {
	case p.peer.consumerCh <- RPC{Command: args, RespChan: respCh}:
	case <-timer.C:
		return nil, errors.New("command enqueue timeout")
	case <-p.shutdownCh:
		return nil, ErrPipelineShutdown
	}
	select {
	case p.inflightCh <- inmemInflight{future, respCh}:
		return future, nil
	case <-p.shutdownCh:
		return nil, ErrPipelineShutdown
	}
}

// deliverTo implements directAnswerPipeline. collectAnswers reads handle
// only after taking a request that AppendEntries queued after this call.
func (p *inmemPipeline) deliverTo(handle func(AppendFuture)) { p.handle = handle }

// Consumer returns the channel of answered futures.
func (p *inmemPipeline) Consumer() <-chan AppendFuture { return p.doneCh }

// Close stops the pipeline; it may be called more than once.
func (p *inmemPipeline) Close() error {
	p.closeOnce.Do(func() { close(p.shutdownCh) })
	return nil
}
