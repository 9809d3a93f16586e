package interop

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	qraft "github.com/quorumkit/raft"
)

// The harness of the mixed cluster tests: a cluster of nodes of both
// libraries, bounded polling, commands sent to whichever node leads, a
// load of concurrent clients, a failover whose winner the test chooses,
// and the checks that every node applied the same commands in the same
// order.

const (
	// mixedPoll is the interval of every polling loop.
	mixedPoll = 10 * time.Millisecond
	// mixedSettle bounds waits for the cluster to reach a state: an
	// election, a catch-up. Generous, for loaded machines under -race.
	mixedSettle = 30 * time.Second
	// mixedLoadSettle bounds waits for a load of clients to have so many
	// commands acknowledged.
	mixedLoadSettle = 2 * time.Minute
	// mixedSubmitAttempts and mixedSubmitDeadline bound a client's retries
	// of one command.
	mixedSubmitAttempts = 3000
	mixedSubmitDeadline = 60 * time.Second
	// mixedEnqueueTimeout is the timeout passed to Apply.
	mixedEnqueueTimeout = time.Second
)

type mixedCluster struct {
	t     *testing.T
	nodes []*mixedNode
	sink  *mixedLogSink
}

// newMixedCluster starts a bootstrapped cluster with one node per entry of
// libs, named after their library and position ("ours-1", "reference-3").
// Cleanup kills every node and, if the test failed or MIXED_CLUSTER_LOGS
// is set in the environment, shows the nodes' last log lines.
func newMixedCluster(t *testing.T, timing mixedTiming, libs ...mixedLib) *mixedCluster {
	t.Helper()
	c := &mixedCluster{t: t, sink: &mixedLogSink{}}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("MIXED_CLUSTER_LOGS") != "" {
			t.Logf("last log lines of the cluster:\n%s", c.sink)
		}
	})
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: c.sink, TimeFormat: "15:04:05.000"})
	nw := newMixedNetwork()
	var servers []mixedServer
	for i, lib := range libs {
		n, err := newMixedNode(nw, fmt.Sprintf("%s-%d", lib, i+1), lib, timing, logger, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, n)
		servers = append(servers, mixedServer{id: n.id, addr: n.addr})
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if err := n.kill(); err != nil {
				t.Errorf("cleanup: %v", err)
			}
			n.currentLayer().Close() // for nodes that never started
		}
	})
	for _, n := range c.nodes {
		if err := n.start(servers); err != nil {
			t.Fatal(err)
		}
	}
	return c
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

// describe summarises every node for failure messages: role, term, last
// log index and the term of that entry as the store has it (0 while the
// write is in flight), the store's first and last index, the index of the
// newest snapshot in the node's store, the index of the last command the
// FSM applied, and the known leader.
func (c *mixedCluster) describe() string {
	var parts []string
	for _, n := range c.nodes {
		last := n.lastIndex()
		e, _ := n.logEntry(last)
		snap, _, _ := n.newestSnapshot()
		parts = append(parts, fmt.Sprintf("%s{state=%s term=%d last=%d/%d stored=[%d,%d] snap=%d applied=%d leader=%q}",
			n.id, n.state(), n.term(), last, e.Term, n.firstIndex(), n.storedLastIndex(), snap.Index, n.currentFSM().lastIndex(), n.leaderID()))
	}
	return strings.Join(parts, " ")
}

// leader returns the running node that reports being leader in the
// highest term, or nil. A deposed leader can report Leader a little longer
// than the new one; the higher term is the real one.
func (c *mixedCluster) leader() *mixedNode {
	var best *mixedNode
	var bestTerm uint64
	for _, n := range c.nodes {
		if n.state() != "Leader" {
			continue
		}
		if t := n.term(); best == nil || t > bestTerm {
			best, bestTerm = n, t
		}
	}
	return best
}

// waitLeader waits until a node leads and every running node follows it.
func (c *mixedCluster) waitLeader() *mixedNode {
	c.t.Helper()
	var l *mixedNode
	c.eventually(mixedSettle, "a leader is elected and known to every running node", func() bool {
		l = c.leader()
		if l == nil {
			return false
		}
		for _, n := range c.nodes {
			if n != l && n.running() && (n.leaderID() != l.id || n.term() != l.term()) {
				return false
			}
		}
		return true
	})
	return l
}

