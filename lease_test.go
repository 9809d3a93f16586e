package raft

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Lease reads (lease.go) and the startup vote hold (vote_hold.go).

const (
	testLease      = 100 * time.Millisecond
	testLeaseDrift = 15 * time.Millisecond
)

// leaseConf turns leases on with timings the tests reason about. Each
// node's clock drifts by a different amount within the margin: node0 runs
// 5% slow, node2 5% fast, so a leader measuring less than
// testLease-testLeaseDrift means every other server measured less than
// testLease.
func leaseConf(c *Config) {
	c.HeartbeatTimeout = testLease
	c.ElectionTimeout = testLease
	c.LeaderLeaseTimeout = testLease
	c.LeaseReadTimeout = testLease
	c.LeaseClockDrift = testLeaseDrift
	c.StartupVoteHold = testLease
	switch c.LocalID {
	case "node0":
		c.clock = newScaledClock(0.95)
	case "node2":
		c.clock = newScaledClock(1.05)
	}
}

// sentAppends returns how many AppendEntries node has sent so far.
func sentAppends(n *testNode) int64 { return n.strict.trans.appends.Load() }

func TestNewLeaseConfig_Validation(t *testing.T) {
	ok := func(c *Config) {}
	for _, tc := range []struct {
		name   string
		adjust func(*Config)
		want   string
	}{
		{"off", ok, ""},
		{"on", func(c *Config) {
			c.LeaseReadTimeout, c.LeaseClockDrift, c.StartupVoteHold = 500*time.Millisecond, 50*time.Millisecond, time.Second
		}, ""},
		{"hold alone", func(c *Config) { c.StartupVoteHold = time.Second }, ""},
		{"negative lease", func(c *Config) { c.LeaseReadTimeout = -1 }, "LeaseReadTimeout"},
		{"negative drift", func(c *Config) { c.LeaseClockDrift = -1 }, "LeaseClockDrift"},
		{"negative hold", func(c *Config) { c.StartupVoteHold = -1 }, "StartupVoteHold"},
		{"drift eats the lease", func(c *Config) {
			c.LeaseReadTimeout, c.LeaseClockDrift, c.StartupVoteHold = 500*time.Millisecond, 500*time.Millisecond, time.Second
		}, "LeaseClockDrift"},
		{"lease past the heartbeat timeout", func(c *Config) {
			c.LeaseReadTimeout, c.StartupVoteHold = 1500*time.Millisecond, 2*time.Second
		}, "HeartbeatTimeout"},
		{"hold shorter than the lease", func(c *Config) {
			c.LeaseReadTimeout, c.StartupVoteHold = 500*time.Millisecond, 100*time.Millisecond
		}, "StartupVoteHold"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.LocalID = "a"
			tc.adjust(c)
			err := ValidateConfig(c)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error about %s", err, tc.want)
			}
		})
	}
}

func TestNewLeaseConfig_ReloadKeepsTheBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 1, clusterOpts{conf: leaseConf})
		defer c.shutdown()
		leader := c.waitForLeader()
		rc := leader.raft.ReloadableConfig()
		rc.HeartbeatTimeout = testLease / 2
		rc.ElectionTimeout = testLease / 2
		if err := leader.raft.ReloadConfig(rc); err == nil {
			t.Fatal("a reload shortened HeartbeatTimeout below LeaseReadTimeout")
		}
	})
}

func TestNewLeaseStart_QuorumOfSendTimes(t *testing.T) {
	// The leader at 100, four followers: three voters reached 70.
	if got := leaseStart([]uint64{100, 50, 70, 0, 90}); got != 70 {
		t.Fatalf("lease start %d, want 70", got)
	}
	// Three that never answered leave no quorum.
	if got := leaseStart([]uint64{100, 0, 0, 0, 90}); got != 0 {
		t.Fatalf("lease start %d without a quorum, want 0", got)
	}
	if got := leaseStart([]uint64{100}); got != 100 {
		t.Fatalf("lease start of a single voter %d, want its own stamp", got)
	}
	if got := leaseStart(nil); got != 0 {
		t.Fatalf("lease start with no voters %d, want 0", got)
	}
	conf := &Config{LeaseReadTimeout: 100, LeaseClockDrift: 10}
	if got := leaseExpiry(70, conf); got != 160 {
		t.Fatalf("expiry %d, want 160", got)
	}
	if got := leaseExpiry(0, conf); got != 0 {
		t.Fatalf("expiry of no lease %d, want 0", got)
	}
	if got := leaseExpiry(70, &Config{}); got != 0 {
		t.Fatalf("expiry with leases off %d, want 0", got)
	}
}

func TestNewLease_ReadsCostNoRPCWhileHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, leader := startLeased(t, nil, 1)
		// Let the heartbeats settle: every goroutine is waiting on a timer.
		synctest.Wait()
		before := sentAppends(leader)
		for i := 0; i < 100; i++ {
			if err := leader.raft.ReadLease(0).Error(); err != nil {
				t.Fatalf("lease read %d: %v", i, err)
			}
		}
		if after := sentAppends(leader); after != before {
			t.Fatalf("100 lease reads sent %d AppendEntries, want none", after-before)
		}
		// The same reads through ReadIndex each confirm with a quorum.
		for i := 0; i < 10; i++ {
			if err := leader.raft.ReadIndex(0).Error(); err != nil {
				t.Fatalf("read index %d: %v", i, err)
			}
		}
		if after := sentAppends(leader); after < before+10 {
			t.Fatalf("10 read-index reads sent %d AppendEntries, want at least 10", after-before)
		}
	})
}

func TestNewLease_ReadAfterWriteObservesIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, leader := startLeased(t, nil, 1)
		for i := 0; i < 50; i++ {
			var last ApplyFuture
			for j := 0; j < 5; j++ {
				last = leader.raft.Apply([]byte(fmt.Sprintf("w-%d-%d", i, j)), 0)
			}
			if err := last.Error(); err != nil {
				t.Fatal(err)
			}
			// Let the followers learn the commit index first.
			synctest.Wait()
			before := sentAppends(leader)
			f := leader.raft.ReadLease(0)
			if err := f.Error(); err != nil {
				t.Fatalf("lease read: %v", err)
			}
			if f.Index() < last.Index() {
				t.Fatalf("lease read at %d, before the completed write at %d", f.Index(), last.Index())
			}
			if got, want := leader.fsm.len(), 1+(i+1)*5; got != want {
				t.Fatalf("the lease read saw %d commands, want %d", got, want)
			}
			if sentAppends(leader) != before {
				t.Fatal("the lease read went to the followers")
			}
			time.Sleep(7 * time.Millisecond)
		}
	})
}

func TestNewLease_PartitionedLeaderStopsBeforeANewLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, leader := startLeased(t, nil, 1)
		var mu sync.Mutex
		var electedAt time.Time
		var others []*testNode
		for _, n := range c.nodes {
			if n == leader {
				continue
			}
			others = append(others, n)
			n.raft.RegisterObserver(NewObserver(nil, false, func(o *Observation) bool {
				if s, ok := o.Data.(RaftState); ok && s == Leader {
					mu.Lock()
					if electedAt.IsZero() {
						electedAt = time.Now()
					}
					mu.Unlock()
				}
				return false
			}))
		}
		synctest.Wait()
		cut := time.Now()
		c.partition(leader)
		served, lastServed := 0, time.Time{}
		for {
			// A read served on the cut-off leader came from its lease: its
			// ReadIndex round cannot succeed.
			err := leader.raft.ReadLease(0).Error()
			if err != nil {
				if !errors.Is(err, ErrLeadershipLost) && !errors.Is(err, ErrNotLeader) {
					t.Fatalf("lease read on the cut-off leader: %v", err)
				}
				break
			}
			served++
			lastServed = time.Now()
			time.Sleep(time.Millisecond)
		}
		if served == 0 {
			t.Fatal("the leader never read from its lease after the cut")
		}
		// The leader's clock may be 5% slow: its lease ends within
		// (testLease-testLeaseDrift)/0.95 of the last accepted send.
		if limit := (testLease - testLeaseDrift) * 100 / 95; lastServed.Sub(cut) >= limit {
			t.Fatalf("served a lease read %v after the cut, past %v", lastServed.Sub(cut), limit)
		}
		newLeader := c.waitForLeader(others...)
		applyAll(t, newLeader, "y", 1)
		mu.Lock()
		elected := electedAt
		mu.Unlock()
		if !lastServed.Before(elected) {
			t.Fatalf("old leader served a lease read at %v, a new leader was elected at %v", lastServed.Sub(cut), elected.Sub(cut))
		}
		if err := leader.raft.ReadLease(0).Error(); err == nil {
			t.Fatal("the deposed leader answered a lease read")
		}
	})
}

func TestNewLease_TransferEndsTheLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, leader := startLeased(t, nil, 1)
		var target, other *testNode
		for _, n := range c.nodes {
			switch {
			case n == leader:
			case target == nil:
				target = n
			default:
				other = n
			}
		}
		// The target falls behind, so the transfer waits for it to catch
		// up: it stays in progress.
		c.partition(target)
		applyAll(t, leader, "y", 1)
		synctest.Wait()
		transfer := make(chan error, 1)
		go func() { transfer <- leader.raft.LeadershipTransferToServer(target.id, target.addr).Error() }()
		synctest.Wait()
		before := sentAppends(leader)
		f := leader.raft.ReadLease(0)
		if err := f.Error(); err != nil {
			t.Fatalf("lease read during a transfer: %v", err)
		}
		if sentAppends(leader) == before {
			t.Fatal("a lease read during a transfer was answered without a round trip")
		}
		if got := other.raft.AppliedIndex(); got < f.Index() {
			// Not required, but the quorum that confirmed it holds it.
			t.Logf("other follower at %d, read at %d", got, f.Index())
		}
		if err := <-transfer; err == nil {
			t.Fatal("the transfer to a cut-off server succeeded")
		}
		if leader.raft.State() != Leader {
			t.Fatal("the leader lost its role")
		}
		// The TimeoutNow of a transfer may still arrive: for the rest of
		// the term the leader keeps confirming reads.
		time.Sleep(testLease / 2)
		synctest.Wait()
		before = sentAppends(leader)
		if err := leader.raft.ReadLease(0).Error(); err != nil {
			t.Fatalf("lease read after the transfer: %v", err)
		}
		if sentAppends(leader) == before {
			t.Fatal("a lease read after a transfer in the same term was answered without a round trip")
		}
	})
}

