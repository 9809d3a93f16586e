package raft

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestShutdown_IsIdempotentAndRefusesLaterCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		leader := c.waitForLeader()
		r := leader.raft
		if err := r.Shutdown().Error(); err != nil {
			t.Fatalf("first Shutdown: %v", err)
		}
		if err := r.Shutdown().Error(); err != nil {
			t.Fatalf("second Shutdown: %v", err)
		}
		if got := r.State(); got != Shutdown {
			t.Fatalf("state after Shutdown is %v", got)
		}
		if n := r.routines.running.Load() - r.routines.parked.Load(); n != 0 {
			t.Fatalf("%d goroutines still running after Shutdown returned", n)
		}
		for name, err := range map[string]error{
			"Apply":            r.Apply([]byte("x"), time.Second).Error(),
			"Barrier":          r.Barrier(time.Second).Error(),
			"VerifyLeader":     r.VerifyLeader().Error(),
			"BootstrapCluster": r.BootstrapCluster(Configuration{}).Error(),
		} {
			if !errors.Is(err, ErrRaftShutdown) {
				t.Errorf("%s after Shutdown: %v, want ErrRaftShutdown", name, err)
			}
		}
		leader.raft = nil
		c.shutdown()
		// Leaving the bubble checks that no goroutine outlives the nodes.
	})
}

// A node may begin shutting down by itself (ShutdownOnRemove, a fatal
// store error) before its owner calls Shutdown. The owner's Shutdown must
// still wait for every goroutine: the test cluster's membership test
// once ended its bubble with a replicator still running because the
// second call returned at once.
func TestShutdown_LaterCallWaitsForTheFirstToFinish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 10)
		r := leader.raft
		r.Shutdown() // begun elsewhere, not waited for
		if err := r.Shutdown().Error(); err != nil {
			t.Fatalf("second Shutdown: %v", err)
		}
		select {
		case <-r.stoppedCh:
		default:
			t.Fatal("the second Shutdown returned while the node's goroutines were still running")
		}
	})
}

// heldKeyStable is a stable store that, once armed, holds the first write
// of one key until released.
type heldKeyStable struct {
	*InmemStore
	key     []byte
	armed   atomic.Bool
	once    sync.Once
	entered chan struct{} // closed when the held write starts waiting
	release chan struct{}
}

func (s *heldKeyStable) hold(key []byte) {
	if s.armed.Load() && bytes.Equal(key, s.key) {
		s.once.Do(func() { close(s.entered) })
		<-s.release
	}
}

func (s *heldKeyStable) Set(key, val []byte) error {
	s.hold(key)
	return s.InmemStore.Set(key, val)
}

func (s *heldKeyStable) SetUint64(key []byte, val uint64) error {
	s.hold(key)
	return s.InmemStore.SetUint64(key, val)
}

// A write of the term or the vote that Shutdown cuts off (the tracked
// store answers ErrRaftShutdown, tracked_store.go) is an expected race at
// shutdown, as when a node stops during a leadership hand-off: it is
// logged, but not at ERROR.
func TestShutdown_CutOffVoteOrTermWriteIsNoError(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  []byte
		// voters 1: the node campaigns on its own; 2: it votes for a peer
		// that asks.
		voters int
		want   string
	}{
		{name: "vote for a candidate", key: keyLastVoteCand, voters: 2, want: "failed to persist vote:"},
		{name: "vote for itself", key: keyLastVoteCand, voters: 1, want: "failed to persist vote for self"},
		{name: "term of its election", key: keyCurrentTerm, voters: 1, want: "shutting down after an unrecoverable error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				logs := &timedLog{}
				conf := testConfig(t, "n0")
				conf.Logger = hclog.New(&hclog.LoggerOptions{Name: "n0", Level: hclog.Debug, Output: logs})
				store := NewInmemStore()
				stable := &heldKeyStable{InmemStore: store, key: tc.key, entered: make(chan struct{}), release: make(chan struct{})}
				_, trans := NewInmemTransport("a0")
				_, peer := NewInmemTransport("a1")
				peer.Connect("a0", trans)
				cfg := Configuration{Servers: []Server{{Suffrage: Voter, ID: "n0", Address: "a0"}}}
				if tc.voters == 2 {
					cfg.Servers = append(cfg.Servers, Server{Suffrage: Voter, ID: "p1", Address: "a1"})
				}
				if err := BootstrapCluster(conf, store, stable, NewInmemSnapshotStore(), trans, cfg); err != nil {
					t.Fatal(err)
				}
				if tc.voters == 1 {
					stable.armed.Store(true)
				}
				r, err := NewRaft(conf, &testFSM{}, store, stable, NewInmemSnapshotStore(), trans)
				if err != nil {
					t.Fatal(err)
				}
				if tc.voters == 2 {
					// Past the hold after its start, in which it refuses
					// every vote request (election.go).
					neverCampaign(t, r)
					time.Sleep(conf.HeartbeatTimeout)
					stable.armed.Store(true)
					go func() {
						var resp RequestVoteResponse
						peer.RequestVote("n0", "a0", &RequestVoteRequest{
							RPCHeader: RPCHeader{ProtocolVersion: ProtocolVersionMax, ID: []byte("p1"), Addr: []byte("a1")},
							Term:      5, LastLogIndex: 100, LastLogTerm: 100,
						}, &resp)
					}()
				}
				<-stable.entered // the run loop is inside the write
				f := r.Shutdown()
				close(stable.release)
				if err := f.Error(); err != nil {
					t.Fatal(err)
				}
				synctest.Wait()
				if lines, _ := logs.matching(tc.want); len(lines) != 1 || !strings.Contains(lines[0], "[DEBUG]") ||
					!strings.Contains(lines[0], ErrRaftShutdown.Error()) {
					t.Errorf("want one DEBUG line %q with %q, got %q", tc.want, ErrRaftShutdown, lines)
				}
				if lines, _ := logs.matching("[ERROR]"); len(lines) > 0 {
					t.Errorf("logged at ERROR: %q", lines)
				}
			})
		})
	}
}

// Any other failure is still logged at ERROR.
func TestShutdown_LogFailureLevels(t *testing.T) {
	logs := &timedLog{}
	r := &Raft{logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: logs})}
	r.logFailure("disk", fmt.Errorf("persisting vote candidate: %w", errors.New("disk full")))
	r.logFailure("stopping", fmt.Errorf("persisting vote candidate: %w", ErrRaftShutdown))
	for msg, level := range map[string]string{"disk": "[ERROR]", "stopping": "[DEBUG]"} {
		if lines, _ := logs.matching(msg); len(lines) != 1 || !strings.Contains(lines[0], level) {
			t.Errorf("%s: want one line at %s, got %q", msg, level, lines)
		}
	}
}