// others returns the nodes other than the given ones.
func (c *mixedCluster) others(not ...*mixedNode) []*mixedNode {
	var out []*mixedNode
next:
	for _, n := range c.nodes {
		for _, x := range not {
			if n == x {
				continue next
			}
		}
		out = append(out, n)
	}
	return out
}

// mixedNotApplied reports whether an Apply error proves the command was
// never appended to any log, so that retrying cannot apply it twice.
func mixedNotApplied(err error) bool {
	return errors.Is(err, qraft.ErrNotLeader) || errors.Is(err, hraft.ErrNotLeader) ||
		errors.Is(err, qraft.ErrEnqueueTimeout) || errors.Is(err, hraft.ErrEnqueueTimeout) ||
		errors.Is(err, errMixedNodeDown)
}

// mixedAck is a command's successful outcome.
type mixedAck struct {
	node   *mixedNode // the leader that answered
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
		index, resp, err := n.apply(cmd, mixedEnqueueTimeout)
		if err == nil {
			res, ok := resp.(mixedResult)
			if !ok {
				return ack, uncertain, fmt.Errorf("%s answered %q with response %#v, want a mixedResult", n, cmd, resp)
			}
			return mixedAck{node: n, index: index, result: res}, uncertain, nil
		}
		lastErr = fmt.Errorf("%s: %w", n, err)
		if !mixedNotApplied(err) {
			uncertain = true
		}
		time.Sleep(mixedPoll)
	}
	return ack, uncertain, fmt.Errorf("command %q not applied after bounded retries; last error: %v", cmd, lastErr)
}

// mustSubmit submits a command of the test's own and fails the test if no
// leader takes it.
func (c *mixedCluster) mustSubmit(cmd string) mixedAck {
	c.t.Helper()
	ack, _, err := c.submit([]byte(cmd), nil)
	if err != nil {
		c.t.Fatalf("%v; cluster: %s", err, c.describe())
	}
	return ack
}

// waitCaughtUp waits until every running node's FSM has applied index.
func (c *mixedCluster) waitCaughtUp(index uint64) {
	c.t.Helper()
	c.eventually(mixedSettle, fmt.Sprintf("every running node has applied index %d", index), func() bool {
		for _, n := range c.nodes {
			if n.running() && n.currentFSM().lastIndex() < index {
				return false
			}
		}
		return true
	})
}

// failOver kills the leader old and makes w, a running follower, win the
// election that follows. It does so without timing tricks: the third node
// is cut off, old commits at least one entry with w alone, then old is
// killed and the third node healed. The third node's log now ends before
// w's, so w never votes for it, and w is the only node that can win the
// next election; the test fails if anyone else wins it.
//
// If leadership moves by itself before old is killed (a loaded machine can
// starve a leader of its lease), failOver heals the third node and reports
// false without killing anyone, so the caller can plan again.
func (c *mixedCluster) failOver(old, w *mixedNode) bool {
	c.t.Helper()
	rest := c.others(old, w)
	if len(rest) != 1 || !rest[0].running() || !w.running() {
		c.t.Fatalf("failOver needs three running nodes; cluster: %s", c.describe())
	}
	third := rest[0]
	c.logf("failing over from %s to %s: cutting %s off; cluster: %s", old, w, third, c.describe())
	third.currentLayer().partition()
	for i := 0; ; i++ {
		ack := c.mustSubmit(fmt.Sprintf("failover-marker-%s-%d", w, i))
		if ack.node != old {
			c.logf("leadership moved from %s to %s by itself; healing %s and planning again", old, ack.node, third)
			third.currentLayer().heal()
			return false
		}
		// The marker committed with w alone. Requests that reached the
		// third node before the cut may still be appended there, but they
		// all precede the marker.
		if last := third.lastIndex(); ack.index > last {
			c.logf("marker at index %d committed; %s's log ends at %d", ack.index, third, last)
			break
		}
		if i == 100 {
			c.t.Fatalf("100 markers committed without passing %s's last index; cluster: %s", third, c.describe())
		}
	}
	term := old.term()
	if old.state() != "Leader" {
		c.logf("%s lost leadership by itself; healing %s and planning again", old, third)
		third.currentLayer().heal()
		return false
	}
	c.logf("killing leader %s (term %d); cluster: %s", old, term, c.describe())
	if err := old.kill(); err != nil {
		c.t.Fatal(err)
	}
	c.logf("killed %s; healing %s; cluster: %s", old, third, c.describe())
	third.currentLayer().heal()

	// The first leader of a later term must be w. Once w leads, it may
	// lose leadership by itself like any leader, so only the first one
	// counts.
	var first *mixedNode
	c.eventually(mixedSettle, "a node wins an election after the kill", func() bool {
		if l := c.leader(); l != nil && l.term() > term {
			first = l
		}
		return first != nil
	})
	if first != w {
		c.t.Fatalf("%s won the election although its log ends before %s's; cluster: %s", first, w, c.describe())
	}
	c.logf("%s (%s) leads in term %d", w, w.lib, first.term())
	return true
}

