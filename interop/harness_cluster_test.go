package interop

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	qraft "github.com/quorumkit/raft"
)

// The cluster of the harness: nodes of both libraries, bounded polling for
// conditions, commands sent to whichever node leads, membership changes,
// a failover whose winner the test chooses, and the checks that every node
// applied the same commands in the same order.

const (
	// mixedPoll is the interval of every polling loop.
	mixedPoll = 10 * time.Millisecond
	// mixedSettle bounds waits for the cluster to reach a state: an
	// election, a catch-up. Generous, for loaded machines under -race:
	// reaching it is a failure, never a measurement.
	mixedSettle = 30 * time.Second
	// mixedLoadSettle bounds waits for a load of clients to have so many
	// commands acknowledged.
	mixedLoadSettle = 2 * time.Minute
	// mixedSubmitAttempts and mixedSubmitDeadline bound a client's retries
	// of one command.
	mixedSubmitAttempts = 3000
	mixedSubmitDeadline = 60 * time.Second
	// mixedEnqueueTimeout is the timeout passed to Apply and to
	// membership changes.
	mixedEnqueueTimeout = time.Second
)

type mixedCluster struct {
	t      *testing.T
	base   string // the nodes' directories are under it
	nw     *mixedNetwork
	sink   *mixedLogSink
	logger hclog.Logger
	set    mixedSettings

	mu      sync.Mutex // guards the fields below; clients read them while the test adds nodes
	nodes   []*mixedNode
	members map[*mixedNode]bool // the nodes the test has made members, voters or not
	// uncertain holds the test's own commands that mustSubmit retried
	// after an attempt whose outcome was unknown.
	uncertain map[string]bool
	// sent holds every command mustSubmit had acknowledged.
	sent map[string]bool
}

// newCluster prepares an empty cluster. Cleanup stops every node and, if
// the test failed or MIXED_CLUSTER_LOGS is set in the environment, shows
// the nodes' last log lines.
func newCluster(t *testing.T, set mixedSettings) *mixedCluster {
	t.Helper()
	// The nodes' directories live under one taken before the cleanup below
	// is registered, so that they are removed after the nodes stop.
	c := &mixedCluster{t: t, base: t.TempDir(), nw: newMixedNetwork(), sink: &mixedLogSink{}, set: set,
		members: map[*mixedNode]bool{}, uncertain: map[string]bool{}, sent: map[string]bool{}}
	c.logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: c.sink, TimeFormat: "15:04:05.000"})
	t.Cleanup(func() {
		dump := t.Failed() || os.Getenv("MIXED_CLUSTER_LOGS") != ""
		if dump {
			t.Logf("cluster at the end: %s", c.describe())
		}
		for _, n := range c.allNodes() {
			if _, err := n.stop(); err != nil {
				t.Errorf("cleanup: %v", err)
			}
			n.currentLayer().Close() // for nodes that never started
		}
		if dump {
			t.Logf("last log lines of the cluster:\n%s", c.sink)
		}
	})
	return c
}

// newMixedCluster starts a bootstrapped cluster with one node per entry of
// libs, named after their library and position ("ours-1", "reference-3").
func newMixedCluster(t *testing.T, set mixedSettings, libs ...mixedLib) *mixedCluster {
	t.Helper()
	c := newCluster(t, set)
	var nodes []*mixedNode
	for i, lib := range libs {
		nodes = append(nodes, c.addNode(fmt.Sprintf("%s-%d", lib, i+1), lib))
	}
	c.bootstrap(nodes...)
	return c
}

// addNode creates a node of lib with its own directory and port; it does
// not start it.
func (c *mixedCluster) addNode(id string, lib mixedLib) *mixedNode {
	c.t.Helper()
	if err := os.Mkdir(filepath.Join(c.base, id), 0o755); err != nil {
		c.t.Fatal(err)
	}
	layer, err := c.nw.listen("127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	n := &mixedNode{
		nw: c.nw, id: id, addr: layer.Addr().String(), dir: filepath.Join(c.base, id), set: c.set,
		logger: c.logger.Named(id), lib: lib, layer: layer,
	}
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	return n
}

