package sidebyside

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeCluster and fakeNode stand for a cluster whose leadership the test
// moves by hand: a node passes the lead to the next running one when it
// loses it or crashes.
type fakeCluster struct{ nodes []*fakeNode }

func (c *fakeCluster) Nodes() []Node {
	var out []Node
	for _, n := range c.nodes {
		out = append(out, n)
	}
	return out
}
func (c *fakeCluster) AddNode() (Node, error) { return nil, errors.New("not supported") }
func (c *fakeCluster) Close() error           { return nil }

type fakeNode struct {
	Node // the methods failover does not call are left out
	c    *fakeCluster
	id   string
	ch   chan bool

	mu      sync.Mutex
	leader  bool
	crashed bool
	applies int
	// loseAt is the Apply call, counted from 1, that fails with the lead
	// lost; 0 for none.
	loseAt int
}

func (n *fakeNode) ID() string            { return n.id }
func (n *fakeNode) LeaderCh() <-chan bool { return n.ch }

func (n *fakeNode) IsLeader() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leader
}

func (n *fakeNode) Apply([]byte, time.Duration) error {
	n.mu.Lock()
	if !n.leader {
		n.mu.Unlock()
		return errors.New("not leader")
	}
	n.applies++
	lose := n.applies == n.loseAt
	if lose {
		n.leader = false
	}
	n.mu.Unlock()
	if lose {
		n.passLead()
		return errors.New("leadership lost while committing log")
	}
	return nil
}

func (n *fakeNode) Crash() {
	n.mu.Lock()
	n.crashed, n.leader = true, false
	n.mu.Unlock()
	n.passLead()
}

// passLead makes the next running node after n the leader.
func (n *fakeNode) passLead() {
	for i, m := range n.c.nodes {
		if m != n {
			continue
		}
		for j := 1; j < len(n.c.nodes); j++ {
			next := n.c.nodes[(i+j)%len(n.c.nodes)]
			next.mu.Lock()
			if !next.crashed {
				next.leader = true
				next.mu.Unlock()
				select {
				case next.ch <- true:
				default:
				}
				return
			}
			next.mu.Unlock()
		}
	}
}

// TestFailoverSettlesAgainAfterLosingTheLead: a leader that loses its
// place while committing the commands before the kill (a starved machine)
// makes failover wait for the next leader and settle again, not fail.
func TestFailoverSettlesAgainAfterLosingTheLead(t *testing.T) {
	c := &fakeCluster{}
	for _, id := range []string{"a", "b", "c"} {
		c.nodes = append(c.nodes, &fakeNode{c: c, id: id, ch: make(chan bool, 1)})
	}
	a, b := c.nodes[0], c.nodes[1]
	a.leader = true
	a.loseAt = 1 + settleCommands/2 // after awaitLeader's command and a few settling ones
	var m Measurement
	if err := failover(c, true, Options{CmdSize: 16, Timeout: 10 * time.Second}, &m); err != nil {
		t.Fatalf("failover: %v", err)
	}
	if b.applies != 1+settleCommands || !b.crashed {
		t.Errorf("b, the leader after a, committed %d commands and crashed %v; want %d and true", b.applies, b.crashed, 1+settleCommands)
	}
	if c.nodes[2].applies != 1 {
		t.Errorf("c committed %d commands after the crash, want 1", c.nodes[2].applies)
	}
}
