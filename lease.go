package raft

import (
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-metrics"
)

// Lease reads (Raft thesis §6.4.1), opt-in through Config.LeaseReadTimeout.
//
// A leader that a quorum of voters has recently accepted knows that no
// other leader can have been elected since: each of those voters refuses
// to vote for anyone else for a while after hearing from it. Within that
// while, the leader answers reads from its own state, with no round trip.
// The argument, its assumptions and the settings it needs are in the doc
// comment of ReadLease; this file holds the bookkeeping.
//
// The lease is measured from send times, never from answer times: each
// replicator publishes in leaseSent when the newest request its follower
// accepted was sent (heartbeats, one-at-a-time appends, and pipelined
// appends, whose send times are kept until their answer: pipeSendTimes).
// The lease starts at the newest send time that a quorum of voters (this
// leader counting as now) has reached, and it is held until that start
// plus LeaseReadTimeout minus LeaseClockDrift, on this server's monotonic
// clock (clock.go). ReadLease checks it on the caller's goroutine when it
// can (lease_view.go), on the run loop otherwise (readFromLease).

// leaseStamp returns now on this server's clock as a positive count of
// nanoseconds since this instance started, for leaseSent.
func (r *Raft) leaseStamp() uint64 {
	return uint64(r.clock.since(r.startedAt)) + 1
}

// noteAccepted records that the peer accepted, in this term, a request
// sent at sent (a leaseStamp).
func (s *replicator) noteAccepted(sent uint64) { raiseTo(&s.leaseSent, sent) }

// pipeSendTimes maps the pipelined requests not yet answered to their
// send times (leaseStamp). The log goroutine notes each request before it
// sends it, the pipeline's collector takes it back with the answer; the
// stamp is taken before the send, so it is never later than the send.
type pipeSendTimes struct {
	mu   sync.Mutex
	sent map[*AppendEntriesRequest]uint64
}

// note records that req is about to be sent at stamp.
func (p *pipeSendTimes) note(req *AppendEntriesRequest, stamp uint64) {
	p.mu.Lock()
	if p.sent == nil {
		p.sent = make(map[*AppendEntriesRequest]uint64)
	}
	p.sent[req] = stamp
	p.mu.Unlock()
}

// take returns and forgets the send time of req; 0 (which counts for
// nothing) when it was not noted, as when a transport answers with
// another request value than the one it was given.
func (p *pipeSendTimes) take(req *AppendEntriesRequest) uint64 {
	p.mu.Lock()
	stamp := p.sent[req]
	delete(p.sent, req)
	p.mu.Unlock()
	return stamp
}

// reset forgets every request, once the pipeline is closed: those not
// answered never will be.
func (p *pipeSendTimes) reset() {
	p.mu.Lock()
	clear(p.sent)
	p.mu.Unlock()
}

// leaseExpiry returns the stamp at which a lease starting at start ends,
// or 0 when leases are off or the margin leaves no lease at all.
func leaseExpiry(start uint64, conf *Config) uint64 {
	length := conf.LeaseReadTimeout - conf.LeaseClockDrift
	if start == 0 || conf.LeaseReadTimeout <= 0 || length <= 0 {
		return 0
	}
	return start + uint64(length)
}

// leaseStart returns the start of the lease given, for each voter, the
// send time of the newest request it accepted (this leader's own stamp
// being now, and 0 for a voter that accepted none): the newest send time
// that a quorum of voters has reached. 0 means no lease. It sorts stamps.
func leaseStart(stamps []uint64) uint64 {
	if len(stamps) == 0 {
		return 0
	}
	// An insertion sort: there are a handful of voters, and this runs on
	// every lease read.
	for i := 1; i < len(stamps); i++ {
		for j := i; j > 0 && stamps[j] < stamps[j-1]; j-- {
			stamps[j], stamps[j-1] = stamps[j-1], stamps[j]
		}
	}
	// Ascending, the stamp at len-quorum is reached by exactly a quorum
	// (itself and every one above it).
	return stamps[len(stamps)-quorumSize(len(stamps))]
}

// leaseRefusal returns why this leader cannot answer a read from its lease
// now, or "" when it can. It is called on the run loop.
func (r *Raft) leaseRefusal() string {
	lead := r.st.lead
	conf := r.config()
	switch {
	case conf.LeaseReadTimeout <= 0:
		return "leases are off"
	case lead == nil:
		return "not the leader"
	case r.st.commitIndex < lead.termStart:
		// Until then its commit index may lag what earlier leaders
		// committed.
		return "no entry of this term is committed yet"
	case lead.transferStarted:
		// The transfer's TimeoutNow lets its target win votes from
		// servers that still follow this leader (vote_hold.go), and may
		// arrive however late.
		return "a leadership transfer was started in this term"
	}
	now := r.leaseStamp()
	var buf [9]uint64
	stamps := buf[:0]
	for _, id := range r.st.configs.latestVoters {
		var sent uint64
		if id == r.localID {
			sent = now
		} else if repl, ok := lead.repls[id]; ok {
			if repl.higherTerm.Load() != 0 {
				return "a follower answered with a newer term"
			}
			sent = repl.leaseSent.Load()
		}
		stamps = append(stamps, sent)
	}
	start := leaseStart(stamps)
	if end := leaseExpiry(start, conf); now >= end {
		return "the lease has expired"
	}
	return ""
}