// bootstrap starts the given nodes as the founding voters.
func (c *mixedCluster) bootstrap(nodes ...*mixedNode) {
	c.t.Helper()
	var voters []mixedMember
	for _, n := range nodes {
		voters = append(voters, mixedMember{ID: n.id, Addr: n.addr, Voter: true})
	}
	for _, n := range nodes {
		if err := n.start(voters, false); err != nil {
			c.t.Fatal(err)
		}
		c.setMember(n, true)
	}
}

func (c *mixedCluster) setMember(n *mixedNode, member bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if member {
		c.members[n] = true
	} else {
		delete(c.members, n)
	}
}

func (c *mixedCluster) allNodes() []*mixedNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*mixedNode(nil), c.nodes...)
}

// memberNodes returns the members in the order they were created.
func (c *mixedCluster) memberNodes() []*mixedNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*mixedNode
	for _, n := range c.nodes {
		if c.members[n] {
			out = append(out, n)
		}
	}
	return out
}

// others returns the members other than the given ones.
func (c *mixedCluster) others(not ...*mixedNode) []*mixedNode {
	var out []*mixedNode
next:
	for _, n := range c.memberNodes() {
		for _, x := range not {
			if n == x {
				continue next
			}
		}
		out = append(out, n)
	}
	return out
}

// logf writes to the test and to the cluster's log, so that a failure's
// log dump shows the test's steps among the nodes' lines.
func (c *mixedCluster) logf(format string, args ...interface{}) {
	c.t.Helper()
	msg := fmt.Sprintf(format, args...)
	c.t.Log(msg)
	fmt.Fprintf(c.sink, "%s [TEST] %s\n", time.Now().Format("15:04:05.000"), msg)
}

// eventually polls cond until it holds, failing the test after timeout.
func (c *mixedCluster) eventually(timeout time.Duration, what string, cond func() bool) {
	c.t.Helper()
	if !mixedPollUntil(timeout, cond) {
		c.t.Fatalf("timed out after %v waiting until %s; cluster: %s", timeout, what, c.describe())
	}
}

// mixedPollUntil polls cond every mixedPoll until it holds or timeout
// passes, and reports whether it held.
func mixedPollUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(mixedPoll)
	}
}

// describe summarises every node for failure messages: library, role,
// term, last log index and the term of that entry as the store has it (0
// while the write is in flight), the store's first and last index, the
// index of the newest snapshot in the node's store, the index of the last
// command the FSM applied, and the known leader.
func (c *mixedCluster) describe() string {
	var parts []string
	for _, n := range c.allNodes() {
		last := n.lastIndex()
		e, _ := n.logEntry(last)
		first, stored, _ := n.logBounds()
		snap, _, _ := n.newestSnapshot()
		parts = append(parts, fmt.Sprintf("%s/%s{state=%s term=%d last=%d/%d stored=[%d,%d] snap=%d applied=%d leader=%q}",
			n.id, n.library(), n.state(), n.term(), last, e.Term, first, stored, snap.Index, n.currentFSM().lastIndex(), n.leaderID()))
	}
	return strings.Join(parts, " ")
}

// leader returns the running node that reports being leader in the
// highest term, or nil. A deposed leader can report Leader a little longer
// than the new one; the higher term is the real one.
func (c *mixedCluster) leader() *mixedNode {
	var best *mixedNode
	var bestTerm uint64
	for _, n := range c.allNodes() {
		if n.state() != "Leader" {
			continue
		}
		if t := n.term(); best == nil || t > bestTerm {
			best, bestTerm = n, t
		}
	}
	return best
}

// waitLeader waits until a node leads and every running member follows
// it, cut-off ones excepted.
func (c *mixedCluster) waitLeader() *mixedNode {
	c.t.Helper()
	var l *mixedNode
	c.eventually(mixedSettle, "a leader is elected and known to every running member", func() bool {
		l = c.leader()
		if l == nil {
			return false
		}
		for _, n := range c.memberNodes() {
			if n != l && n.running() && !n.currentLayer().isCut() && (n.leaderID() != l.id || n.term() != l.term()) {
				return false
			}
		}
		return true
	})
	return l
}

