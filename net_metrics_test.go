package raft

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-metrics"
)

// The transport reports hashicorp/raft's raft.net.* timers with the rpcType
// label. This test swaps the process-wide metrics sink, so it
// runs outside any bubble, on pipes and real time, and restores a discarding
// sink afterwards.
func TestNetTransport_Metrics(t *testing.T) {
	conf := metrics.DefaultConfig("")
	conf.EnableHostname, conf.EnableRuntimeMetrics = false, false
	sink := metrics.NewInmemSink(time.Hour, time.Hour)
	if _, err := metrics.NewGlobal(conf, sink); err != nil {
		t.Fatal(err)
	}
	defer metrics.NewGlobal(conf, &metrics.BlackholeSink{})

	network := newNetPipeNetwork()
	server := newNetTestNode(t, network, "10.0.0.1:1", nil)
	server.serve(netEchoAnswer)
	server.SetHeartbeatHandler(netEchoAnswer)
	client := newNetTestNode(t, network, "10.0.0.2:1", nil)
	for _, tc := range netRoundTripCases {
		if _, _, _, err := tc.send(client.NetworkTransport, server.addr); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	var resp AppendEntriesResponse
	if err := client.AppendEntries("s", server.addr, netTestHeartbeat("n1", 3), &resp); err != nil {
		t.Fatal(err)
	}
	client.closeAndWait()
	server.closeAndWait()

	got := map[string]bool{}
	for _, interval := range sink.Data() {
		for name := range interval.Samples {
			got[name] = true
		}
	}
	var want []string
	want = append(want, "raft.net.getRPCType")
	for _, kind := range []string{"AppendEntries", "Heartbeat", "RequestVote", "RequestPreVote", "InstallSnapshot", "TimeoutNow"} {
		for _, stage := range []string{"rpcDecode", "rpcEnqueue", "rpcRespond"} {
			want = append(want, "raft.net."+stage+";rpcType="+kind)
		}
	}
	for _, name := range want {
		if !got[name] {
			var names []string
			for n := range got {
				names = append(names, n)
			}
			sort.Strings(names)
			t.Fatalf("metric %s not reported; have:\n%s", name, strings.Join(names, "\n"))
		}
	}
}