// readFromLease answers the ReadLease requests of batch from the lease
// when this leader holds one, all at the commit index of one instant, and
// reports whether it did. Otherwise they take the ReadIndex path, as the
// batch's ReadIndex requests always do.
//
// The commit index is read before the clock: a pause between the two
// only shortens the lease, never lengthens it.
func (r *Raft) readFromLease(batch []*readIndexFuture) bool {
	leases := 0
	for _, f := range batch {
		if f.lease {
			leases++
		}
	}
	if leases == 0 {
		return false
	}
	var index uint64
	if r.st.lead != nil {
		index = r.st.commitIndex
	}
	if why := r.leaseRefusal(); why != "" {
		metrics.IncrCounter([]string{"raft", "lease", "fallback"}, float32(leases))
		if r.st.lead != nil {
			r.logger.Trace("lease read falls back to a read index", "reason", why, "reads", leases)
		}
		return false
	}
	metrics.IncrCounter(keyLeaseRead, float32(leases))
	r.leaseReads.Add(uint64(leases))
	for _, f := range batch {
		if f.lease {
			f.index = index
			r.readConfirmed(f)
		}
	}
	return true
}

// ReadLease makes a linearizable read possible with no round trip when
// this server leads and holds a lease, and with the round trip of
// ReadIndex otherwise. Once the future answers nil, reading this node's
// FSM observes every write that completed before ReadLease was called;
// Index returns the index the read waited for. On a leader holding a
// valid lease it records the commit index and waits only for its own FSM
// to apply it, on the caller's goroutine, without involving the run loop
// (the future is answered at once when the FSM has applied it already).
// When the lease is not held (Config.LeaseReadTimeout is zero, the lease
// expired, no entry of this leader's term is committed yet, a leadership
// transfer was started in this term, a follower answered with a newer
// term, or this server is not the leader), it does exactly what ReadIndex
// does, with the same errors. The counters raft.lease.read and
// raft.lease.fallback say which way reads went. timeout bounds only the
// wait for the run loop to take the request, when it goes there. This method is an addition: the reference has no
// equivalent.
//
// Why a lease read is linearizable. Write L for this leader, T for its
// term, Q for the latest configuration's voters, LRT for
// Config.LeaseReadTimeout, D for Config.LeaseClockDrift, HT for
// Config.HeartbeatTimeout. L answers a read from its lease at time t when,
// on its own clock, t < s + LRT − D, where s is a send time of L's
// requests that a quorum of Q accepted (each of them accepted some
// request of term T sent at s or later; L itself counts as accepting at
// once).
//
//  1. The read returns state at least up to c, the commit index L read at
//     t, which comes after the call. Every entry committed before t by L
//     or an earlier leader, so every write that completed before the
//     call, is at or below c, because L has committed an entry of term T
//     (§5.4.2, and the rule in leaseRefusal).
//  2. So the read is stale only if, before t, a leader L' of a term
//     T' > T was elected and committed an entry that L does not know.
//     Electing L' needs votes from a quorum of its configuration, which
//     shares a voter V with the quorum behind s: membership changes one
//     server at a time (§4.1), and L' holds every configuration L
//     committed, so its configuration is L's latest or the one before.
//     (A leader of a term older than T commits nothing once L is elected:
//     the voters that elected L refuse it, and what it committed earlier
//     is at or below c.)
//  3. If V is L itself: L grants no vote while it leads (it knows a
//     leader), and once it steps down it serves no lease read.
//  4. Otherwise V accepted, at some time r ≥ s, a request of term T, so
//     it then followed L. Before r it cannot have voted in T' > T (it
//     would have refused L's request of an older term). After r, V
//     votes for another candidate (or campaigns itself) only when one
//     of these happened first: (a) HT passed on V's clock with no word
//     from L, after which it forgets L (raft.go, onHeartbeatTimeout);
//     (b) V restarted, and then StartupVoteHold ≥ LRT passed on its
//     clock since it started again (vote_hold.go), while its own first
//     campaign comes at least HT after it started; (c) V received a
//     TimeoutNow or a vote request flagged as a leadership transfer,
//     which (by the last assumption below) only a transfer started by L
//     in term T produces, and L stops serving lease reads for the rest of
//     T the moment it starts one. So, barring (c), V's vote comes after at least
//     min(HT, StartupVoteHold) ≥ LRT has passed on V's clock since r,
//     and so since s.
//  5. L measured less than LRT − D between s and t on its clock. With
//     any two servers' clocks disagreeing by at most D over such an
//     interval, V measured less than LRT between s and t: V's vote, and
//     so L', comes after t. The read is linearizable.
//
// Steps 1 to 5 hold as stated when the run loop itself checks the lease.
// A lease read is usually checked on the caller's goroutine instead, from
// what the run loop publishes (lease_view.go); two more steps carry the
// argument over.
//
//  6. The run loop publishes a lease view (the leadership, its latest
//     configuration's voters and their replicators) only after L has
//     committed an entry of T and published that commit index. It
//     withdraws the view before acting on anything that ends lease reads:
//     at the top of a step-down (becomeFollower), so before a newer term is
//     stored or published, before the role changes and before any vote is
//     granted, and before a leadership transfer starts, so before any
//     TimeoutNow can be sent. The caller loads, in this order, the view,
//     the commit index c, its clock (this is t), the voters' send times,
//     and the view again, and serves the read only if the second load
//     returns the same view. Go's atomics are sequentially consistent, so
//     the view was still published at t: L had not stepped down, had
//     granted no vote in a term above T and had sent no TimeoutNow then,
//     and steps 3 and 4(c) hold. A view belongs to one leadership (a new
//     one makes a new view, after its own first commit), so a caller never
//     serves a lease from a term this node no longer leads, and one that
//     comes after the withdrawal falls back to the run loop, which
//     refuses. c was loaded after the view, so it covers T's first commit,
//     and after the call, as step 1 needs.
//  7. The view's voters may lag the run loop's by the one step that
//     appends a membership change: the view is replaced at the end of that
//     step. A read in between counts the voters of the configuration C
//     before the change while L's latest is C'. L' then holds C or C' (a
//     further change waits until C' commits, in a later step), and a
//     quorum of C shares a voter with every quorum of C and of C' (one
//     server at a time), so step 2 holds.
//
// The assumptions, which the library cannot check:
//
//   - Bounded drift: over any interval of about LRT, the clocks of any
//     two servers differ by at most D. The monotonic clock is used, so
//     wall-clock steps do not count; rate differences and any time a
//     server's clock stands still while the others run (a suspended
//     virtual machine, a laptop asleep) do.
//   - No pause longer than the margin: a server whose process or host
//     stops for longer than D at the wrong moment (between reading its
//     clock and acting on it, or while its clock stands still) breaks
//     the bound above.
//   - Every voter runs with these settings: HeartbeatTimeout ≥ LRT and
//     StartupVoteHold ≥ LRT on every voter, and a TimeoutNow sent by a
//     leader is delivered within that leader's term or not at all. A
//     cluster that mixes in servers running hashicorp/raft, or this
//     library without StartupVoteHold, cannot use leases safely: such a
//     server votes as soon as it restarts, and nothing warns about it.
func (r *Raft) ReadLease(timeout time.Duration) IndexFuture {
	select {
	case <-r.shutdownCh:
		return errorFuture{ErrRaftShutdown}
	default:
	}
	if f := r.readLeaseFast(); f != nil {
		return f
	}
	f := &readIndexFuture{lease: true}
	f.init(r.stoppedCh)
	return r.enqueueRead(f, timeout)
}

