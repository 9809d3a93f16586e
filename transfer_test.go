package raft

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// Leadership transfer (Raft thesis §3.10): whom it may go to, where its
// TimeoutNow is sent, and which answer counts.

func TestLeadershipTransfer_ToANonVoterIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		learner := c.newNode("learner")
		c.start(learner)
		if err := leader.raft.AddNonvoter(learner.id, learner.addr, 0, 0).Error(); err != nil {
			t.Fatal(err)
		}
		c.waitFor(time.Second, "the non-voter to catch up", func() bool {
			return learner.raft.LastIndex() == leader.raft.LastIndex()
		})
		err := leader.raft.LeadershipTransferToServer(learner.id, learner.addr).Error()
		if !errors.Is(err, ErrLeadershipTransferToNonVoter) {
			t.Fatalf("transfer to a non-voter: %v, want ErrLeadershipTransferToNonVoter", err)
		}
		if leader.raft.State() != Leader || learner.raft.State() != Follower {
			t.Fatalf("after the refused transfer the leader is %v and the non-voter %v", leader.raft.State(), learner.raft.State())
		}
	})
}

// spyServer plays a server at an address of the test's choosing: it hands
// every TimeoutNow it receives to the test.
type spyServer struct {
	trans *InmemTransport
	got   chan RPC
	done  chan struct{}
}

func startSpy(addr ServerAddress) *spyServer {
	s := &spyServer{got: make(chan RPC, 16), done: make(chan struct{})}
	_, s.trans = NewInmemTransport(addr)
	go func() {
		for {
			select {
			case <-s.done:
				return
			case rpc := <-s.trans.Consumer():
				if _, ok := rpc.Command.(*TimeoutNowRequest); ok {
					s.got <- rpc
					continue
				}
				rpc.Respond(nil, fmt.Errorf("%T not played", rpc.Command))
			}
		}
	}()
	return s
}

// startTransferSpy starts a three-node cluster, picks a follower of its
// leader as a transfer target and starts a spy at addr, which the leader
// can reach. It runs inside a synctest bubble; the spy is stopped and the
// cluster shut down when the test ends.
func startTransferSpy(t *testing.T, addr ServerAddress) (leader, target *testNode, spy *spyServer) {
	t.Helper()
	c := newTestCluster(t, 3, clusterOpts{})
	t.Cleanup(c.shutdown)
	leader = c.waitForLeader()
	for _, n := range c.nodes {
		if n != leader {
			target = n
		}
	}
	spy = startSpy(addr)
	t.Cleanup(func() { close(spy.done) })
	leader.trans.Connect(addr, spy.trans)
	return leader, target, spy
}

// next returns the next TimeoutNow the spy receives.
func (s *spyServer) next(t *testing.T) RPC {
	t.Helper()
	select {
	case rpc := <-s.got:
		return rpc
	case <-time.After(time.Second):
		t.Fatal("no TimeoutNow reached the spy's address")
		return RPC{}
	}
}

// The reference sends the TimeoutNow of LeadershipTransferToServer to the
// address the caller gave, not to the one in the configuration.
func TestLeadershipTransfer_SendsToTheGivenAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		leader, target, spy := startTransferSpy(t, "addr-elsewhere")
		f := leader.raft.LeadershipTransferToServer(target.id, "addr-elsewhere")
		rpc := spy.next(t)
		rpc.Respond(&TimeoutNowResponse{}, errors.New("not here"))
		if err := f.Error(); err == nil {
			t.Fatal("the transfer succeeded although its TimeoutNow failed")
		}
		if target.raft.State() == Leader {
			t.Fatal("the TimeoutNow went to the configuration's address")
		}
	})
}

// A TimeoutNow answer that arrives after its transfer timed out must not
// be taken for the answer of the next transfer.
func TestLeadershipTransfer_LateAnswerIsNotCreditedToTheNext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		leader, target, spy := startTransferSpy(t, "addr-slow")

		first := leader.raft.LeadershipTransferToServer(target.id, "addr-slow")
		late := spy.next(t) // held: the first transfer times out
		if err := first.Error(); err == nil {
			t.Fatal("the first transfer succeeded although its TimeoutNow was never answered")
		}
		second := leader.raft.LeadershipTransferToServer(target.id, "addr-slow")
		pending := spy.next(t)
		secondDone := make(chan error, 1)
		go func() { secondDone <- second.Error() }()

		// The first TimeoutNow's answer comes in now, a failure.
		late.Respond(&TimeoutNowResponse{}, errors.New("late failure of the first transfer"))
		synctest.Wait()
		select {
		case err := <-secondDone:
			t.Fatalf("the second transfer ended with the first one's answer: %v", err)
		default:
		}
		pending.Respond(&TimeoutNowResponse{}, errors.New("the second transfer's own failure"))
		if err := <-secondDone; err == nil || !strings.Contains(err.Error(), "own failure") {
			t.Fatalf("second transfer: %v, want its own failure", err)
		}
	})
}
