package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// GET /metrics shows raftkv's request figures and the library's metrics in
// the Prometheus text format.
func TestMetrics_RequestsAndRaftMetricsAreExposed(t *testing.T) {
	n := startNode(t, "n1", nodeOpts{bootstrap: true})
	eventually(t, "write", func() error { return n.want(http.StatusNoContent, "PUT", "/kv/m", "1") })
	if err := n.want(http.StatusNotFound, "GET", "/nowhere", ""); err != nil {
		t.Fatal(err)
	}
	if err := n.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	want := []string{
		`raftkv_http_requests_total{code="204",method="PUT",route="PUT /kv/{key}"}`,
		`raftkv_http_requests_total{code="404",method="GET",route="unmatched"}`,
		`raftkv_http_request_duration_seconds_bucket{route="PUT /kv/{key}",le="`,
		"raft_commitTime",   // the library's commit latency
		"raft_state_leader", // leader changes
		"raft_fsm_apply",    // FSM
		`raftkv_raft_fsm_pending{server_id="n1"} 0`,
		`raftkv_raft_is_leader{server_id="n1"} 1`,
		"go_goroutines", // the process
		"# TYPE raft_apply counter",
	}
	eventually(t, "metrics", func() error {
		code, body, err := n.do("GET", "/metrics", "")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("GET /metrics: %d", code)
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				return fmt.Errorf("no %s in /metrics", w)
			}
		}
		return nil
	})
}
