package main

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/quorumkit/raft"
)

// raftStatsCollector turns each running server's Stats() into gauges at
// scrape time: the figures an operator alerts on that the library reports
// through Stats() rather than go-metrics (FSM backlog, apply lag, the
// indexes that show replication lag across nodes, time since the leader
// was last heard). Each series carries the server's ID, since the tests
// run several servers in one process.
type raftStatsCollector struct {
	mu      sync.Mutex
	servers map[*server]struct{}
}

// stats is the process's collector; startServer adds servers to it and
// close removes them.
var stats = &raftStatsCollector{servers: make(map[*server]struct{})}

func (c *raftStatsCollector) add(s *server) {
	c.mu.Lock()
	c.servers[s] = struct{}{}
	c.mu.Unlock()
}

func (c *raftStatsCollector) remove(s *server) {
	c.mu.Lock()
	delete(c.servers, s)
	c.mu.Unlock()
}

// The gauges, by the key of Stats() they come from.
var statsGauges = []struct {
	key  string
	desc *prometheus.Desc
}{
	{"fsm_pending", statDesc("raftkv_raft_fsm_pending", "Batches of committed entries waiting for the FSM.")},
	{"commit_index", statDesc("raftkv_raft_commit_index", "Highest log index known to be committed.")},
	{"applied_index", statDesc("raftkv_raft_applied_index", "Highest log index applied to the FSM.")},
	{"last_log_index", statDesc("raftkv_raft_last_log_index", "Highest index in this server's log; the leader's minus a follower's is that follower's replication lag.")},
	{"last_snapshot_index", statDesc("raftkv_raft_last_snapshot_index", "Log index of the latest snapshot.")},
	{"term", statDesc("raftkv_raft_term", "Current term; each increase is an election or a hand-off.")},
	{"num_peers", statDesc("raftkv_raft_num_peers", "Other voters in the latest configuration.")},
}

var (
	descIsLeader    = statDesc("raftkv_raft_is_leader", "1 on the leader, 0 elsewhere.")
	descLastContact = statDesc("raftkv_raft_last_contact_seconds", "On a follower, time since the leader was last heard from.")
)

func statDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, []string{"server_id"}, nil)
}

// Describe sends the descriptions of every gauge.
func (c *raftStatsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, g := range statsGauges {
		ch <- g.desc
	}
	ch <- descIsLeader
	ch <- descLastContact
}

// Collect reads every running server's Stats().
func (c *raftStatsCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	servers := make([]*server, 0, len(c.servers))
	for s := range c.servers {
		servers = append(servers, s)
	}
	c.mu.Unlock()
	for _, s := range servers {
		st := s.raft.Stats()
		id := s.cfg.id
		for _, g := range statsGauges {
			if v, err := strconv.ParseFloat(st[g.key], 64); err == nil {
				ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, v, id)
			}
		}
		leader := 0.0
		if s.raft.State() == raft.Leader {
			leader = 1
		}
		ch <- prometheus.MustNewConstMetric(descIsLeader, prometheus.GaugeValue, leader, id)
		if d, err := time.ParseDuration(st["last_contact"]); err == nil {
			ch <- prometheus.MustNewConstMetric(descLastContact, prometheus.GaugeValue, d.Seconds(), id)
		}
	}
}