func TestNewLease_RestartedVoterHoldsItsVote(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const hold = 2 * time.Second
		voter, cand, probe := restartOneVoter(t, func(conf *Config) { conf.StartupVoteHold = hold })
		started := time.Now()
		term := voter.raft.CurrentTerm()
		header := RPCHeader{ProtocolVersion: ProtocolVersionMax, ID: []byte(cand.id), Addr: probe.EncodePeer(cand.id, cand.addr)}
		vote := func(transfer bool) bool {
			t.Helper()
			term++
			var resp RequestVoteResponse
			req := &RequestVoteRequest{RPCHeader: header, Term: term, LastLogIndex: 1 << 40, LastLogTerm: 1 << 40, LeadershipTransfer: transfer}
			if err := probe.RequestVote(voter.id, voter.addr, req, &resp); err != nil {
				t.Fatal(err)
			}
			return resp.Granted
		}
		preVote := func() bool {
			t.Helper()
			var resp RequestPreVoteResponse
			req := &RequestPreVoteRequest{RPCHeader: header, Term: term + 1, LastLogIndex: 1 << 40, LastLogTerm: 1 << 40}
			if err := probe.RequestPreVote(voter.id, voter.addr, req, &resp); err != nil {
				t.Fatal(err)
			}
			return resp.Granted
		}
		if vote(false) || preVote() {
			t.Fatal("the restarted voter voted at once")
		}
		time.Sleep(hold / 2)
		if vote(false) || preVote() {
			t.Fatal("the restarted voter voted half way through its hold")
		}
		if !vote(true) {
			t.Fatal("the restarted voter refused a vote for a leadership transfer")
		}
		time.Sleep(hold - time.Since(started) - time.Millisecond)
		if vote(false) || preVote() {
			t.Fatalf("the restarted voter voted %v after it started, within its hold", time.Since(started))
		}
		time.Sleep(2 * time.Millisecond)
		if !preVote() || !vote(false) {
			t.Fatal("the restarted voter still refuses votes after its hold")
		}
	})
}

// Without StartupVoteHold a restarted voter still holds its vote for one
// HeartbeatTimeout (the startup hold every server has, vote_hold.go), and
// no longer.
func TestNewLease_WithoutHoldARestartedVoterVotesAfterOneHeartbeatTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		voter, cand, probe := restartOneVoter(t, nil)
		started := time.Now()
		vote := func() bool {
			t.Helper()
			var resp RequestVoteResponse
			req := &RequestVoteRequest{
				RPCHeader: RPCHeader{ProtocolVersion: ProtocolVersionMax, ID: []byte(cand.id), Addr: probe.EncodePeer(cand.id, cand.addr)},
				Term:      voter.raft.CurrentTerm() + 1, LastLogIndex: 1 << 40, LastLogTerm: 1 << 40,
			}
			if err := probe.RequestVote(voter.id, voter.addr, req, &resp); err != nil {
				t.Fatal(err)
			}
			return resp.Granted
		}
		if vote() {
			t.Fatal("the restarted voter voted at once, within its startup hold")
		}
		time.Sleep(voter.raft.config().HeartbeatTimeout - time.Since(started) + time.Millisecond)
		if !vote() {
			t.Fatalf("without StartupVoteHold the restarted voter still refused %v after it started", time.Since(started))
		}
	})
}

func TestNewLease_NewLeaderWaitsForItsFirstCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		checkNewLeaderReadWaitsForItsFirstCommit(t, leaseConf, (*Raft).ReadLease, testLease/4)
	})
}

func TestNewLease_ShutdownHandOffEndsTheLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, leader := startLeased(t, func(conf *Config) { conf.LeadershipTransferOnShutdown = true }, 1)
		synctest.Wait()
		if err := leader.raft.ReadLease(0).Error(); err != nil {
			t.Fatalf("lease read before the hand-off: %v", err)
		}
		// Cut the leader off and give it an entry no follower has, so the
		// hand-off waits to catch its target up, while the lease, renewed
		// a moment ago, still runs.
		c.partition(leader)
		leader.raft.Apply([]byte("late"), 0)
		stopped := make(chan error, 1)
		go func() { stopped <- leader.raft.Shutdown().Error() }()
		synctest.Wait()
		if leader.raft.State() != Leader {
			t.Fatal("the leader stepped down before the hand-off started")
		}
		// Errors, not fatal: the node must finish stopping either way.
		if err := leader.raft.ReadLease(0).Error(); err == nil {
			t.Error("a lease read was served during the hand-off at Shutdown")
		}
		if err := <-stopped; err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		leader.raft = nil
		c.mu.Unlock()
		if leader.strict != nil {
			leader.strict.node.shutdownReturned()
		}
	})
}