// leadWith makes w the leader, by leadership transfer, and waits until
// every running member follows it. Transfers can fail on a loaded machine
// (the target's election can time out); they are retried.
func (c *mixedCluster) leadWith(w *mixedNode) {
	c.t.Helper()
	for attempt := 1; ; attempt++ {
		l := c.waitLeader()
		if l == w {
			c.logf("%s (%s) leads in term %d", w, w.library(), w.term())
			return
		}
		if attempt == 6 {
			c.t.Fatalf("five leadership transfers to %s failed; cluster: %s", w, c.describe())
		}
		c.logf("transferring leadership from %s (%s) to %s (%s)", l, l.library(), w, w.library())
		if err := l.transferTo(w); err != nil {
			// Most often w was behind. Try again once it holds what l
			// held, or once leadership has moved by itself.
			c.logf("transfer from %s to %s failed: %v", l, w, err)
			last := l.lastIndex()
			c.eventually(mixedSettle, fmt.Sprintf("%s's log reaches index %d, or %s no longer leads", w, last, l), func() bool {
				return w.lastIndex() >= last || c.leader() != l
			})
		}
		// The next round waits for a leader that every member follows.
	}
}

// mixedNotApplied reports whether an Apply error proves the command was
// never appended to any log, so that retrying cannot apply it twice.
func mixedNotApplied(err error) bool {
	return errors.Is(err, qraft.ErrNotLeader) || errors.Is(err, hraft.ErrNotLeader) ||
		errors.Is(err, qraft.ErrEnqueueTimeout) || errors.Is(err, hraft.ErrEnqueueTimeout) ||
		errors.Is(err, qraft.ErrLeadershipTransferInProgress) || errors.Is(err, hraft.ErrLeadershipTransferInProgress) ||
		errors.Is(err, errMixedNodeDown)
}

// mixedAck is a command's successful outcome.
type mixedAck struct {
	node   *mixedNode // the leader that answered
	lib    mixedLib   // the library it ran when it answered
	index  uint64     // ApplyFuture.Index
	result mixedResult
}

// submit sends cmd to whichever node leads until one accepts it, retrying
// with bounded attempts. uncertain is true if an earlier attempt failed in
// a way that may still have applied the command (leadership lost, shutdown
// with the entry in flight): the command may then appear twice.
func (c *mixedCluster) submit(cmd []byte, stop <-chan struct{}) (ack mixedAck, uncertain bool, err error) {
	deadline := time.Now().Add(mixedSubmitDeadline)
	var lastErr error
	for attempt := 0; attempt < mixedSubmitAttempts && time.Now().Before(deadline); attempt++ {
		select {
		case <-stop:
			return ack, uncertain, errors.New("stopped")
		default:
		}
		n := c.leader()
		if n == nil {
			time.Sleep(mixedPoll)
			continue
		}
		lib, index, resp, err := n.apply(cmd)
		if err == nil {
			res, ok := resp.(mixedResult)
			if !ok {
				return ack, uncertain, fmt.Errorf("%s answered %.40q with response %#v, want a mixedResult", n, cmd, resp)
			}
			return mixedAck{node: n, lib: lib, index: index, result: res}, uncertain, nil
		}
		lastErr = fmt.Errorf("%s: %w", n, err)
		if !mixedNotApplied(err) {
			uncertain = true
		}
		time.Sleep(mixedPoll)
	}
	return ack, uncertain, fmt.Errorf("command %.40q not applied after bounded retries; last error: %v", cmd, lastErr)
}

// mustSubmit applies a command of the test's own, failing the test if no
// leader takes it. A command whose outcome was uncertain on some attempt
// is remembered: it may be applied twice.
func (c *mixedCluster) mustSubmit(cmd string) mixedAck {
	c.t.Helper()
	ack, uncertain, err := c.submit([]byte(cmd), nil)
	if uncertain {
		c.mu.Lock()
		c.uncertain[cmd] = true
		c.mu.Unlock()
	}
	if err != nil {
		c.t.Fatalf("%v; cluster: %s", err, c.describe())
	}
	c.mu.Lock()
	c.sent[cmd] = true
	c.mu.Unlock()
	return ack
}

