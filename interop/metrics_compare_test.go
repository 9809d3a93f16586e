package interop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-metrics"
	hraft "github.com/hashicorp/raft"
	qraft "github.com/quorumkit/raft"
)

// The metric comparison: the same scenario runs on a three-node cluster of
// each library (loopback TCP transports, in-memory stores), with a
// go-metrics sink that records every key slice, its kind and its labels.
// Both libraries emit through the global registry of
// github.com/hashicorp/go-metrics (the reference v1.8.0 imports it, not
// armon/go-metrics), so one sink sees everything. The two sets must be
// equal but for the differences listed in metricDifferences, each of which
// the README's "Where we differ" section states with its reason.

// metricDifferences are the keys one library emits and the other does not,
// on purpose, each with its reason; every entry must mirror a bullet of the
// README's "Where we differ". There are none: the scenario's keys, kinds
// and labels are the same in both libraries.
var metricDifferences = map[string]string{}

// metricsNotCompared are keys whose presence depends on timing rather
// than on the scenario, in either library.
var metricsNotCompared = map[string]string{
	// A leader steps down for a lost lease only if scheduling delayed its
	// followers' answers past LeaderLeaseTimeout.
	`counter ["raft" "transition" "leader_lease_timeout"]`: "timing",
	// Emitted every 10 s by a leader; the scenario is shorter.
	`gauge ["raft" "leader" "oldestLogAge"]`: "period",
}

// metricsEventually are the keys the scenario waits for: reported at most
// once a second, or on a timer.
var metricsEventually = []string{
	`sample ["raft" "thread" "main" "saturation"]`,
	`sample ["raft" "thread" "fsm" "saturation"]`,
	`sample ["raft" "leader" "lastContact"]`,
}

// mcServerIDs are the servers' IDs, replaced in keys and label values by
// "<id>": which server leads, and so which peers a leader reports on, is
// up to each election.
var mcServerIDs = []string{"n0", "n1", "n2", "n3"}

// mcSink records metric keys as describeMetric describes them.
type mcSink struct {
	mu   sync.Mutex
	seen map[string]bool
}

func newMCSink() *mcSink { return &mcSink{seen: make(map[string]bool)} }

// describeMetric names a key unambiguously: its kind, its parts quoted (so
// that ["a.b"] and ["a" "b"] differ) and its labels sorted, with server
// IDs replaced.
func describeMetric(kind string, key []string, labels []metrics.Label) string {
	norm := func(s string) string {
		if slices.Contains(mcServerIDs, s) {
			return "<id>"
		}
		return s
	}
	parts := make([]string, len(key))
	for i, k := range key {
		parts[i] = fmt.Sprintf("%q", norm(k))
	}
	s := kind + " [" + strings.Join(parts, " ") + "]"
	ls := make([]string, len(labels))
	for i, l := range labels {
		ls[i] = fmt.Sprintf(" %s=%s", l.Name, norm(l.Value))
	}
	sort.Strings(ls)
	return s + strings.Join(ls, "")
}

func (s *mcSink) record(kind string, key []string, labels []metrics.Label) {
	d := describeMetric(kind, key, labels)
	s.mu.Lock()
	s.seen[d] = true
	s.mu.Unlock()
}

func (s *mcSink) SetGauge(key []string, val float32) { s.record("gauge", key, nil) }
func (s *mcSink) SetGaugeWithLabels(key []string, val float32, labels []metrics.Label) {
	s.record("gauge", key, labels)
}
func (s *mcSink) SetPrecisionGauge(key []string, val float64) { s.record("gauge", key, nil) }
func (s *mcSink) SetPrecisionGaugeWithLabels(key []string, val float64, labels []metrics.Label) {
	s.record("gauge", key, labels)
}
func (s *mcSink) EmitKey(key []string, val float32)     { s.record("kv", key, nil) }
func (s *mcSink) IncrCounter(key []string, val float32) { s.record("counter", key, nil) }
func (s *mcSink) IncrCounterWithLabels(key []string, val float32, labels []metrics.Label) {
	s.record("counter", key, labels)
}
func (s *mcSink) AddSample(key []string, val float32) { s.record("sample", key, nil) }
func (s *mcSink) AddSampleWithLabels(key []string, val float32, labels []metrics.Label) {
	s.record("sample", key, labels)
}

func (s *mcSink) has(d string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[d]
}

