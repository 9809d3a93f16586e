package raft

import (
	"math/rand/v2"
	"runtime"

	"github.com/hashicorp/go-metrics"
)

// Lease reads on the caller's goroutine.
//
// A ReadLease call on a leader that holds its lease is answered without a
// turn of the run loop: the run loop publishes, in Raft.leaseV, what the
// check needs that only it knows (this leadership, its voters and their
// replicators), and the caller reads the rest from atomics (the published
// commit index, each replicator's leaseSent and higherTerm, its own clock).
// The steps, and why a caller never serves a lease from a leadership this
// node has left, are in ReadLease's doc comment; the rules the run loop
// applies to publish and withdraw the view are publishLease and
// revokeLease.

// leaseView is what a leader publishes for lease reads outside its run
// loop. It is immutable once published; the run loop replaces it whenever
// what it describes changes, so a view that is still the published one
// describes the node as it is.
type leaseView struct {
	// lead is the leadership the view belongs to.
	lead *leaderState
	// configIndex is the index of the latest configuration it reflects.
	configIndex uint64
	// ids are the voters of that configuration; peers holds, for each, the
	// replicator whose leaseSent counts for it, nil for this server (self
	// is its position, -1 when it is not a voter) and for a voter with no
	// replicator, which has accepted nothing.
	ids   []ServerID
	peers []*replicator
	self  int
}

// leaseHoldable reports whether this node's state allows lease reads: it
// leads, has committed an entry of its term, has started no transfer in
// it, and its FSM holds nothing that may not be committed (no user restore
// runs or waits for its no-op, no snapshot is unconfirmed:
// unconfirmed_snapshot.go). Called on the run loop.
func (r *Raft) leaseHoldable() bool {
	lead := r.st.lead
	return lead != nil && r.st.commitIndex >= lead.termStart && !lead.transferStarted && !r.readsHeld()
}

// publishLease brings Raft.leaseV up to date after a step of the run loop:
// a new view when this node may hold a lease and the published one does
// not describe it (a new leadership, its first commit, new voters or
// replicators), nil when it may not. Every change that ends lease reads
// withdraws the view itself, before acting (revokeLease); this only catches
// up, and a view published a step late only delays reads, except after a
// configuration change, whose view may lag by the step that appended it
// (step 7 in ReadLease's doc comment).
func (r *Raft) publishLease() {
	cur := r.leaseV.Load()
	if r.config().LeaseReadTimeout <= 0 || !r.leaseHoldable() {
		if cur != nil {
			r.leaseV.Store(nil)
		}
		return
	}
	lead := r.st.lead
	if cur != nil && cur.lead == lead && cur.configIndex == r.st.configs.latestIndex && r.leasePeersCurrent(cur) {
		return
	}
	voters := r.st.configs.latestVoters
	v := &leaseView{
		lead:        lead,
		configIndex: r.st.configs.latestIndex,
		ids:         append([]ServerID(nil), voters...),
		peers:       make([]*replicator, len(voters)),
		self:        -1,
	}
	for i, id := range voters {
		if id == r.localID {
			v.self = i
		} else {
			v.peers[i] = lead.repls[id]
		}
	}
	r.leaseV.Store(v)
}

// leasePeersCurrent reports whether v counts the replicators the leader
// runs now for the voters it names.
func (r *Raft) leasePeersCurrent(v *leaseView) bool {
	for i, id := range v.ids {
		if i != v.self && v.peers[i] != r.st.lead.repls[id] {
			return false
		}
	}
	return true
}

// revokeLease withdraws the published view. The run loop calls it before
// any change that ends lease reads takes effect: before a step-down
// (becomeFollower) moves to a new term or publishes the new role, before a
// leadership transfer starts, and when leadership ends for any reason
// (stopLeading).
func (r *Raft) revokeLease() {
	r.leaseV.Store(nil)
}

