package raft

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Verification rounds ask only a quorum (beginVerifyRound, leader.go).

// heartbeatLinks wraps every node's transport: it counts the heartbeats
// sent to each address, and delays those sent to some.
type heartbeatLinks struct {
	mu    sync.Mutex
	sent  map[ServerAddress]int
	delay map[ServerAddress]time.Duration
	// readIndex counts the ReadIndex requests sent (follower reads).
	readIndex int
}

func newHeartbeatLinks() *heartbeatLinks {
	return &heartbeatLinks{sent: make(map[ServerAddress]int), delay: make(map[ServerAddress]time.Duration)}
}

type heartbeatLinksTransport struct {
	*InmemTransport
	links *heartbeatLinks
}

func (l *heartbeatLinks) wrap(t *InmemTransport) Transport {
	return &heartbeatLinksTransport{InmemTransport: t, links: l}
}

// setSlow delays the heartbeats sent to addr by d.
func (l *heartbeatLinks) setSlow(addr ServerAddress, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.delay[addr] = d
}

func (l *heartbeatLinks) count(addr ServerAddress) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sent[addr]
}

func (t *heartbeatLinksTransport) AppendEntries(id ServerID, target ServerAddress, args *AppendEntriesRequest, resp *AppendEntriesResponse) error {
	if len(args.Entries) == 0 && args.PrevLogEntry == 0 && args.LeaderCommitIndex == 0 {
		l := t.links
		l.mu.Lock()
		l.sent[target]++
		d := l.delay[target]
		l.mu.Unlock()
		if d > 0 {
			time.Sleep(d) // a slow link, in the bubble's fake time
		}
	}
	return t.InmemTransport.AppendEntries(id, target, args, resp)
}

// ReadIndex counts the follower's requests as heartbeats to target are
// counted, and delays them as much.
func (t *heartbeatLinksTransport) ReadIndex(id ServerID, target ServerAddress, args *ReadIndexRequest, resp *ReadIndexResponse) error {
	l := t.links
	l.mu.Lock()
	l.readIndex++
	d := l.delay[target]
	l.mu.Unlock()
	if d > 0 {
		time.Sleep(d) // a slow link, in the bubble's fake time
	}
	return t.InmemTransport.ReadIndex(id, target, args, resp)
}

// readIndexRequests returns how many ReadIndex requests were sent.
func (l *heartbeatLinks) readIndexRequests() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.readIndex
}

// newHeartbeatLinksCluster starts three nodes whose heartbeats to the
// returned slow follower take a millisecond, and returns once the leader
// has committed an entry of its term.
func newHeartbeatLinksCluster(t *testing.T) (c *testCluster, leader, fast, slow *testNode, links *heartbeatLinks) {
	links = newHeartbeatLinks()
	c = newTestCluster(t, 3, clusterOpts{lax: true, trans: links.wrap})
	leader = c.waitForLeader()
	applyAll(t, leader, "x", 3)
	others := c.others(leader)
	fast, slow = others[0], others[1]
	links.setSlow(slow.addr, time.Millisecond)
	return c, leader, fast, slow, links
}

// With three voters, a round asks only the follower that acknowledged the
// previous one first: the slower follower receives only the heartbeats of
// its own schedule, none per round.
func TestVerifyRound_AsksOnlyAQuorum(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, leader, fast, slow, links := newHeartbeatLinksCluster(t)
		defer c.shutdown()
		// Reads spaced out, so that every heartbeat of the slow link has
		// come back before the next round starts.
		const n = 20
		const spacing = 2 * time.Millisecond
		for range 2 {
			if err := leader.raft.ReadIndex(0).Error(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(spacing)
		}
		fast0, slow0 := links.count(fast.addr), links.count(slow.addr)
		start := time.Now()
		for i := range n {
			if err := leader.raft.ReadIndex(0).Error(); err != nil {
				t.Fatalf("read %d: %v", i, err)
			}
			time.Sleep(spacing)
		}
		scheduled := int(time.Since(start)/(leader.conf.HeartbeatTimeout/10)) + 1
		gotFast, gotSlow := links.count(fast.addr)-fast0, links.count(slow.addr)-slow0
		if gotFast < n {
			t.Fatalf("%d rounds sent %d heartbeats to the fast follower, want at least %d", n, gotFast, n)
		}
		if gotSlow > scheduled {
			t.Fatalf("%d rounds sent %d heartbeats to the slow follower, want at most the %d of its schedule", n, gotSlow, scheduled)
		}
	})
}

// A round that asked only the follower that answered the previous one asks
// the other too when that follower does not answer: the read waits about
// minRoundWiden and the other's round trip, not for the other's next
// scheduled heartbeat.
func TestVerifyRound_WidensWhenTheAskedFollowerFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, leader, fast, _, _ := newHeartbeatLinksCluster(t)
		defer c.shutdown()
		for range 3 {
			if err := leader.raft.ReadIndex(0).Error(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond)
		}
		c.partition(fast)
		start := time.Now()
		if err := leader.raft.ReadIndex(0).Error(); err != nil {
			t.Fatal(err)
		}
		want := minRoundWiden + time.Millisecond
		if waited := time.Since(start); waited > want {
			t.Fatalf("the read waited %v with the asked follower cut off, want at most %v", waited, want)
		}
	})
}