func (s *mcSink) keys() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]bool, len(s.seen))
	for k := range s.seen {
		out[k] = true
	}
	return out
}

// useMCSink makes sink the global go-metrics sink, plain (no host name, no
// service prefix, no runtime metrics), until undo is called.
func useMCSink(t *testing.T, sink metrics.MetricSink) {
	t.Helper()
	conf := metrics.DefaultConfig("")
	conf.EnableHostname = false
	conf.EnableRuntimeMetrics = false
	conf.EnableServiceLabel = false
	if _, err := metrics.NewGlobal(conf, sink); err != nil {
		t.Fatal(err)
	}
}

// mcState is the scenario's FSM state: the commands applied, in order.
type mcState struct {
	mu   sync.Mutex
	cmds [][]byte
}

func (s *mcState) add(data []byte) {
	s.mu.Lock()
	s.cmds = append(s.cmds, data)
	s.mu.Unlock()
}

func (s *mcState) encode() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, _ := json.Marshal(s.cmds)
	return b
}

func (s *mcState) load(rc io.ReadCloser) error {
	defer rc.Close()
	var cmds [][]byte
	if err := json.NewDecoder(rc).Decode(&cmds); err != nil {
		return err
	}
	s.mu.Lock()
	s.cmds = cmds
	s.mu.Unlock()
	return nil
}

// mcRaft is one running node of either library.
type mcRaft interface {
	apply(cmd []byte) error
	barrier() error
	verify() error
	snapshot() error
	restore(state []byte) error
	addVoter(id, addr string) error
	remove(id string) error
	transfer() error
	isLeader() bool
	applied() uint64
	lastIndex() uint64
	shutdown() error
}

// mcNode is a node whose transport is listening, ready to start.
type mcNode struct {
	id, addr string
	// start runs the node, bootstrapping it with servers (ID to address)
	// when not nil.
	start func(servers [][2]string) (mcRaft, error)
}

// mcLib starts nodes of one library.
type mcLib struct {
	name string
	// node makes a node with in-memory stores (the log store says it is
	// monotonic, as raft-wal does) and an FSM that is a BatchingFSM when
	// batching is set, a ConfigurationStore otherwise.
	node func(t *testing.T, id string, batching bool, logs io.Writer) *mcNode
}

const mcTimeout = 10 * time.Second

func mcTimings(heartbeat, election, lease, commit *time.Duration) {
	*heartbeat, *election, *lease, *commit = 500*time.Millisecond, 500*time.Millisecond, 250*time.Millisecond, 10*time.Millisecond
}

// --- The reference library. ---

type refFSM struct{ *mcState }

func (f refFSM) Apply(l *hraft.Log) interface{}                 { f.add(l.Data); return nil }
func (f refFSM) Snapshot() (hraft.FSMSnapshot, error)           { return refFSMSnapshot(f.encode()), nil }
func (f refFSM) Restore(rc io.ReadCloser) error                 { return f.load(rc) }
func (f refFSM) StoreConfiguration(uint64, hraft.Configuration) {}

type refBatchFSM struct{ refFSM }

func (f refBatchFSM) ApplyBatch(logs []*hraft.Log) []interface{} {
	for _, l := range logs {
		if l.Type == hraft.LogCommand {
			f.add(l.Data)
		}
	}
	return make([]interface{}, len(logs))
}

type refFSMSnapshot []byte

func (s refFSMSnapshot) Persist(sink hraft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}
func (refFSMSnapshot) Release() {}

type refMonotonicStore struct{ *hraft.InmemStore }

func (refMonotonicStore) IsMonotonic() bool { return true }

