package raft

import (
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// The server reads pipelined requests ahead of their answers: every
// request the pipeline has in flight reaches the node before the first is
// answered, at most serverReadAhead of them, and the answers go back in
// request order whatever order the node answers in.
func TestNetTransport_ReadsAheadAndAnswersInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := newNetTestNode(t, network, "10.0.0.1:1", nil)
		held := make(chan RPC, 2*serverReadAhead)
		server.serve(func(rpc RPC) { held <- rpc })
		const total = serverReadAhead + 4
		client := newNetTestNode(t, network, "10.0.0.2:1", func(c *NetworkTransportConfig) { c.MaxRPCsInFlight = total + 2 })

		p, err := client.AppendEntriesPipeline("s", server.addr)
		if err != nil {
			t.Fatalf("AppendEntriesPipeline: %v", err)
		}
		go func() {
			for i := 0; i < total; i++ {
				req := &AppendEntriesRequest{Term: 1, PrevLogEntry: uint64(i), LeaderCommitIndex: 1,
					Entries: []*Log{{Index: uint64(i + 1), Term: 1, Data: []byte{byte(i)}}}}
				if _, err := p.AppendEntries(req, &AppendEntriesResponse{}); err != nil {
					t.Errorf("AppendEntries %d: %v", i, err)
					return
				}
			}
		}()

		// Nothing answered yet: exactly the read-ahead bound has arrived.
		synctest.Wait()
		if got := len(held); got != serverReadAhead {
			t.Fatalf("node holds %d unanswered requests, want %d (serverReadAhead)", got, serverReadAhead)
		}
		var rpcs []RPC
		for len(held) > 0 {
			rpcs = append(rpcs, <-held)
		}
		// Answer them newest first: the writer must still send them oldest
		// first, and each answer frees room for one more request.
		for i := len(rpcs) - 1; i >= 0; i-- {
			netEchoAnswer(rpcs[i])
		}
		synctest.Wait()
		if got := len(held); got != total-serverReadAhead {
			t.Fatalf("after answering, node holds %d more requests, want %d", got, total-serverReadAhead)
		}
		rpcs = rpcs[:0]
		for len(held) > 0 {
			rpcs = append(rpcs, <-held)
		}
		for i := len(rpcs) - 1; i >= 0; i-- {
			netEchoAnswer(rpcs[i])
		}
		for i := 0; i < total; i++ {
			f := <-p.Consumer()
			if err := f.Error(); err != nil {
				t.Fatalf("future %d: %v", i, err)
			}
			if got := f.Request().PrevLogEntry; got != uint64(i) {
				t.Fatalf("future %d carries request %d: out of order", i, got)
			}
			if got := f.Response().LastLog; got != uint64(i+1) {
				t.Fatalf("future %d answered LastLog %d, want %d: answers out of order", i, got, i+1)
			}
		}
		p.Close()
		client.closeAndWait()
		server.closeAndWait()
	})
}

// slowLogStore is a log store whose StoreLogs takes a while (in fake
// time), as a disk's fsync does, and counts its calls.
type slowLogStore struct {
	*InmemStore
	delay  atomic.Int64 // nanoseconds
	calls  atomic.Int64
	stored chan struct{} // poked after each StoreLogs
}

func (s *slowLogStore) StoreLogs(logs []*Log) error {
	s.calls.Add(1)
	time.Sleep(time.Duration(s.delay.Load()))
	err := s.InmemStore.StoreLogs(logs)
	notify(s.stored)
	return err
}

func (s *slowLogStore) StoreLog(l *Log) error { return s.StoreLogs([]*Log{l}) }

// A follower on the network transport merges the AppendEntries a pipeline
// sends while its log writes are slow: the requests are read ahead of the
// answers, reach the run loop, and join its next StoreLogs call, instead
// of costing one call (one fsync on a disk store) each.
func TestNetTransport_FollowerMergesPipelinedAppends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			perRequest = 4  // MaxAppendEntries: many small requests
			requests   = 32 // requests each follower is sent
		)
		network := newNetPipeNetwork()
		ids := []ServerID{"n0", "n1", "n2"}
		var cfg Configuration
		trans := make(map[ServerID]*netTestNode)
		for i, id := range ids {
			trans[id] = newNetTestNode(t, network, fmt.Sprintf("10.0.0.%d:1", i+1), func(c *NetworkTransportConfig) {
				c.MaxRPCsInFlight = serverReadAhead + 2
			})
			cfg.Servers = append(cfg.Servers, Server{Suffrage: Voter, ID: id, Address: trans[id].LocalAddr()})
		}
		stores := make(map[ServerID]*slowLogStore)
		rafts := make(map[ServerID]*Raft)
		for _, id := range ids {
			conf := testConfig(t, id)
			conf.MaxAppendEntries = perRequest
			mem := NewInmemStore()
			stores[id] = &slowLogStore{InmemStore: mem, stored: make(chan struct{}, 1)}
			snaps := NewInmemSnapshotStore()
			if err := BootstrapCluster(conf, stores[id], mem, snaps, trans[id], cfg); err != nil {
				t.Fatalf("bootstrapping %s: %v", id, err)
			}
			r, err := NewRaft(conf, &testFSM{changed: func() {}}, stores[id], mem, snaps, trans[id])
			if err != nil {
				t.Fatalf("starting %s: %v", id, err)
			}
			rafts[id] = r
		}
		defer func() {
			for _, id := range ids {
				if err := rafts[id].Shutdown().Error(); err != nil {
					t.Errorf("shutting down %s: %v", id, err)
				}
				trans[id].closeAndWait()
			}
		}()

		var leader ServerID
		select {
		case <-rafts["n0"].LeaderCh():
			leader = "n0"
		case <-rafts["n1"].LeaderCh():
			leader = "n1"
		case <-rafts["n2"].LeaderCh():
			leader = "n2"
		}
		if err := rafts[leader].Apply([]byte("warm"), time.Second).Error(); err != nil {
			t.Fatalf("warm-up apply: %v", err)
		}
		synctest.Wait()

		// Make the followers' writes slow, and have the leader send each
		// of them many small requests.
		before := make(map[ServerID]int64)
		for _, id := range ids {
			if id != leader {
				stores[id].delay.Store(int64(10 * time.Millisecond))
				before[id] = stores[id].calls.Load()
			}
		}
		var futures []ApplyFuture
		for i := 0; i < requests*perRequest; i++ {
			futures = append(futures, rafts[leader].Apply([]byte(fmt.Sprintf("c-%d", i)), 0))
		}
		for i, f := range futures {
			if err := f.Error(); err != nil {
				t.Fatalf("apply %d: %v", i, err)
			}
		}
		want := rafts[leader].LastIndex()
		for id := range before {
			for {
				if got, _ := stores[id].LastIndex(); got >= want {
					break
				}
				<-stores[id].stored
			}
			calls := stores[id].calls.Load() - before[id]
			t.Logf("%s stored %d requests of %d entries in %d StoreLogs calls", id, requests, perRequest, calls)
			// Without read-ahead a follower sees one request at a time
			// and stores each alone; with it, each slow write is followed
			// by one that takes everything read ahead meanwhile.
			if limit := int64(requests / 2); calls > limit {
				t.Fatalf("%s: %d StoreLogs calls for %d pipelined requests, want at most %d", id, calls, requests, limit)
			}
		}
	})
}