// submitMany applies n commands of the test's own, one after another, and
// returns the last acknowledgement.
func (c *mixedCluster) submitMany(prefix string, n, pad int) mixedAck {
	c.t.Helper()
	var ack mixedAck
	for i := 0; i < n; i++ {
		ack = c.mustSubmit(mixedPadded(fmt.Sprintf("%s-%04d", prefix, i), pad))
	}
	return ack
}

// mixedPadded returns cmd followed by pad bytes of filler, so that
// snapshots grow past the transports' buffers.
func mixedPadded(cmd string, pad int) string {
	if pad == 0 {
		return cmd
	}
	return cmd + "|" + strings.Repeat("x", pad)
}

// mixedShort drops a command's padding for messages.
func mixedShort(e mixedEntry) mixedEntry {
	if i := strings.IndexByte(e.Data, '|'); i >= 0 {
		e.Data = e.Data[:i] + "|…"
	}
	return e
}

// checkOnce checks that seq holds every command mustSubmit had
// acknowledged once, or twice for those retried after an uncertain
// outcome, plus extra, and nothing else.
func (c *mixedCluster) checkOnce(seq []mixedEntry, extra map[string]bool) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	want := map[string]bool{}
	for cmd := range c.sent {
		want[cmd] = true
	}
	for cmd := range extra {
		want[cmd] = true
	}
	count := map[string]int{}
	for _, e := range seq {
		count[e.Data]++
	}
	for cmd := range want {
		if n := count[cmd]; n == 0 || n > 1 && !c.uncertain[cmd] {
			c.t.Errorf("command %.40q applied %d times, want once", cmd, n)
		}
	}
	for cmd := range count {
		if !want[cmd] {
			c.t.Errorf("command %.40q applied but never sent", cmd)
		}
	}
}

// waitApplied waits until every running member's FSM has applied index.
func (c *mixedCluster) waitApplied(index uint64) {
	c.t.Helper()
	c.eventually(mixedSettle, fmt.Sprintf("every running member has applied index %d", index), func() bool {
		for _, n := range c.memberNodes() {
			if n.running() && n.currentFSM().lastIndex() < index {
				return false
			}
		}
		return true
	})
}

// waitLogCompactedPast waits until n's log no longer holds the entry after
// index, so a follower whose log ends at index normally catches up from a
// snapshot (or from entries a replicator read before the compaction: see
// harness_catchup_test.go), and returns n's snapshots at that moment.
func (c *mixedCluster) waitLogCompactedPast(n *mixedNode, index uint64) []mixedSnap {
	c.t.Helper()
	var snaps []mixedSnap
	c.eventually(mixedSettle, fmt.Sprintf("%s has a snapshot and has compacted its log past index %d", n, index+1), func() bool {
		first, _, err := n.logBounds()
		if err != nil || first <= index+1 {
			return false
		}
		snaps, err = n.snapshots()
		return err == nil && len(snaps) > 0
	})
	return snaps
}

// checkConfigurations waits until every running member reports want as its
// latest configuration.
func (c *mixedCluster) checkConfigurations(want []mixedMember) {
	c.t.Helper()
	sort.Slice(want, func(i, j int) bool { return want[i].ID < want[j].ID })
	var last string
	if !mixedPollUntil(mixedSettle, func() bool {
		var diffs []string
		for _, n := range c.memberNodes() {
			if !n.running() {
				continue
			}
			got, err := n.configuration()
			if err != nil {
				diffs = append(diffs, fmt.Sprintf("%s: %v", n, err))
			} else if fmt.Sprint(got) != fmt.Sprint(want) {
				diffs = append(diffs, fmt.Sprintf("%s has %v", n, got))
			}
		}
		last = strings.Join(diffs, "; ")
		return len(diffs) == 0
	}) {
		c.t.Fatalf("members do not agree on the configuration %v: %s; cluster: %s", want, last, c.describe())
	}
	c.logf("every running member reports the configuration %v", want)
}

// startFresh starts a node that has never been bootstrapped, to be added
// to the cluster.
func (c *mixedCluster) startFresh(n *mixedNode) {
	c.t.Helper()
	if err := n.start(nil, false); err != nil {
		c.t.Fatal(err)
	}
}

