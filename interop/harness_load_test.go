package interop

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// The load of the harness: concurrent clients applying numbered commands
// through whichever node leads, and the check that every acknowledged
// command was applied where its acknowledgement said.

// mixedLoad is a set of clients applying numbered commands through
// whichever node leads, one after another each, from the moment it starts
// until the test calls finish. It never runs dry: whatever the test waits
// for (so many more commands acknowledged while a node is down, a leader's
// log compacted past a point) comes true however fast or slow the machine
// runs the clients, and the test's steps happen while commands flow.
type mixedLoad struct {
	c     *mixedCluster
	pad   int
	done  chan struct{} // closed by finish: clients take no new command
	abort chan struct{} // closed at cleanup: clients give up the one in hand
	wg    sync.WaitGroup

	next  atomic.Int64 // the next command number to hand out
	acked atomic.Int64 // how many commands were acknowledged

	mu        sync.Mutex // guards the fields below
	total     int        // how many commands were handed out, once finished
	finished  bool
	acks      map[int]mixedAck
	uncertain map[int]bool
	byLib     map[mixedLib]int
	maxIndex  uint64
	errs      []error
}

func mixedCommand(k int) string { return fmt.Sprintf("load-%05d", k) }

// startMixedLoad starts clients goroutines applying commands padded with
// pad bytes until finish is called.
func startMixedLoad(c *mixedCluster, clients, pad int) *mixedLoad {
	l := &mixedLoad{
		c: c, pad: pad, done: make(chan struct{}), abort: make(chan struct{}),
		acks: make(map[int]mixedAck), uncertain: make(map[int]bool), byLib: make(map[mixedLib]int),
	}
	for i := 0; i < clients; i++ {
		l.wg.Add(1)
		go l.client()
	}
	// Registered after the cluster's cleanup, so it runs first: clients
	// stop before the nodes do.
	c.t.Cleanup(func() {
		close(l.abort)
		l.mu.Lock()
		if !l.finished {
			l.finished = true
			close(l.done)
		}
		l.mu.Unlock()
		mixedWait(func() error { l.wg.Wait(); return nil }, mixedSubmitDeadline+mixedFutureDeadline)
	})
	return l
}

func (l *mixedLoad) client() {
	defer l.wg.Done()
	for {
		select {
		case <-l.done:
			return
		default:
		}
		k := int(l.next.Add(1) - 1)
		// A command once handed out is sent until it is acknowledged,
		// even after finish: only the cleanup's abort gives it up.
		ack, uncertain, err := l.c.submit([]byte(mixedPadded(mixedCommand(k), l.pad)), l.abort)
		l.mu.Lock()
		if uncertain {
			l.uncertain[k] = true
		}
		if err == nil {
			l.acks[k] = ack
			l.byLib[ack.lib]++
			l.maxIndex = max(l.maxIndex, ack.index)
		}
		l.mu.Unlock()
		if err != nil {
			l.fail(fmt.Errorf("command %d: %w", k, err))
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

func (l *mixedLoad) highestAcked() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.maxIndex
}

// waitAcked waits until n commands in all have been acknowledged.
func (l *mixedLoad) waitAcked(n int) {
	l.c.t.Helper()
	l.c.eventually(mixedLoadSettle, fmt.Sprintf("%d commands are acknowledged", n), func() bool {
		return l.acked.Load() >= int64(n) || l.failed()
	})
	l.checkNoErrors()
}

// waitMore waits until n more commands than so far have been acknowledged.
func (l *mixedLoad) waitMore(n int) {
	l.c.t.Helper()
	l.waitAcked(int(l.acked.Load()) + n)
}

// finish lets every client complete the command in hand, takes no new
// one, and fails the test if a client failed. Every command handed out
// has then been acknowledged.
func (l *mixedLoad) finish() {
	l.c.t.Helper()
	l.mu.Lock()
	if !l.finished {
		l.finished = true
		close(l.done)
	}
	l.mu.Unlock()
	if err := mixedWait(func() error { l.wg.Wait(); return nil }, mixedSubmitDeadline+mixedFutureDeadline); err != nil {
		l.c.t.Fatalf("the clients did not finish: %v; cluster: %s", err, l.c.describe())
	}
	l.checkNoErrors()
	l.mu.Lock()
	l.total = int(l.next.Load())
	l.mu.Unlock()
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

// checkAgainst checks the outcome of a finished load against the common
// FSM sequence:
// every command was acknowledged with the index and position the FSMs
// show, every acknowledged command was applied, and only commands with an
// uncertain attempt were applied more than once.
func (l *mixedLoad) checkAgainst(seq []mixedEntry) {
	t := l.c.t
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.finished {
		t.Fatal("checkAgainst called before finish")
	}
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
		cmd := mixedPadded(mixedCommand(k), l.pad)
		ack, ok := l.acks[k]
		if !ok {
			report("command %s was never acknowledged", mixedCommand(k))
			continue
		}
		if ack.result.Index != ack.index {
			report("command %s: future index %d but the FSM of %s saw index %d", mixedCommand(k), ack.index, ack.node, ack.result.Index)
		}
		if p := ack.result.Seq; p < 1 || p > len(seq) || seq[p-1].Data != cmd || seq[p-1].Index != ack.index {
			report("command %s: %s (%s) answered position %d index %d, which the common sequence does not hold",
				mixedCommand(k), ack.node, ack.lib, p, ack.index)
		}
		switch n := count[cmd]; {
		case n == 0:
			report("command %s was acknowledged but not applied", mixedCommand(k))
		case n > 1 && !l.uncertain[k]:
			report("command %s was applied %d times although it was sent once", mixedCommand(k), n)
		case n > 1:
			dups++
		}
	}
	if problems > 10 {
		t.Errorf("... and %d more problems with the commands", problems-10)
	}
	t.Logf("%d commands acknowledged (by library of the leader: %v), %d retried after an uncertain outcome, %d of those applied twice",
		l.total, l.byLib, len(l.uncertain), dups)
}
