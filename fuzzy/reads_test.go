package fuzzy

import (
	"errors"

	"github.com/quorumkit/raft"
)

// Read modes: the ways a client may read a key. Every mode here must be
// linearizable on its own; the checker holds reads to that.
//
// A mode that is NOT linearizable by itself, and therefore not here:
// VerifyLeader followed by a read of the leader's local FSM. VerifyLeader
// only proves that the node was leader at some point during the call; its
// FSM may still lag the commit index (a new leader that has not applied
// its predecessor's entries, or entries committed but not yet applied).
// Such a read becomes linearizable only once the applied index has caught
// up with the commit index observed at verification time, and only once
// the leader has committed an entry of its own term (Raft thesis §6.4, the
// read index). That is what ReadIndex does, and readIndexRead uses it.

// readMode is one way to read a key through a server.
type readMode interface {
	name() string
	// read reads key through inc's server and returns what it saw and how
	// the read ended. A read that failed or whose outcome is unknown is
	// left out of the history; it changed nothing.
	read(cl *client, inc *incarnation, key string) (kvOutput, outcome)
}

// readModes are the modes clients pick from.
var readModes = []readMode{logRead{}, barrierRead{}, readIndexRead{}, followerRead{}, leaseRead{}}

// logRead sends a get through the log, like a write: the answer is the
// state at the entry's index, and the entry committed while the read was
// in progress.
type logRead struct{}

func (logRead) name() string { return "log" }

func (logRead) read(cl *client, inc *incarnation, key string) (kvOutput, outcome) {
	return cl.apply(inc, kvCommand{Op: opGet, Key: key})
}

// barrierRead asks the leader for a Barrier, then reads the same
// incarnation's FSM. The barrier entry commits after the read was called,
// in the leader's current term, and once it returns the FSM has applied
// everything up to it; the FSM only ever holds committed entries. So the
// state read is that of some committed prefix at least as long as every
// prefix committed before the call, taken before the read returned.
type barrierRead struct{}

func (barrierRead) name() string { return "barrier" }

func (barrierRead) read(cl *client, inc *incarnation, key string) (kvOutput, outcome) {
	err, answered := wait(inc.raft.Barrier(enqueueTimeout), clientTimeout)
	if !answered {
		return kvOutput{}, unknown
	}
	if how := classify(err); how != done {
		if how == failed || errors.Is(err, raft.ErrRaftShutdown) {
			cl.redirect(inc)
		}
		return kvOutput{}, how
	}
	v, ok := inc.fsm.get(key)
	return kvOutput{Value: v, Exists: ok}, done
}

// readIndexRead asks the server for a read index (raft.ReadIndex, the
// Raft thesis §6.4), waits until the same incarnation's FSM has applied up
// to it, and reads that FSM. The index is the leader's commit index once
// it committed an entry of its term, confirmed by a quorum after the call:
// every write that completed before the call is at or below it. The FSM
// only ever holds committed entries and snapshots (the raft package holds
// the restore of a snapshot until it is known committed), so the state
// read is that of a committed prefix at least that long, even when the
// FSM moves on between the answer and the read.
//
// ReadIndex promises to answer only once the FSM has applied the index;
// the read checks that promise, and waits all the same.
type readIndexRead struct{}

func (readIndexRead) name() string { return "read-index" }

func (readIndexRead) read(cl *client, inc *incarnation, key string) (kvOutput, outcome) {
	out, how, err := readThroughIndex(cl, inc, key)
	if how == failed || errors.Is(err, raft.ErrRaftShutdown) {
		cl.redirect(inc)
	}
	return out, how
}

// followerRead is a readIndexRead on a server that does not lead, when
// there is one: ReadIndex on a follower asks its leader for the read index
// (the ReadIndex RPC, through the fault transport like every other), and
// answers once that follower's FSM has applied it. The argument for
// readIndexRead holds as it is: the leader confirmed the index after the
// call, and the follower's FSM only holds committed entries. A refusal
// changes nothing about where the client sends its writes.
type followerRead struct{}

func (followerRead) name() string { return "follower-read-index" }

func (followerRead) read(cl *client, inc *incarnation, key string) (kvOutput, outcome) {
	var followers []*incarnation
	for _, other := range cl.c.running() {
		if s := other.raft.State(); s == raft.Follower {
			followers = append(followers, other)
		}
	}
	if len(followers) > 0 {
		inc = followers[cl.rnd.IntN(len(followers))]
	}
	onFollower := inc.raft.State() == raft.Follower
	out, how, _ := readThroughIndex(cl, inc, key)
	if how == done && onFollower {
		cl.c.stats.followerReads.Add(1)
	}
	return out, how
}

// readThroughIndex calls ReadIndex on inc's server, checks that it
// answered only once its FSM had applied the index, and reads that FSM.
// err is ReadIndex's error.
func readThroughIndex(cl *client, inc *incarnation, key string) (kvOutput, outcome, error) {
	f := inc.raft.ReadIndex(enqueueTimeout)
	err, answered := wait(f, clientTimeout)
	if !answered {
		return kvOutput{}, unknown, nil
	}
	if how := classify(err); how != done {
		return kvOutput{}, how, err
	}
	index := f.Index()
	if applied := inc.raft.AppliedIndex(); applied < index {
		cl.c.check.violation("%s answered ReadIndex with index %d while its FSM had applied only up to %d", inc.name, index, applied)
	}
	if !cl.c.waitFor(clientTimeout, func() bool { return inc.raft.AppliedIndex() >= index }) {
		return kvOutput{}, unknown, nil
	}
	cl.c.stats.readIndexReads.Add(1)
	v, ok := inc.fsm.get(key)
	return kvOutput{Value: v, Exists: ok}, done, nil
}
