package raft

import (
	"sync/atomic"
	"time"
)

// published holds the figures the run loop publishes for the public API
// and other goroutines. Only the run loop writes them (the FSM goroutine
// writes appliedIndex, and Shutdown the state); readers never reach into
// the run loop's own fields. Values that must be read together, like an
// index and its term, are published as one immutable pair.
type published struct {
	stateV       atomic.Uint32
	term         atomic.Uint64
	commitIndex  atomic.Uint64
	appliedIndex atomic.Uint64
	// unconfirmed mirrors st.unconfirmedSnapshot for the snapshot
	// goroutine (unconfirmed_snapshot.go).
	unconfirmed atomic.Uint64
	lastLogV    atomic.Pointer[indexTerm]
	lastSnapV   atomic.Pointer[indexTerm]
	// lastContactV is when a leader was last heard from, in Unix
	// nanoseconds; 0 means never.
	lastContactV atomic.Int64
	leaderV      atomic.Pointer[leaderInfo]
	configV      atomic.Pointer[Configuration]
}

// indexTerm is an index and the term of the entry at it.
type indexTerm struct{ index, term uint64 }

// leaderInfo is the known leader; empty when none is known.
type leaderInfo struct {
	addr ServerAddress
	id   ServerID
}

func (p *published) init() {
	p.lastLogV.Store(&indexTerm{})
	p.lastSnapV.Store(&indexTerm{})
	p.leaderV.Store(&leaderInfo{})
	p.configV.Store(&Configuration{})
}

func (p *published) state() RaftState { return RaftState(p.stateV.Load()) }

// setState publishes a role; once Shutdown is published it never changes.
func (p *published) setState(s RaftState) {
	for {
		old := p.stateV.Load()
		if RaftState(old) == Shutdown || p.stateV.CompareAndSwap(old, uint32(s)) {
			return
		}
	}
}

func (p *published) lastLog() (uint64, uint64) {
	v := p.lastLogV.Load()
	return v.index, v.term
}

func (p *published) setLastLog(index, term uint64) {
	if v := p.lastLogV.Load(); v.index != index || v.term != term {
		p.lastLogV.Store(&indexTerm{index, term})
	}
}

func (p *published) lastSnapshot() (uint64, uint64) {
	v := p.lastSnapV.Load()
	return v.index, v.term
}

func (p *published) setLastSnapshot(index, term uint64) {
	p.lastSnapV.Store(&indexTerm{index, term})
}

func (p *published) lastContact() time.Time {
	ns := p.lastContactV.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func (p *published) setLastContact(t time.Time) { p.lastContactV.Store(t.UnixNano()) }

func (p *published) leader() leaderInfo { return *p.leaderV.Load() }

func (p *published) latestConfiguration() Configuration { return p.configV.Load().Clone() }

func (p *published) setLatestConfiguration(c Configuration) {
	clone := c.Clone()
	p.configV.Store(&clone)
}