// leaseStamps appends to stamps, for each voter of v, the send time of the
// newest request it accepted: now for this server, 0 for a voter with no
// replicator. It returns false when a replicator has seen a newer term:
// that leader is on its way out and serves no more lease reads.
func (v *leaseView) leaseStamps(stamps []uint64, now uint64) ([]uint64, bool) {
	for i, p := range v.peers {
		switch {
		case i == v.self:
			stamps = append(stamps, now)
		case p == nil:
			stamps = append(stamps, 0)
		case p.higherTerm.Load() != 0:
			return stamps, false
		default:
			stamps = append(stamps, p.leaseSent.Load())
		}
	}
	return stamps, true
}

// leaseReadNow answers a lease read on the caller's goroutine: it returns
// the index the read must wait for and true when this node holds a lease,
// or false when the call must take the run loop's path (lease.go's
// readFromLease, which falls back to a read index). The order of the loads
// is what the argument in ReadLease's doc comment relies on: the view, then
// the commit index, then the clock, then the replicators' stamps, and last
// the view again.
func (r *Raft) leaseReadNow() (uint64, bool) {
	v := r.leaseV.Load()
	if v == nil {
		return 0, false
	}
	conf := r.config()
	if conf.LeaseReadTimeout <= 0 {
		return 0, false
	}
	index := r.pub.commitIndex.Load()
	now := r.leaseStamp()
	var buf [9]uint64
	stamps, ok := v.leaseStamps(buf[:0], now)
	if !ok || now >= leaseExpiry(leaseStart(stamps), conf) {
		return 0, false
	}
	if r.leaseV.Load() != v {
		// The run loop withdrew or replaced the view meanwhile: let it
		// decide.
		return 0, false
	}
	return index, true
}

// readLeaseFast serves a ReadLease call from the lease without the run
// loop, when it can: it returns nil when it cannot.
func (r *Raft) readLeaseFast() IndexFuture {
	index, ok := r.leaseReadNow()
	if !ok {
		return nil
	}
	metrics.IncrCounter(keyLeaseRead, 1)
	r.leaseReads.Add(1)
	if index <= r.pub.appliedIndex.Load() {
		// Answered without blocking: yield the processor now and then,
		// as a read that waited would have. Callers reading in a tight
		// loop would otherwise keep this node's own goroutines
		// (heartbeats, the run loop) waiting a time slice per caller,
		// long enough to cost the leadership. One call in
		// leaseYieldEvery yields, at random: a caller runs a few reads
		// between yields, each a microsecond or so, and yielding on
		// every one cost a quarter of a lease read's CPU.
		if rand.Uint32()%leaseYieldEvery == 0 {
			runtime.Gosched()
		}
		return r.appliedAnswer(index)
	}
	f := &readIndexFuture{lease: true, index: index}
	f.init(r.stoppedCh)
	r.appliedWaiters.wait(f, &r.pub.appliedIndex)
	return f
}

// keyLeaseRead is the metric key of lease reads, built once: a literal
// at the call would be allocated on every read (write_path_metrics.go
// says why one slice can serve every call).
var keyLeaseRead = []string{"raft", "lease", "read"}

// leaseYieldEvery is how many lease reads answered without blocking make
// one yield of the processor, on average (readLeaseFast).
const leaseYieldEvery = 8

// appliedRead is the answer to a read whose index the FSM had applied
// already: it needs no waiting, and no channel. It is immutable, so reads
// at the same index share one (appliedAnswer).
type appliedRead struct{ index uint64 }

func (a *appliedRead) Error() error  { return nil }
func (a *appliedRead) Index() uint64 { return a.index }

// appliedAnswer returns an appliedRead for index: the last one made when
// it is for the same index, which it is for most reads between two
// commits, so that a lease read allocates nothing.
func (r *Raft) appliedAnswer(index uint64) *appliedRead {
	if a := r.lastApplied.Load(); a != nil && a.index == index {
		return a
	}
	a := &appliedRead{index: index}
	r.lastApplied.Store(a)
	return a
}