// restart restarts a killed node and waits until it has applied index.
func (c *mixedCluster) restart(n *mixedNode, index uint64) {
	c.t.Helper()
	c.logf("restarting %s on %s with its stores", n, n.addr)
	if err := n.restart(); err != nil {
		c.t.Fatal(err)
	}
	c.eventually(mixedSettle, fmt.Sprintf("restarted %s has applied index %d", n, index), func() bool {
		return n.currentFSM().lastIndex() >= index
	})
	c.logf("%s caught up to index %d", n, index)
}

// restartFromSnapshot restarts the killed node n once the leader has
// compacted its log past everything n holds, so that n can only catch up
// from a snapshot the leader sends, and checks that it did: its FSM
// restored a snapshot besides the one of its own it restores on start,
// and its snapshot store lists one past its old log. The clients' load
// normally moves the log on; when it has run dry, the test's own commands
// do. It returns the leader's and n's libraries, or false, having checked
// only that n caught up, if leadership moved while n caught up, since the
// snapshot may then have come from elsewhere.
func (c *mixedCluster) restartFromSnapshot(n *mixedNode, load *mixedLoad) (mixedInstall, bool) {
	c.t.Helper()
	own, hadOwn, err := n.newestSnapshot()
	if err != nil {
		c.t.Fatal(err)
	}
	reach := max(n.storedLastIndex(), own.Index)
	var l *mixedNode
	fillers := 0
	c.eventually(mixedSettle, fmt.Sprintf("the leader has compacted its log past index %d, the end of %s's", reach+1, n), func() bool {
		if l = c.leader(); l != nil && l.firstIndex() > reach+1 {
			return true
		}
		if load.acked.Load() >= load.gate.Load() || load.failed() {
			c.mustSubmit(fmt.Sprintf("filler-for-%s-%d", n, fillers))
			fillers++
		}
		return false
	})
	term := l.term()
	target := max(c.mustSubmit(fmt.Sprintf("before-restarting-%s", n)).index, load.highestAcked())
	leaderSnap, _, _ := l.newestSnapshot()
	c.logf("%s (%s) leads in term %d, its log starts at %d and its newest snapshot is at %d; %s's log ends at %d, its own snapshot is at %d (%d fillers)",
		l, l.lib, term, l.firstIndex(), leaderSnap.Index, n, n.storedLastIndex(), own.Index, fillers)
	c.restart(n, target)
	if l.state() != "Leader" || l.term() != term {
		c.logf("%s no longer leads in term %d, so %s's snapshot may have come from another node; not counting it", l, term, n)
		return mixedInstall{}, false
	}
	restores := n.currentFSM().restoreLog()
	atStart := 0
	if hadOwn {
		atStart = 1 // both libraries restore the newest stored snapshot in NewRaft
	}
	if len(restores) <= atStart {
		c.t.Fatalf("%s caught up to index %d from %s, whose log starts at %d, past its own end at %d, without installing a snapshot: FSM restores %+v; cluster: %s",
			n, target, l, l.firstIndex(), reach, restores, c.describe())
	}
	snap, ok, err := n.newestSnapshot()
	if err != nil || !ok || snap.Index <= reach {
		c.t.Fatalf("%s installed a snapshot, but its store lists %+v (%v, %v), not one past index %d", n, snap, ok, err, reach)
	}
	d := mixedInstall{from: l.lib, to: n.lib}
	c.logf("%s installed a snapshot from %s (%s): FSM restores %+v, newest stored snapshot %+v, last_snapshot_index %s",
		n, l, d, restores, snap, n.stat("last_snapshot_index"))
	return d, true
}

