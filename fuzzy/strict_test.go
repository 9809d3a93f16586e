package fuzzy

import (
	"io"
	"sync"
	"sync/atomic"

	"github.com/quorumkit/raft"
)

// A transport written the way users write their own, for the seeds whose
// schedule says strict: Close is not idempotent and nothing may be called
// after it, and Consumer hands out a fresh channel on every call, fed from
// then on instead of the earlier ones. Raft must call Close once, call
// nothing after Close, and ask for each Consumer channel once and keep it
// (the reference does all three). Any other call is a violation of the
// run (reported once per object); a caller that asks for Consumer again and reads the older channel
// would also wait for messages that never come.
//
// It wraps the faultTransport, so every fault still applies, and keeps
// its capabilities (pre-vote, Close, pipelining, the heartbeat fast path).

// strictTransport is a faultTransport that is strict about Close and
// Consumer.
type strictTransport struct {
	*faultTransport
	closed    atomic.Bool
	consumers atomic.Int32
	feedOnce  sync.Once
	feed      *feed[raft.RPC]
}

func newStrictTransport(t *faultTransport) *strictTransport {
	return &strictTransport{faultTransport: t}
}

// after reports a call made after Close.
func (s *strictTransport) after(call string) {
	if s.closed.Load() {
		s.check.violation("%s#%d: Transport.%s called after Close", s.id, s.inc, call)
	}
}

func (s *strictTransport) Consumer() <-chan raft.RPC {
	s.after("Consumer")
	if s.consumers.Add(1) == 2 {
		s.check.violation("%s#%d: Transport.Consumer called more than once", s.id, s.inc)
	}
	s.feedOnce.Do(func() { s.feed = newFeed(s.faultTransport.Consumer(), s.deadCh, s.net) })
	return s.feed.fresh()
}

func (s *strictTransport) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		s.check.violation("%s#%d: Transport.Close called twice", s.id, s.inc)
		return nil
	}
	return s.faultTransport.Close()
}

func (s *strictTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	s.after("AppendEntries")
	return s.faultTransport.AppendEntries(id, target, args, resp)
}

func (s *strictTransport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	s.after("RequestVote")
	return s.faultTransport.RequestVote(id, target, args, resp)
}

func (s *strictTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	s.after("RequestPreVote")
	return s.faultTransport.RequestPreVote(id, target, args, resp)
}

func (s *strictTransport) ReadIndex(id raft.ServerID, target raft.ServerAddress, args *raft.ReadIndexRequest, resp *raft.ReadIndexResponse) error {
	s.after("ReadIndex")
	return s.faultTransport.ReadIndex(id, target, args, resp)
}

func (s *strictTransport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	s.after("InstallSnapshot")
	return s.faultTransport.InstallSnapshot(id, target, args, resp, data)
}

func (s *strictTransport) TimeoutNow(id raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	s.after("TimeoutNow")
	return s.faultTransport.TimeoutNow(id, target, args, resp)
}

func (s *strictTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	s.after("AppendEntriesPipeline")
	p, err := s.faultTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	return &strictPipeline{t: s, inner: p, feed: newFeed(p.Consumer(), s.deadCh, s.net)}, nil
}

// strictPipeline is a pipeline that is strict about Close and Consumer.
type strictPipeline struct {
	t         *strictTransport
	inner     raft.AppendPipeline
	feed      *feed[raft.AppendFuture]
	closed    atomic.Bool
	consumers atomic.Int32
}

func (p *strictPipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	if p.closed.Load() {
		p.t.check.violation("%s#%d: AppendPipeline.AppendEntries called after Close", p.t.id, p.t.inc)
	}
	return p.inner.AppendEntries(args, resp)
}

func (p *strictPipeline) Consumer() <-chan raft.AppendFuture {
	if p.consumers.Add(1) == 2 {
		p.t.check.violation("%s#%d: AppendPipeline.Consumer called more than once", p.t.id, p.t.inc)
	}
	return p.feed.fresh()
}

func (p *strictPipeline) Close() error {
	if !p.closed.CompareAndSwap(false, true) {
		p.t.check.violation("%s#%d: AppendPipeline.Close called twice", p.t.id, p.t.inc)
		return nil
	}
	p.feed.stop()
	return p.inner.Close()
}

// feed forwards what arrives on in to the channel its last fresh call
// returned, until stopped or dead closes.
type feed[T any] struct {
	mu      sync.Mutex
	cur     chan T // guarded by mu
	changed chan struct{}
	stopCh  chan struct{}
	once    sync.Once
}

func newFeed[T any](in <-chan T, dead <-chan struct{}, net *network) *feed[T] {
	f := &feed[T]{cur: make(chan T), changed: make(chan struct{}, 1), stopCh: make(chan struct{})}
	net.goFlight(func() {
		for {
			var v T
			select {
			case v = <-in:
			case <-f.stopCh:
				return
			case <-dead:
				return
			}
			for delivered := false; !delivered; {
				f.mu.Lock()
				ch := f.cur
				f.mu.Unlock()
				select {
				case ch <- v:
					delivered = true
				case <-f.changed:
				case <-f.stopCh:
					return
				case <-dead:
					return
				}
			}
		}
	})
	return f
}

// fresh returns a new channel, which gets everything from now on.
func (f *feed[T]) fresh() <-chan T {
	ch := make(chan T)
	f.mu.Lock()
	f.cur = ch
	f.mu.Unlock()
	select {
	case f.changed <- struct{}{}:
	default:
	}
	return ch
}

func (f *feed[T]) stop() { f.once.Do(func() { close(f.stopCh) }) }
