package raft_test

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/quorumkit/raft"
)

// wordFSM is the application's state machine: it keeps the words applied
// to it, in order, and closes full once it holds three.
type wordFSM struct {
	mu    sync.Mutex
	words []string
	full  chan struct{}
}

func (f *wordFSM) Apply(l *raft.Log) interface{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.words = append(f.words, string(l.Data))
	if len(f.words) == 3 {
		close(f.full)
	}
	return len(f.words)
}

func (f *wordFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, fmt.Errorf("not needed here") }
func (f *wordFSM) Restore(io.ReadCloser) error         { return fmt.Errorf("not needed here") }

func (f *wordFSM) text() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.words, " ")
}

// Example starts a three-node cluster in one process, elects a leader,
// replicates three commands and reads them back from every node.
func Example() {
	const n = 3
	var (
		nodes  []*raft.Raft
		fsms   []*wordFSM
		trans  []*raft.InmemTransport
		config raft.Configuration
	)
	for i := 0; i < n; i++ {
		addr, t := raft.NewInmemTransport("")
		trans = append(trans, t)
		config.Servers = append(config.Servers, raft.Server{
			Suffrage: raft.Voter, ID: raft.ServerID(fmt.Sprintf("node%d", i)), Address: addr,
		})
	}
	for i, t := range trans {
		for j, peer := range trans {
			if i != j {
				t.Connect(peer.LocalAddr(), peer)
			}
		}
	}
	for i := 0; i < n; i++ {
		conf := raft.DefaultConfig()
		conf.LocalID = config.Servers[i].ID
		conf.HeartbeatTimeout = 100 * time.Millisecond
		conf.ElectionTimeout = 100 * time.Millisecond
		conf.LeaderLeaseTimeout = 100 * time.Millisecond
		conf.LogOutput = io.Discard
		store := raft.NewInmemStore()
		snaps := raft.NewInmemSnapshotStore()
		// Every server starts from the same configuration.
		if err := raft.BootstrapCluster(conf, store, store, snaps, trans[i], config); err != nil {
			panic(err)
		}
		fsm := &wordFSM{full: make(chan struct{})}
		r, err := raft.NewRaft(conf, fsm, store, store, snaps, trans[i])
		if err != nil {
			panic(err)
		}
		nodes, fsms = append(nodes, r), append(fsms, fsm)
	}
	defer func() {
		for _, r := range nodes {
			r.Shutdown().Error()
		}
	}()

	// Leadership changes arrive as observations.
	changes := make(chan raft.Observation, 64)
	for _, r := range nodes {
		r.RegisterObserver(raft.NewObserver(changes, false, func(o *raft.Observation) bool {
			_, ok := o.Data.(raft.LeaderObservation)
			return ok
		}))
	}
	leader := func() *raft.Raft {
		for {
			for _, r := range nodes {
				if r.State() == raft.Leader {
					return r
				}
			}
			select {
			case <-changes:
			case <-time.After(10 * time.Second):
				panic("no leader was elected")
			}
		}
	}

	// Apply on the leader; if leadership moves meanwhile, try the new one.
	for _, word := range []string{"hello", "raft", "world"} {
		for attempt := 0; ; attempt++ {
			err := leader().Apply([]byte(word), time.Second).Error()
			if err == nil {
				break
			}
			if attempt == 10 {
				panic(err)
			}
		}
	}
	fmt.Println("a leader was elected and committed three commands")

	// Followers apply once they learn the new commit index.
	for i, fsm := range fsms {
		select {
		case <-fsm.full:
		case <-time.After(10 * time.Second):
		}
		fmt.Printf("node%d: %s\n", i, fsm.text())
	}
	// Output:
	// a leader was elected and committed three commands
	// node0: hello raft world
	// node1: hello raft world
	// node2: hello raft world
}