// checkSameHistory checks, once every node has applied index last, that
// every node's log holds the same entries up to last, from the first entry
// that every node holding last still holds in an unbroken run up to it (a
// node that installed a snapshot at last holds no entry), and that every
// node's FSM holds the same commands in the same order, each index once, in
// increasing order. A restored snapshot holds the whole history before it,
// so the FSMs are compared from the first command on, whatever each node
// restored. It returns the common FSM sequence.
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
	c.waitCaughtUp(last)
	first := c.nodes[0]
	for _, n := range c.nodes {
		if p := n.currentFSM().orderProblems(); len(p) > 0 {
			c.t.Errorf("%s applied entries out of order or restored a snapshot that lost commands: %v", n, p)
		}
	}
	// Snapshots still run, so a node may compact entries away while they
	// are read, or even install a snapshot and empty its log: an entry
	// missing below a node's first index, or from an empty log, is skipped.
	from := uint64(1)
	for _, n := range c.nodes {
		from = max(from, n.unbrokenFrom(last))
	}
	compared := 0
	for i := from; i <= last; i++ {
		var want mixedLogEntry
		var wantFrom *mixedNode
		for _, n := range c.nodes {
			got, err := n.logEntry(i)
			if err != nil {
				if first := n.firstIndex(); first == 0 || first > i {
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
	seq := first.currentFSM().sequence()
	for len(seq) > 0 && seq[len(seq)-1].Index > last {
		seq = seq[:len(seq)-1]
	}
	for _, n := range c.nodes[1:] {
		other := n.currentFSM().sequence()
		for len(other) > 0 && other[len(other)-1].Index > last {
			other = other[:len(other)-1]
		}
		if len(other) != len(seq) {
			c.t.Fatalf("%s applied %d commands up to index %d, %s applied %d", first, len(seq), last, n, len(other))
		}
		for i := range seq {
			if seq[i] != other[i] {
				c.t.Fatalf("command %d differs: %s applied %+v, %s applied %+v", i+1, first, seq[i], n, other[i])
			}
		}
	}
	return seq
}

// --- Concurrent clients. ---

// mixedLoad is a set of clients that apply numbered commands through
// whichever node leads. Commands are handed out in order; those numbered
// at or above the gate wait until the test opens it further, so the test
// can make sure that failovers happen while commands are still flowing.
type mixedLoad struct {
	c     *mixedCluster
	total int
	stop  chan struct{}
	wg    sync.WaitGroup

	gate  atomic.Int64 // commands numbered below it may be sent
	next  atomic.Int64 // the next command number to hand out
	acked atomic.Int64 // how many commands were acknowledged

	mu        sync.Mutex // guards the fields below
	acks      []mixedAck
	ok        []bool
	uncertain map[int]bool
	byLib     map[mixedLib]int
	maxIndex  uint64
	errs      []error
}

func mixedCommand(k int) string { return fmt.Sprintf("cmd-%05d", k) }

// startMixedLoad starts clients goroutines applying total commands, of
// which the first gate may go at once.
func startMixedLoad(c *mixedCluster, total, clients, gate int) *mixedLoad {
	l := &mixedLoad{
		c: c, total: total, stop: make(chan struct{}),
		acks: make([]mixedAck, total), ok: make([]bool, total),
		uncertain: make(map[int]bool), byLib: make(map[mixedLib]int),
	}
	l.gate.Store(int64(gate))
	for i := 0; i < clients; i++ {
		l.wg.Add(1)
		go l.client()
	}
	c.t.Cleanup(func() {
		close(l.stop)
		mixedWait(func() error { l.wg.Wait(); return nil }, mixedSubmitDeadline+mixedFutureDeadline)
	})
	return l
}

func (l *mixedLoad) client() {
	defer l.wg.Done()
	for {
		k := int(l.next.Add(1) - 1)
		if k >= l.total {
			return
		}
		gated := time.Now()
		for int64(k) >= l.gate.Load() {
			select {
			case <-l.stop:
				return
			default:
			}
			if time.Since(gated) > 2*time.Minute {
				l.fail(fmt.Errorf("command %d waited for the gate for 2 minutes", k))
				return
			}
			time.Sleep(mixedPoll)
		}
		ack, uncertain, err := l.c.submit([]byte(mixedCommand(k)), l.stop)
		l.mu.Lock()
		if uncertain {
			l.uncertain[k] = true
		}
		if err == nil {
			l.acks[k], l.ok[k] = ack, true
			l.byLib[ack.node.lib]++
			l.maxIndex = max(l.maxIndex, ack.index)
		}
		l.mu.Unlock()
		if err != nil {
			l.fail(err)
			return
		}
		l.acked.Add(1)
	}
}

func (l *mixedLoad) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

// open lets commands numbered below n go.
func (l *mixedLoad) open(n int) { l.gate.Store(int64(min(n, l.total))) }

// highestAcked returns the highest index acknowledged so far: every node
// that catches up must reach it.
func (l *mixedLoad) highestAcked() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.maxIndex
}

// waitAcked waits until n commands have been acknowledged.
func (l *mixedLoad) waitAcked(n int) {
	l.c.t.Helper()
	l.c.eventually(2*time.Minute, fmt.Sprintf("%d commands are acknowledged", n), func() bool {
		return l.acked.Load() >= int64(n) || l.failed()
	})
	l.checkNoErrors()
}

func (l *mixedLoad) failed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.errs) > 0
}

