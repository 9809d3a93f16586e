package raft

import (
	"testing"
	"testing/synctest"
	"time"
)

// validTransition lists the role changes a node can make.
var validTransition = map[[2]RaftState]bool{
	{Follower, Candidate}: true,
	{Candidate, Leader}:   true,
	{Candidate, Follower}: true,
	{Leader, Follower}:    true,
	{Leader, Candidate}:   true, // TimeoutNow reaching a leader
	{Follower, Shutdown}:  true,
	{Candidate, Shutdown}: true,
	{Leader, Shutdown}:    true,
}

func TestObserver_BlockingObserverSeesEveryTransition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		type record struct {
			states []RaftState
			done   chan struct{}
		}
		records := make(map[ServerID]*record)
		observers := make(map[ServerID]*Observer)
		for _, n := range c.nodes {
			ch := make(chan Observation) // unbuffered: the node waits for every send
			rec := &record{states: []RaftState{Follower}, done: make(chan struct{})}
			records[n.id] = rec
			obs := NewObserver(ch, true, func(o *Observation) bool {
				_, ok := o.Data.(RaftState)
				return ok
			})
			observers[n.id] = obs
			n.raft.RegisterObserver(obs)
			go func() {
				defer close(rec.done)
				for {
					select {
					case o := <-ch:
						// A slow reader: the node must wait, not drop.
						time.Sleep(time.Millisecond)
						rec.states = append(rec.states, o.Data.(RaftState))
					case <-time.After(time.Minute):
						return
					}
				}
			}()
		}
		for round := 0; round < 3; round++ {
			leader := c.waitForLeader()
			c.partition(leader)
			c.waitFor(time.Second, "the isolated leader to step down", func() bool {
				return leader.raft.State() != Leader
			})
			c.heal()
		}
		c.waitForLeader()
		final := make(map[ServerID]RaftState)
		for _, n := range c.nodes {
			final[n.id] = n.raft.State()
			n.raft.DeregisterObserver(observers[n.id])
		}
		c.shutdown()
		for _, n := range c.nodes {
			rec := records[n.id]
			<-rec.done
			if got := observers[n.id].GetNumDropped(); got != 0 {
				t.Errorf("%s: blocking observer dropped %d observations", n.id, got)
			}
			if got, want := uint64(len(rec.states)-1), observers[n.id].GetNumObserved(); got != want {
				t.Errorf("%s: reader saw %d observations, observer counted %d", n.id, got, want)
			}
			for i := 1; i < len(rec.states); i++ {
				if step := [2]RaftState{rec.states[i-1], rec.states[i]}; !validTransition[step] {
					t.Errorf("%s: impossible transition %v -> %v in %v", n.id, step[0], step[1], rec.states)
				}
			}
			if last := rec.states[len(rec.states)-1]; last != final[n.id] {
				t.Errorf("%s: last observed state %v, node was %v", n.id, last, final[n.id])
			}
		}
	})
}

func TestLeaderCh_HoldsTheLatestState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		// Nobody read LeaderCh while it became leader; now it loses
		// leadership. The channel must hold only the newest value.
		c.partition(leader)
		c.waitFor(time.Second, "the isolated leader to step down", func() bool {
			return leader.raft.State() != Leader
		})
		select {
		case v := <-leader.raft.LeaderCh():
			if v {
				t.Fatal("LeaderCh held true after the node stepped down")
			}
		default:
			t.Fatal("LeaderCh held nothing")
		}
		select {
		case v := <-leader.raft.LeaderCh():
			t.Fatalf("LeaderCh held a second, stale value %v", v)
		default:
		}
		// Followers that never led have nothing.
		for _, n := range c.nodes {
			if n == leader || n.raft.State() == Leader {
				continue
			}
			select {
			case v := <-n.raft.LeaderCh():
				if v {
					t.Fatalf("%s never led but LeaderCh says true", n.id)
				}
			default:
			}
		}
	})
}

func TestNotifyCh_ReceivesEveryChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		notes := make(map[ServerID]chan bool)
		c := newTestCluster(t, 3, clusterOpts{conf: func(conf *Config) {
			ch := make(chan bool, 16)
			notes[conf.LocalID] = ch
			conf.NotifyCh = ch
		}})
		defer c.shutdown()
		leader := c.waitForLeader()
		if v := <-notes[leader.id]; !v {
			t.Fatal("the leader's NotifyCh got false first")
		}
		c.partition(leader)
		c.waitFor(time.Second, "the isolated leader to step down", func() bool {
			return leader.raft.State() != Leader
		})
		if v := <-notes[leader.id]; v {
			t.Fatal("the deposed leader's NotifyCh got true")
		}
	})
}
