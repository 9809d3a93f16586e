package raft

import (
	"sync/atomic"
	"time"
)

// Observation is an event delivered to observers.
type Observation struct {
	// Raft is the node the event happened on.
	Raft *Raft
	// Data is the event: one of RaftState, LeaderObservation,
	// PeerObservation, RequestVoteRequest, RequestPreVoteRequest,
	// FailedHeartbeatObservation or ResumedHeartbeatObservation.
	Data interface{}
}

// LeaderObservation reports that the known leader changed; the fields are
// empty when no leader is known.
type LeaderObservation struct {
	// Leader is the leader's address.
	//
	// Deprecated: use LeaderAddr.
	Leader     ServerAddress
	LeaderAddr ServerAddress
	LeaderID   ServerID
}

// PeerObservation reports, on the leader, that a server was added to or
// removed from replication.
type PeerObservation struct {
	Removed bool
	Peer    Server
}

// FailedHeartbeatObservation reports, on the leader, that heartbeats to a
// follower started failing.
type FailedHeartbeatObservation struct {
	PeerID      ServerID
	LastContact time.Time
}

// ResumedHeartbeatObservation reports, on the leader, that heartbeats to a
// follower work again.
type ResumedHeartbeatObservation struct {
	PeerID ServerID
}

// FilterFn decides whether an observer receives an observation.
type FilterFn func(o *Observation) bool

// observerIDs numbers observers so that they can be found again on
// DeregisterObserver.
var observerIDs atomic.Uint64

// Observer receives events from a node on a channel. Observations are sent
// from the node's own goroutines, synchronously: a blocking observer stops
// the node until its channel has room (or the node shuts down), so it must
// be drained promptly; a non-blocking observer drops what does not fit.
type Observer struct {
	numObserved atomic.Uint64
	numDropped  atomic.Uint64

	channel  chan Observation
	blocking bool
	filter   FilterFn
	id       uint64
}

// NewObserver creates an observer that sends to channel the observations
// that filter accepts (all of them when filter is nil). With blocking set,
// the node waits for room in channel; otherwise observations that do not
// fit are dropped and counted.
func NewObserver(channel chan Observation, blocking bool, filter FilterFn) *Observer {
	return &Observer{
		channel:  channel,
		blocking: blocking,
		filter:   filter,
		id:       observerIDs.Add(1),
	}
}

// GetNumObserved returns how many observations were delivered.
func (or *Observer) GetNumObserved() uint64 { return or.numObserved.Load() }

// GetNumDropped returns how many observations did not fit in a
// non-blocking observer's channel.
func (or *Observer) GetNumDropped() uint64 { return or.numDropped.Load() }

// RegisterObserver starts delivering observations to or.
func (r *Raft) RegisterObserver(or *Observer) {
	r.observersMu.Lock()
	defer r.observersMu.Unlock()
	r.observers[or.id] = or
}

// DeregisterObserver stops delivering observations to or.
func (r *Raft) DeregisterObserver(or *Observer) {
	r.observersMu.Lock()
	defer r.observersMu.Unlock()
	delete(r.observers, or.id)
}

// observe delivers data to every registered observer whose filter accepts
// it, from the calling goroutine. A blocking observer is waited for, but
// never past shutdown. The registry is copied first so that an observer may
// deregister itself while the node waits on its channel.
func (r *Raft) observe(data interface{}) {
	ob := Observation{Raft: r, Data: data}
	r.observersMu.RLock()
	targets := make([]*Observer, 0, len(r.observers))
	for _, or := range r.observers {
		targets = append(targets, or)
	}
	r.observersMu.RUnlock()
	for _, or := range targets {
		if or.filter != nil && !or.filter(&ob) {
			continue
		}
		if or.channel == nil {
			continue
		}
		if or.blocking {
			select {
			case or.channel <- ob:
				or.numObserved.Add(1)
			case <-r.shutdownCh:
				or.numDropped.Add(1)
			}
			continue
		}
		select {
		case or.channel <- ob:
			or.numObserved.Add(1)
		default:
			or.numDropped.Add(1)
		}
	}
}