func (l *mixedLoad) checkNoErrors() {
	l.c.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) > 0 {
		l.c.t.Fatalf("%d clients failed, first: %v; cluster: %s", len(l.errs), l.errs[0], l.c.describe())
	}
}

// checkAgainst checks the load's outcome against the common FSM sequence:
// every command was acknowledged with the position and index the FSMs
// show, every command was applied, and only commands whose first attempt
// had an uncertain outcome were applied twice.
func (l *mixedLoad) checkAgainst(seq []mixedEntry) {
	t := l.c.t
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	count := make(map[string]int)
	for _, e := range seq {
		count[e.Data]++
	}
	problems := 0
	report := func(format string, args ...interface{}) {
		t.Helper()
		if problems < 10 {
			t.Errorf(format, args...)
		}
		problems++
	}
	dups := 0
	for k := 0; k < l.total; k++ {
		cmd := mixedCommand(k)
		if !l.ok[k] {
			report("command %s was never acknowledged", cmd)
			continue
		}
		ack := l.acks[k]
		if ack.result.Index != ack.index {
			report("command %s: future index %d but the FSM of %s saw index %d", cmd, ack.index, ack.node, ack.result.Index)
		}
		if p := ack.result.Seq; p < 1 || p > len(seq) || seq[p-1].Data != cmd || seq[p-1].Index != ack.index {
			report("command %s: %s answered position %d index %d, which the common sequence does not hold", cmd, ack.node, p, ack.index)
		}
		switch n := count[cmd]; {
		case n == 0:
			report("command %s was acknowledged but not applied", cmd)
		case n > 1 && !l.uncertain[k]:
			report("command %s was applied %d times although it was sent once", cmd, n)
		case n > 1:
			dups++
		}
	}
	if problems > 10 {
		t.Errorf("... and %d more problems with the commands", problems-10)
	}
	t.Logf("%d commands acknowledged (by library: %v), %d retried after an uncertain outcome, %d of those applied twice",
		l.total, l.byLib, len(l.uncertain), dups)
}