// change runs a membership change on l, which must lead. A change that
// fails, for example because leadership moved on a loaded machine, is
// retried once l leads again: every change used here is idempotent.
func (c *mixedCluster) change(l *mixedNode, what string, op func(l *mixedNode) error) {
	c.t.Helper()
	for attempt := 1; ; attempt++ {
		err := op(l)
		if err == nil {
			c.logf("%s (%s, term %d) committed: %s", l, l.library(), l.term(), what)
			return
		}
		if attempt == 4 {
			c.t.Fatalf("%s on %s failed three times, last: %v; cluster: %s", what, l, err, c.describe())
		}
		c.logf("%s on %s failed: %v; retrying once %s leads", what, l, err, l)
		c.leadWith(l)
	}
}

// checkSameHistory waits until every running member has applied index
// last, then checks that their logs hold the same entries up to last, from
// the first entry that every one holding last still holds in an unbroken
// run up to it (a node that installed a snapshot at last holds no entry),
// and that their FSMs hold the same commands in the same order, each index
// once, in increasing order. A restored snapshot holds the whole history
// before it, so the FSMs are compared from the first command on, whatever
// each node restored. It returns the common FSM sequence.
//
// The run must be unbroken because a reference node that installed a
// snapshot past the end of its log keeps that log's last TrailingLogs
// entries: hashicorp/raft's installSnapshot only compacts the log as after
// a snapshot of its own, up to min(snapshot index, last index -
// TrailingLogs), with the last index from before the install. Its store
// then holds those old entries, a gap up to the snapshot, and the entries
// after it, until a later compaction of its own deletes the old ones. Ours
// discards the whole log when it does not hold the snapshot's last entry
// (Raft paper, figure 13, step 7), so its store never has a gap.
func (c *mixedCluster) checkSameHistory(last uint64) []mixedEntry {
	c.t.Helper()
	c.waitApplied(last)
	var nodes []*mixedNode
	for _, n := range c.memberNodes() {
		if n.running() {
			nodes = append(nodes, n)
		}
	}
	if len(nodes) == 0 {
		c.t.Fatal("no running member to compare")
	}
	for _, n := range nodes {
		if p := n.currentFSM().orderProblems(); len(p) > 0 {
			c.t.Errorf("%s applied entries out of order or restored a snapshot that lost commands: %v", n, p)
		}
	}
	// Snapshots still run, so a node may compact entries away while they
	// are read, or even install a snapshot and empty its log: an entry
	// missing below a node's first index, or from an empty log, is skipped.
	from := uint64(1)
	for _, n := range nodes {
		from = max(from, n.unbrokenFrom(last))
	}
	compared := 0
	for i := from; i <= last; i++ {
		var want mixedLogEntry
		var wantFrom *mixedNode
		for _, n := range nodes {
			got, err := n.logEntry(i)
			if err != nil {
				// Compacted away, or gone with a snapshot installed since
				// (which may leave a reference node's store with a gap).
				if from := n.unbrokenFrom(last); from == 0 || from > i {
					continue
				}
				c.t.Fatalf("%s: log entry %d: %v; cluster: %s", n, i, err, c.describe())
			}
			if wantFrom == nil {
				want, wantFrom = got, n
			} else if got != want {
				c.t.Fatalf("log entry %d differs: %s has %+v, %s has %+v", i, wantFrom, want, n, got)
			}
		}
		compared++
	}
	if from > 1 {
		c.logf("logs compared from index %d to %d (%d entries): some node no longer holds the entry before", from, last, compared)
	}
	first := nodes[0]
	seq := mixedSequenceUpTo(first.currentFSM(), last)
	for _, n := range nodes[1:] {
		other := mixedSequenceUpTo(n.currentFSM(), last)
		if len(other) != len(seq) {
			c.t.Fatalf("%s applied %d commands up to index %d, %s applied %d", first, len(seq), last, n, len(other))
		}
		for i := range seq {
			if seq[i] != other[i] {
				c.t.Fatalf("command %d differs: %s applied %+v, %s applied %+v", i+1, first, mixedShort(seq[i]), n, mixedShort(other[i]))
			}
		}
	}
	return seq
}
