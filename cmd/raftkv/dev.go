package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/quorumkit/raft"
)

// devNode is one server of the in-process development cluster.
type devNode struct {
	id    raft.ServerID
	raft  *raft.Raft
	kv    *kvFSM
	trans *raft.InmemTransport
}

// runDev starts three servers in this process, connected by in-memory
// transports, and walks through what a cluster does: it elects a leader,
// replicates writes to every server, survives the loss of its leader and
// elects another.
func runDev(verbose bool) error {
	logOut := io.Discard
	if verbose {
		logOut = os.Stderr
	}
	fmt.Println("starting a 3-node cluster in memory")
	nodes, err := startDevCluster(3, logOut)
	if err != nil {
		return err
	}
	defer func() {
		for _, n := range nodes {
			if n.raft != nil {
				n.raft.Shutdown().Error()
			}
		}
	}()

	leader, err := waitForLeader(nodes, 10*time.Second)
	if err != nil {
		return err
	}
	fmt.Printf("leader elected: %s (term %d)\n", leader.id, leader.raft.CurrentTerm())

	if err := devPut(leader, "greeting", "hello"); err != nil {
		return err
	}
	if err := waitForValue(nodes, "greeting", "hello", 10*time.Second); err != nil {
		return err
	}
	fmt.Println("every node has greeting=hello")

	fmt.Printf("stopping the leader, %s\n", leader.id)
	leader.raft.Shutdown().Error()
	leader.raft = nil
	next, err := waitForLeader(nodes, 10*time.Second)
	if err != nil {
		return err
	}
	fmt.Printf("new leader elected: %s (term %d)\n", next.id, next.raft.CurrentTerm())

	if err := devPut(next, "greeting", "hello again"); err != nil {
		return err
	}
	if err := waitForValue(nodes, "greeting", "hello again", 10*time.Second); err != nil {
		return err
	}
	fmt.Println("the two remaining nodes have greeting=hello again")
	for _, n := range nodes {
		if n.raft != nil {
			s := n.raft.Stats()
			fmt.Printf("  %s: %s, term %s, commit index %s, applied index %s\n",
				n.id, s["state"], s["term"], s["commit_index"], s["applied_index"])
		}
	}
	fmt.Println("done")
	return nil
}

// startDevCluster bootstraps and starts n connected in-memory servers.
func startDevCluster(n int, logOut io.Writer) ([]*devNode, error) {
	var nodes []*devNode
	var cfg raft.Configuration
	for i := 1; i <= n; i++ {
		id := raft.ServerID(fmt.Sprintf("node%d", i))
		addr, trans := raft.NewInmemTransport(raft.ServerAddress(id))
		nodes = append(nodes, &devNode{id: id, trans: trans, kv: newKV()})
		cfg.Servers = append(cfg.Servers, raft.Server{Suffrage: raft.Voter, ID: id, Address: addr})
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.trans.Connect(b.trans.LocalAddr(), b.trans)
			}
		}
	}
	for _, node := range nodes {
		conf := raft.DefaultConfig()
		conf.LocalID = node.id
		conf.HeartbeatTimeout = 200 * time.Millisecond
		conf.ElectionTimeout = 200 * time.Millisecond
		conf.LeaderLeaseTimeout = 200 * time.Millisecond
		conf.LeadershipTransferOnShutdown = true
		conf.Logger = hclog.New(&hclog.LoggerOptions{Name: string(node.id), Output: logOut, Level: hclog.Info})
		store := raft.NewInmemStore()
		snaps := raft.NewInmemSnapshotStore()
		if err := raft.BootstrapCluster(conf, store, store, snaps, node.trans, cfg); err != nil {
			return nil, fmt.Errorf("bootstrapping %s: %w", node.id, err)
		}
		r, err := raft.NewRaft(conf, node.kv, store, store, snaps, node.trans)
		if err != nil {
			return nil, fmt.Errorf("starting %s: %w", node.id, err)
		}
		node.raft = r
	}
	return nodes, nil
}

// waitForLeader waits until one running node leads and every running
// node agrees.
func waitForLeader(nodes []*devNode, timeout time.Duration) (*devNode, error) {
	changes := make(chan raft.Observation, 16)
	obs := raft.NewObserver(changes, false, nil)
	for _, n := range nodes {
		if n.raft != nil {
			n.raft.RegisterObserver(obs)
			defer n.raft.DeregisterObserver(obs)
		}
	}
	deadline := time.After(timeout)
	for {
		if l := agreedLeader(nodes); l != nil {
			return l, nil
		}
		select {
		case <-changes:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			return nil, errors.New("no leader elected in time")
		}
	}
}

func agreedLeader(nodes []*devNode) *devNode {
	var leader *devNode
	for _, n := range nodes {
		if n.raft != nil && n.raft.State() == raft.Leader {
			leader = n
		}
	}
	if leader == nil {
		return nil
	}
	for _, n := range nodes {
		if n.raft == nil {
			continue
		}
		if _, id := n.raft.LeaderWithID(); id != leader.id {
			return nil
		}
	}
	return leader
}

// devPut writes key=value through the leader and waits until it is
// committed and applied there.
func devPut(leader *devNode, key, value string) error {
	f := leader.raft.Apply(command{Op: "put", Key: key, Value: value}.encode(), 5*time.Second)
	if err := f.Error(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err, ok := f.Response().(error); ok && err != nil {
		return err
	}
	fmt.Printf("put %s=%q: committed at index %d\n", key, value, f.Index())
	return nil
}

// waitForValue waits until every running node's FSM has key=value.
func waitForValue(nodes []*devNode, key, value string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, n := range nodes {
		for n.raft != nil {
			if v, _ := n.kv.get(key); v == value {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s did not apply %s=%q in time", n.id, key, value)
			}
			// Followers learn the commit index with the next message from
			// the leader; look again shortly.
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}
