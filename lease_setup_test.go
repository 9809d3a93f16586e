package raft

import "testing"

// Cluster set-ups that the read tests share (lease_test.go,
// lease_view_test.go, read_index_test.go).

// startLeased starts a three-node cluster with leaseConf, then edit (when
// not nil), waits for an agreed leader and applies cmds commands through
// it. It runs inside a synctest bubble; the cluster is shut down when the
// test ends.
func startLeased(t *testing.T, edit func(*Config), cmds int) (*testCluster, *testNode) {
	t.Helper()
	c := newTestCluster(t, 3, clusterOpts{conf: func(conf *Config) {
		leaseConf(conf)
		if edit != nil {
			edit(conf)
		}
	}})
	t.Cleanup(c.shutdown)
	leader := c.waitForLeader()
	applyAll(t, leader, "x", cmds)
	return c, leader
}

// newNotifyCluster starts a three-node cluster whose NotifyCh are
// unbuffered channels that nobody reads, after edit (when not nil) has
// adjusted each configuration: a new leader's run loop waits to tell its
// channel before it takes any request. It returns the channels by node.
// It runs inside a synctest bubble; the cluster is shut down when the test
// ends.
func newNotifyCluster(t *testing.T, edit func(*Config)) (*testCluster, map[ServerID]chan bool) {
	t.Helper()
	notify := make(map[ServerID]chan bool)
	c := newTestCluster(t, 3, clusterOpts{conf: func(conf *Config) {
		if edit != nil {
			edit(conf)
		}
		ch := make(chan bool)
		notify[conf.LocalID] = ch
		conf.NotifyCh = ch
	}})
	t.Cleanup(c.shutdown)
	return c, notify
}

// sendNewerTerm has from send leader an AppendEntries of term, as the
// leader of that term would, and returns the transport's error.
func sendNewerTerm(from, leader *testNode, term uint64) error {
	req := &AppendEntriesRequest{
		RPCHeader: RPCHeader{ProtocolVersion: ProtocolVersionMax, ID: []byte(from.id), Addr: []byte(from.addr)},
		Term:      term,
		Leader:    from.trans.EncodePeer(from.id, from.addr),
	}
	var resp AppendEntriesResponse
	return from.trans.AppendEntries(leader.id, leader.addr, req, &resp)
}

// restartOneVoter runs a three-node cluster, with conf adjusting each
// configuration, until it has applied a command, stops every node and
// restarts node0 alone. It returns node0, node1 and a transport at node1's
// address connected to node0: a stand-in for node1 campaigning, asking the
// restarted voter directly. It runs inside a synctest bubble; the cluster
// is shut down when the test ends.
func restartOneVoter(t *testing.T, conf func(*Config)) (voter, cand *testNode, probe *InmemTransport) {
	t.Helper()
	c := newTestCluster(t, 3, clusterOpts{conf: conf})
	t.Cleanup(c.shutdown)
	leader := c.waitForLeader()
	applyAll(t, leader, "x", 1)
	c.shutdown()
	voter, cand = c.nodes[0], c.nodes[1]
	c.start(voter)
	_, probe = NewInmemTransport(cand.addr)
	probe.Connect(voter.addr, voter.trans)
	return voter, cand, probe
}