var refMetricsLib = mcLib{name: "reference", node: func(t *testing.T, id string, batching bool, logw io.Writer) *mcNode {
	trans, err := hraft.NewTCPTransport("127.0.0.1:0", nil, 3, mcTimeout, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	conf := hraft.DefaultConfig()
	conf.LocalID = hraft.ServerID(id)
	mcTimings(&conf.HeartbeatTimeout, &conf.ElectionTimeout, &conf.LeaderLeaseTimeout, &conf.CommitTimeout)
	conf.SnapshotThreshold, conf.SnapshotInterval, conf.TrailingLogs = 1<<40, time.Hour, 2
	conf.Logger = hclog.New(&hclog.LoggerOptions{Name: id, Level: hclog.Warn, Output: logw})
	var fsm hraft.FSM = refFSM{&mcState{}}
	if batching {
		fsm = refBatchFSM{refFSM{&mcState{}}}
	}
	logs, stable, snaps := refMonotonicStore{hraft.NewInmemStore()}, hraft.NewInmemStore(), hraft.NewInmemSnapshotStore()
	return &mcNode{id: id, addr: string(trans.LocalAddr()), start: func(servers [][2]string) (mcRaft, error) {
		if servers != nil {
			var c hraft.Configuration
			for _, s := range servers {
				c.Servers = append(c.Servers, hraft.Server{Suffrage: hraft.Voter, ID: hraft.ServerID(s[0]), Address: hraft.ServerAddress(s[1])})
			}
			if err := hraft.BootstrapCluster(conf, logs, stable, snaps, trans, c); err != nil {
				return nil, err
			}
		}
		r, err := hraft.NewRaft(conf, fsm, logs, stable, snaps, trans)
		return refRaft{r}, err
	}}
}}

type refRaft struct{ r *hraft.Raft }

func (n refRaft) apply(cmd []byte) error { return n.r.Apply(cmd, mcTimeout).Error() }
func (n refRaft) barrier() error         { return n.r.Barrier(mcTimeout).Error() }
func (n refRaft) verify() error          { return n.r.VerifyLeader().Error() }
func (n refRaft) snapshot() error        { return n.r.Snapshot().Error() }
func (n refRaft) restore(state []byte) error {
	meta := &hraft.SnapshotMeta{Version: 1, Index: 1, Term: 1, Size: int64(len(state))}
	return n.r.Restore(meta, bytes.NewReader(state), mcTimeout)
}
func (n refRaft) addVoter(id, addr string) error {
	return n.r.AddVoter(hraft.ServerID(id), hraft.ServerAddress(addr), 0, mcTimeout).Error()
}
func (n refRaft) remove(id string) error {
	return n.r.RemoveServer(hraft.ServerID(id), 0, mcTimeout).Error()
}
func (n refRaft) transfer() error   { return n.r.LeadershipTransfer().Error() }
func (n refRaft) isLeader() bool    { return n.r.State() == hraft.Leader }
func (n refRaft) applied() uint64   { return n.r.AppliedIndex() }
func (n refRaft) lastIndex() uint64 { return n.r.LastIndex() }
func (n refRaft) shutdown() error   { return n.r.Shutdown().Error() }

// --- This library. ---

type ourFSM struct{ *mcState }

func (f ourFSM) Apply(l *qraft.Log) interface{}                 { f.add(l.Data); return nil }
func (f ourFSM) Snapshot() (qraft.FSMSnapshot, error)           { return ourFSMSnapshot(f.encode()), nil }
func (f ourFSM) Restore(rc io.ReadCloser) error                 { return f.load(rc) }
func (f ourFSM) StoreConfiguration(uint64, qraft.Configuration) {}

type ourBatchFSM struct{ ourFSM }

func (f ourBatchFSM) ApplyBatch(logs []*qraft.Log) []interface{} {
	for _, l := range logs {
		if l.Type == qraft.LogCommand {
			f.add(l.Data)
		}
	}
	return make([]interface{}, len(logs))
}

type ourFSMSnapshot []byte

func (s ourFSMSnapshot) Persist(sink qraft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}
func (ourFSMSnapshot) Release() {}

type ourMonotonicStore struct{ *qraft.InmemStore }

func (ourMonotonicStore) IsMonotonic() bool { return true }

var ourMetricsLib = mcLib{name: "ours", node: func(t *testing.T, id string, batching bool, logw io.Writer) *mcNode {
	trans, err := qraft.NewTCPTransport("127.0.0.1:0", nil, 3, mcTimeout, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	conf := qraft.DefaultConfig()
	conf.LocalID = qraft.ServerID(id)
	mcTimings(&conf.HeartbeatTimeout, &conf.ElectionTimeout, &conf.LeaderLeaseTimeout, &conf.CommitTimeout)
	conf.SnapshotThreshold, conf.SnapshotInterval, conf.TrailingLogs = 1<<40, time.Hour, 2
	conf.Logger = hclog.New(&hclog.LoggerOptions{Name: id, Level: hclog.Warn, Output: logw})
	var fsm qraft.FSM = ourFSM{&mcState{}}
	if batching {
		fsm = ourBatchFSM{ourFSM{&mcState{}}}
	}
	logs, stable, snaps := ourMonotonicStore{qraft.NewInmemStore()}, qraft.NewInmemStore(), qraft.NewInmemSnapshotStore()
	return &mcNode{id: id, addr: string(trans.LocalAddr()), start: func(servers [][2]string) (mcRaft, error) {
		if servers != nil {
			var c qraft.Configuration
			for _, s := range servers {
				c.Servers = append(c.Servers, qraft.Server{Suffrage: qraft.Voter, ID: qraft.ServerID(s[0]), Address: qraft.ServerAddress(s[1])})
			}
			if err := qraft.BootstrapCluster(conf, logs, stable, snaps, trans, c); err != nil {
				return nil, err
			}
		}
		r, err := qraft.NewRaft(conf, fsm, logs, stable, snaps, trans)
		return ourRaft{r}, err
	}}
}}

type ourRaft struct{ r *qraft.Raft }

func (n ourRaft) apply(cmd []byte) error { return n.r.Apply(cmd, mcTimeout).Error() }
func (n ourRaft) barrier() error         { return n.r.Barrier(mcTimeout).Error() }
func (n ourRaft) verify() error          { return n.r.VerifyLeader().Error() }
func (n ourRaft) snapshot() error        { return n.r.Snapshot().Error() }
func (n ourRaft) restore(state []byte) error {
	meta := &qraft.SnapshotMeta{Version: 1, Index: 1, Term: 1, Size: int64(len(state))}
	return n.r.Restore(meta, bytes.NewReader(state), mcTimeout)
}
func (n ourRaft) addVoter(id, addr string) error {
	return n.r.AddVoter(qraft.ServerID(id), qraft.ServerAddress(addr), 0, mcTimeout).Error()
}
func (n ourRaft) remove(id string) error {
	return n.r.RemoveServer(qraft.ServerID(id), 0, mcTimeout).Error()
}
func (n ourRaft) transfer() error   { return n.r.LeadershipTransfer().Error() }
func (n ourRaft) isLeader() bool    { return n.r.State() == qraft.Leader }
func (n ourRaft) applied() uint64   { return n.r.AppliedIndex() }
func (n ourRaft) lastIndex() uint64 { return n.r.LastIndex() }
func (n ourRaft) shutdown() error   { return n.r.Shutdown().Error() }

// --- The scenario. ---

// mcLog collects the nodes' log lines, shown if the scenario fails.
type mcLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *mcLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *mcLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// mcCluster is the scenario's running cluster.
type mcCluster struct {
	t     *testing.T
	lib   string
	log   *mcLog
	nodes map[string]mcRaft
}

// until polls cond until it holds, failing the test after mcTimeout.
func (c *mcCluster) until(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(mcTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: timed out waiting for %s\n%s", c.lib, what, c.log)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// leader waits until one node leads and returns it.
func (c *mcCluster) leader() (string, mcRaft) {
	c.t.Helper()
	var id string
	c.until("a leader", func() bool {
		for i, n := range c.nodes {
			if n.isLeader() {
				id = i
				return true
			}
		}
		return false
	})
	return id, c.nodes[id]
}

// onLeader runs op on the leader, again on the next leader if leadership
// moved under it, until it succeeds or mcTimeout passed.
func (c *mcCluster) onLeader(what string, op func(mcRaft) error) {
	c.t.Helper()
	deadline := time.Now().Add(mcTimeout)
	for {
		_, l := c.leader()
		err := op(l)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: %s: %v\n%s", c.lib, what, err, c.log)
		}
	}
}

// runMetricsScenario runs the scenario on lib and returns the metric keys
// it emitted.
func runMetricsScenario(t *testing.T, lib mcLib) map[string]bool {
	sink := newMCSink()
	useMCSink(t, sink)
	defer useMCSink(t, &metrics.BlackholeSink{})
	c := &mcCluster{t: t, lib: lib.name, log: &mcLog{}, nodes: make(map[string]mcRaft)}
	defer func() {
		for _, n := range c.nodes {
			n.shutdown()
		}
	}()

	// Elect: three voters, one of them with a BatchingFSM.
	var nodes []*mcNode
	var servers [][2]string
	for _, id := range mcServerIDs[:3] {
		n := lib.node(t, id, id == "n1", c.log)
		nodes = append(nodes, n)
		servers = append(servers, [2]string{n.id, n.addr})
	}
	for _, n := range nodes {
		r, err := n.start(servers)
		if err != nil {
			t.Fatalf("%s: starting %s: %v", lib.name, n.id, err)
		}
		c.nodes[n.id] = r
	}
	c.leader()

	// Apply, then a barrier and a leadership check.
	for i := range 10 {
		c.onLeader("apply", func(l mcRaft) error { return l.apply([]byte(fmt.Sprintf("a%d", i))) })
	}
	c.onLeader("barrier", mcRaft.barrier)
	c.onLeader("verify leader", mcRaft.verify)

	// Snapshot, which compacts the log (TrailingLogs is 2).
	c.onLeader("snapshot", mcRaft.snapshot)
	for i := range 3 {
		c.onLeader("apply", func(l mcRaft) error { return l.apply([]byte(fmt.Sprintf("b%d", i))) })
	}

	// User restore: the followers install it from the leader.
	state, _ := json.Marshal([][]byte{[]byte("restored")})
	c.onLeader("restore", func(l mcRaft) error { return l.restore(state) })
	c.onLeader("apply", func(l mcRaft) error { return l.apply([]byte("c0")) })

	// Add a server, which needs the snapshot, and remove it once it
	// caught up.
	joiner := lib.node(t, "n3", false, c.log)
	r, err := joiner.start(nil)
	if err != nil {
		t.Fatalf("%s: starting n3: %v", lib.name, err)
	}
	c.nodes["n3"] = r
	c.onLeader("add n3", func(l mcRaft) error { return l.addVoter(joiner.id, joiner.addr) })
	_, l := c.leader()
	want := l.lastIndex()
	c.until("n3 to catch up", func() bool { return r.applied() >= want })
	c.onLeader("remove n3", func(l mcRaft) error { return l.remove("n3") })
	if err := r.shutdown(); err != nil {
		t.Fatalf("%s: shutting n3 down: %v", lib.name, err)
	}
	delete(c.nodes, "n3")

	// Transfer leadership.
	old, _ := c.leader()
	c.onLeader("transfer leadership", func(l mcRaft) error {
		if !c.nodes[old].isLeader() {
			return nil
		}
		return l.transfer()
	})
	c.until("another leader", func() bool {
		id, _ := c.leader()
		return id != old
	})

	// Keep the FSMs working until every key reported over time is in.
	for i := 0; ; i++ {
		missing := slices.DeleteFunc(slices.Clone(metricsEventually), sink.has)
		if len(missing) == 0 {
			break
		}
		if i > 200 {
			t.Fatalf("%s: never emitted %v\n%s", lib.name, missing, c.log)
		}
		c.onLeader("apply", func(l mcRaft) error { return l.apply([]byte(fmt.Sprintf("d%d", i))) })
		time.Sleep(50 * time.Millisecond)
	}
	for id, n := range c.nodes {
		if err := n.shutdown(); err != nil {
			t.Errorf("%s: shutting %s down: %v", lib.name, id, err)
		}
	}
	c.nodes = nil
	return sink.keys()
}

func TestMetricKeysMatchTheReference(t *testing.T) {
	ref := runMetricsScenario(t, refMetricsLib)
	ours := runMetricsScenario(t, ourMetricsLib)
	for k := range metricsNotCompared {
		delete(ref, k)
		delete(ours, k)
	}
	var onlyRef, onlyOurs []string
	for k := range ref {
		if !ours[k] {
			onlyRef = append(onlyRef, k)
		}
	}
	for k := range ours {
		if !ref[k] {
			onlyOurs = append(onlyOurs, k)
		}
	}
	sort.Strings(onlyRef)
	sort.Strings(onlyOurs)
	t.Logf("%d keys emitted by the reference, %d by this library", len(ref), len(ours))
	explained := make(map[string]bool)
	for _, k := range onlyRef {
		if metricDifferences[k] == "" {
			t.Errorf("only the reference emits %s", k)
		}
		explained[k] = true
	}
	for _, k := range onlyOurs {
		if metricDifferences[k] == "" {
			t.Errorf("only this library emits %s", k)
		}
		explained[k] = true
	}
	for k := range metricDifferences {
		if !explained[k] {
			t.Errorf("listed as a difference, but both emit it or neither: %s", k)
		}
	}
}
