package raft

import (
	"sync"
	"time"

	"github.com/hashicorp/go-metrics"
)

// A follower answers the plain heartbeats of the leader it follows on the
// transport's goroutine, without a turn of the run loop.
//
// A heartbeat of the current term from the known leader changes nothing
// the run loop owns but the time of the last contact and the follower's
// election timer; its answer (the current term, success) is fixed by the
// term, the role and the known leader. Those three change only on the run
// loop, which shares them here as heartbeatView. The protocol:
//
//   - The run loop owns open, term, leaderID and leaderAddr. It opens the
//     view (openHeartbeatView) after it served an AppendEntries or a
//     heartbeat of its current term as a follower, from the leader it now
//     follows, and closes it (closeHeartbeatView) whenever the known
//     leader changes, which every change of term or role does (setLeader),
//     and when it exits. While open, the view matches the run loop's state:
//     role Follower, not transferring, currentTerm == term, and the known
//     leader is the one the view names (invariant I14,
//     write_path_invariants.go).
//   - The transport's goroutine answers a heartbeat here only while the
//     view is open and the heartbeat's term and sender are the view's
//     (answerHeartbeat); it records the contact in the view, under mu,
//     before it answers. Everything else (another term, an unknown or
//     other leader, a candidate, a node shutting down, a request that is
//     not a plain heartbeat) goes to the run loop as before.
//   - Every change of term, role or leader is made under mu (setLeader
//     closes the view in the same critical section that makes the change
//     visible), so a heartbeat answered here is ordered before it: it is
//     the answer the run loop would have given had it served the
//     heartbeat just before the change.
//   - The contact recorded here is the run loop's contact too: the
//     heartbeat timeout (onHeartbeatTimeout) reads the newer of its own
//     and the view's under mu, and forgets the leader (closing the view)
//     in the same critical section when both are too old. A follower
//     therefore never forgets its leader, and so never votes for another
//     server, within a heartbeat timeout of a heartbeat it acknowledged
//     here, which is what the leader's lease counts on (lease.go).
//
// The run loop's timer is not reset per heartbeat: when it fires, the
// run loop re-arms it from the newest contact, so that an election starts
// as long after the last contact as when each heartbeat reset it.
type heartbeatView struct {
	mu   sync.Mutex
	open bool
	// term, leaderID and leaderAddr are the run loop's current term and
	// the leader it follows, as that leader's requests carry them (the
	// header's ID and its address bytes, or the legacy Leader field).
	term       uint64
	leaderID   string
	leaderAddr string
	// contact is when a heartbeat answered here last arrived; written by
	// the transport's goroutines, read by the run loop, both under mu.
	contact time.Time
}

// heartbeatSender returns the address bytes a request names its sender by:
// the header's, or the legacy field for peers that predate it.
func heartbeatSender(a *AppendEntriesRequest) []byte {
	if len(a.RPCHeader.Addr) > 0 {
		return a.RPCHeader.Addr
	}
	return a.Leader
}

// answerHeartbeat answers a plain heartbeat from the leader this follower
// follows in the heartbeat's term, on the calling goroutine, and reports
// whether it did; when it did not, the run loop must serve the heartbeat.
func (r *Raft) answerHeartbeat(rpc RPC, a *AppendEntriesRequest) bool {
	if !isHeartbeat(a) {
		return false
	}
	select {
	case <-r.shutdownCh:
		return false
	default:
	}
	start := time.Now()
	v := &r.hbView
	v.mu.Lock()
	if !v.open || a.Term != v.term || string(a.RPCHeader.ID) != v.leaderID ||
		string(heartbeatSender(a)) != v.leaderAddr {
		v.mu.Unlock()
		return false
	}
	now := r.clock.now()
	if now.After(v.contact) {
		v.contact = now
		r.pub.setLastContact(now)
	}
	term := v.term
	v.mu.Unlock()
	lastIndex, _ := r.pub.lastLog()
	rpc.Respond(&AppendEntriesResponse{
		RPCHeader: r.rpcHeader(),
		Term:      term,
		LastLog:   lastIndex,
		Success:   true,
	}, nil)
	// The metrics the run loop's path emits for a heartbeat (processRPC,
	// appendEntries).
	metrics.MeasureSince(keyAppendEntries, start)
	metrics.MeasureSince(keyProcessHeartbeat, start)
	return true
}

// openHeartbeatView lets the transport's goroutine answer heartbeats of
// the current term from a, the request of the leader this node now
// follows (run loop).
func (r *Raft) openHeartbeatView(a *AppendEntriesRequest) {
	if r.st.role != Follower || r.st.transferring || r.st.leader.addr == "" || a.Term != r.st.currentTerm {
		return
	}
	v := &r.hbView
	// Only the run loop writes these fields, so it may read them without
	// the lock; it is taken only to change them.
	if v.open && v.term == a.Term && v.leaderID == string(a.RPCHeader.ID) &&
		v.leaderAddr == string(heartbeatSender(a)) {
		return
	}
	id, addr := string(a.RPCHeader.ID), string(heartbeatSender(a))
	v.mu.Lock()
	v.open, v.term, v.leaderID, v.leaderAddr = true, a.Term, id, addr
	v.mu.Unlock()
}

// closeHeartbeatView sends every heartbeat to the run loop again (run
// loop).
func (r *Raft) closeHeartbeatView() {
	v := &r.hbView
	if !v.open {
		return
	}
	v.mu.Lock()
	v.open = false
	v.mu.Unlock()
}

// heartbeatTimedOut reports whether the leader has been silent for timeout,
// counting the heartbeats answered off the run loop, and returns the newest
// contact. When it has, the view is closed in the same critical section,
// so no heartbeat is acknowledged after this decision (run loop).
func (r *Raft) heartbeatTimedOut(timeout time.Duration) (bool, time.Time) {
	v := &r.hbView
	v.mu.Lock()
	defer v.mu.Unlock()
	contact := r.st.lastContact
	if v.contact.After(contact) {
		contact = v.contact
	}
	if r.clock.now().Sub(contact) < timeout {
		return false, contact
	}
	v.open = false
	return true, contact
}