// validateLeaseConfig checks the lease settings of config (ValidateConfig).
func validateLeaseConfig(config *Config) error {
	switch {
	case config.LeaseReadTimeout < 0:
		return fmt.Errorf("LeaseReadTimeout (%s) cannot be negative", config.LeaseReadTimeout)
	case config.LeaseClockDrift < 0:
		return fmt.Errorf("LeaseClockDrift (%s) cannot be negative", config.LeaseClockDrift)
	case config.StartupVoteHold < 0:
		return fmt.Errorf("StartupVoteHold (%s) cannot be negative", config.StartupVoteHold)
	case config.LeaseReadTimeout == 0:
		return nil
	case config.LeaseClockDrift >= config.LeaseReadTimeout:
		return fmt.Errorf("LeaseClockDrift (%s) must be less than LeaseReadTimeout (%s)",
			config.LeaseClockDrift, config.LeaseReadTimeout)
	case config.LeaseReadTimeout > config.HeartbeatTimeout:
		return fmt.Errorf("LeaseReadTimeout (%s) cannot be larger than HeartbeatTimeout (%s): followers may vote for another leader after it",
			config.LeaseReadTimeout, config.HeartbeatTimeout)
	case config.StartupVoteHold < config.LeaseReadTimeout:
		return fmt.Errorf("StartupVoteHold (%s) must be at least LeaseReadTimeout (%s) when leases are on",
			config.StartupVoteHold, config.LeaseReadTimeout)
	}
	return nil
}
