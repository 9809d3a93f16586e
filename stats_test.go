package raft

import (
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-metrics"
)

func TestStats_HasTheReferenceKeysAndFormats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOpts{})
		defer c.shutdown()
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 5)
		if err := leader.raft.Snapshot().Error(); err != nil {
			t.Fatal(err)
		}
		numeric := []string{"term", "last_log_index", "last_log_term", "commit_index", "applied_index",
			"fsm_pending", "last_snapshot_index", "last_snapshot_term", "protocol_version",
			"protocol_version_min", "protocol_version_max", "snapshot_version_min", "snapshot_version_max",
			"latest_configuration_index", "num_peers"}
		for _, n := range c.nodes {
			s := n.raft.Stats()
			if len(s) != len(numeric)+3 {
				t.Errorf("%s: %d keys, want %d: %v", n.id, len(s), len(numeric)+3, s)
			}
			for _, k := range numeric {
				if _, err := strconv.ParseUint(s[k], 10, 64); err != nil {
					t.Errorf("%s: %s = %q is not a number", n.id, k, s[k])
				}
			}
			if s["num_peers"] != "2" || s["protocol_version"] != "3" || s["protocol_version_max"] != "3" ||
				s["snapshot_version_max"] != "1" || s["latest_configuration_index"] != "0" {
				t.Errorf("%s: unexpected values %v", n.id, s)
			}
			if !strings.HasPrefix(s["latest_configuration"], "[{Suffrage:Voter ID:node0 Address:addr-node0}") {
				t.Errorf("%s: latest_configuration = %q", n.id, s["latest_configuration"])
			}
			switch {
			case n == leader:
				if s["state"] != "Leader" || s["last_contact"] != "0" {
					t.Errorf("leader: state %q last_contact %q", s["state"], s["last_contact"])
				}
				if s["last_snapshot_index"] == "0" {
					t.Error("leader: no last_snapshot_index after a snapshot")
				}
			default:
				if s["state"] != "Follower" {
					t.Errorf("%s: state %q", n.id, s["state"])
				}
				if _, err := time.ParseDuration(s["last_contact"]); err != nil {
					t.Errorf("%s: last_contact %q is not a duration", n.id, s["last_contact"])
				}
			}
		}
	})
}

func TestMetrics_WritePathUsesTheReferenceNames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The sink makes its channels lazily, so it lives in the bubble.
		sink := metrics.NewInmemSink(time.Hour, time.Hour)
		conf := metrics.DefaultConfig("")
		conf.EnableHostname = false
		conf.EnableRuntimeMetrics = false
		conf.EnableServiceLabel = false
		if _, err := metrics.NewGlobal(conf, sink); err != nil {
			t.Fatal(err)
		}
		defer metrics.NewGlobal(conf, &metrics.BlackholeSink{})
		c := newTestCluster(t, 3, clusterOpts{})
		leader := c.waitForLeader()
		applyAll(t, leader, "x", 20)
		if err := leader.raft.Barrier(0).Error(); err != nil {
			t.Fatal(err)
		}
		if err := leader.raft.VerifyLeader().Error(); err != nil {
			t.Fatal(err)
		}
		c.shutdown()
		seen := make(map[string]bool)
		for _, iv := range sink.Data() {
			iv.RLock()
			for k := range iv.Counters {
				seen[strings.SplitN(k, ";", 2)[0]] = true
			}
			for k := range iv.Samples {
				seen[strings.SplitN(k, ";", 2)[0]] = true
			}
			for k := range iv.Gauges {
				seen[strings.SplitN(k, ";", 2)[0]] = true
			}
			iv.RUnlock()
		}
		for _, name := range []string{
			"raft.apply", "raft.barrier", "raft.verify_leader", "raft.state.follower", "raft.state.candidate",
			"raft.state.leader", "raft.transition.heartbeat_timeout", "raft.fsm.apply", "raft.commitTime",
			"raft.leader.dispatchLog", "raft.leader.dispatchNumLogs", "raft.commitNumLogs",
			"raft.candidate.electSelf", "raft.rpc.appendEntries", "raft.rpc.appendEntries.storeLogs",
			"raft.rpc.requestVote", "raft.rpc.requestPreVote", "raft.replication.appendEntries.rpc",
			"raft.replication.appendEntries.logs", "raft.replication.heartbeat", "raft.peers",
		} {
			if !seen[name] {
				t.Errorf("metric %s was not emitted", name)
			}
		}
	})
}
