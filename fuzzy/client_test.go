package fuzzy

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/quorumkit/raft"
)

// A client issues random operations to whichever server it believes leads,
// one at a time, and records each in the history with its outcome.

const (
	// enqueueTimeout is the Apply timeout: how long the leader may take to
	// accept an entry.
	enqueueTimeout = heartbeatTimeout
	// clientTimeout is how long a client waits for an answer before it
	// gives up and records the outcome as unknown.
	clientTimeout = 20 * heartbeatTimeout
	// thinkTime bounds the pause between two operations of a client.
	thinkTime = 20 * time.Millisecond
)

type client struct {
	id    int
	c     *cluster
	hist  *history
	rnd   *rand.Rand
	reads []readMode
	// seq numbers the client's writes, to make every written value unique.
	seq int
	// hint is the server the client tries first.
	hint raft.ServerID
}

func newClient(id int, c *cluster, hist *history, seed uint64) *client {
	return &client{
		id:    id,
		c:     c,
		hist:  hist,
		rnd:   rand.New(rand.NewPCG(seed, uint64(id))),
		reads: readModes,
		hint:  c.sched.servers[id%len(c.sched.servers)],
	}
}

// run issues operations until stop closes.
func (cl *client) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		cl.step()
		// At least 1ns: a timer whose time has come already must not be
		// received from (see waitDelay).
		t := time.NewTimer(time.Duration(1 + cl.rnd.Int64N(int64(thinkTime))))
		select {
		case <-t.C:
		case <-stop:
			t.Stop()
			return
		}
	}
}

// step issues one operation.
func (cl *client) step() {
	inc := cl.target()
	if inc == nil {
		return
	}
	key := fmt.Sprintf("k%d", cl.rnd.IntN(cl.c.sched.keys))
	var in kvInput
	switch x := cl.rnd.IntN(10); {
	case x < 4:
		mode := cl.reads[cl.rnd.IntN(len(cl.reads))]
		in = kvInput{Op: opGet, Key: key}
		call := cl.hist.stamp()
		out, how := mode.read(cl, inc, key)
		cl.hist.record(cl.id, in, out, call, cl.hist.stamp(), how)
		return
	case x < 7:
		in = kvInput{Op: opPut, Key: key, Value: cl.nextValue()}
	case x < 8:
		in = kvInput{Op: opDelete, Key: key}
	default:
		// Expect a value someone may have written, or none at all.
		expect := fmt.Sprintf("c%d-%d", cl.rnd.IntN(cl.c.sched.clients), cl.rnd.IntN(cl.seq+1))
		in = kvInput{Op: opCAS, Key: key, Value: cl.nextValue(), Expect: expect}
	}
	call := cl.hist.stamp()
	out, how := cl.apply(inc, kvCommand{Op: in.Op, Key: in.Key, Value: in.Value, Expect: in.Expect})
	cl.hist.record(cl.id, in, out, call, cl.hist.stamp(), how)
}

func (cl *client) nextValue() string {
	cl.seq++
	return fmt.Sprintf("c%d-%d", cl.id, cl.seq)
}

// target picks the server to send to: the hinted one if it runs, else any
// running one. A server that shut itself down is not a target: every call
// to it would end as unknown (see classify), which tells the checker
// nothing and only makes its search longer.
func (cl *client) target() *incarnation {
	var running []*incarnation
	for _, inc := range cl.c.running() {
		if inc.raft.State() != raft.Shutdown {
			running = append(running, inc)
		}
	}
	if len(running) == 0 {
		return nil
	}
	for _, inc := range running {
		if inc.node.id == cl.hint {
			return inc
		}
	}
	inc := running[cl.rnd.IntN(len(running))]
	cl.hint = inc.node.id
	return inc
}

// redirect follows a refusal: to the leader the server names, or to a
// random server.
func (cl *client) redirect(inc *incarnation) {
	if _, id := inc.raft.LeaderWithID(); id != "" && id != inc.node.id {
		cl.hint = id
		return
	}
	all := cl.c.sched.all()
	cl.hint = all[cl.rnd.IntN(len(all))]
}

// apply runs cmd through the log of inc's server and classifies the
// outcome.
func (cl *client) apply(inc *incarnation, cmd kvCommand) (kvOutput, outcome) {
	data, err := json.Marshal(cmd)
	if err != nil {
		panic(err)
	}
	f := inc.raft.Apply(data, enqueueTimeout)
	err, answered := wait(f, clientTimeout)
	if !answered {
		return kvOutput{}, unknown
	}
	how := classify(err)
	if how == failed || errors.Is(err, raft.ErrRaftShutdown) {
		cl.redirect(inc)
	}
	if how != done {
		return kvOutput{}, how
	}
	res, ok := f.Response().(kvResult)
	if !ok {
		cl.c.check.violation("%s answered %v with %T, not a kvResult", inc.name, cmd, f.Response())
		return kvOutput{}, unknown
	}
	return kvOutput{Value: res.Value, Exists: res.Exists, OK: res.OK}, done
}

// classify tells from an Apply's error whether the entry took effect (as
// the raft package's ApplyLog and errors.go document them):
//
//   - nil: it was committed and applied, and Response is the FSM's answer.
//   - ErrNotLeader, ErrEnqueueTimeout, ErrLeadershipTransferInProgress:
//     the server refused or never took the entry; nothing was appended.
//   - ErrLeadershipLost: the leader lost its role with the entry in flight;
//     it may or may not commit.
//   - ErrRaftShutdown: ambiguous from the outside. ApplyLog returns it
//     when the node was already shut down (nothing appended), but a future
//     the leader took answers it too when the node stops before the entry
//     is applied, and that entry may be committed. A caller cannot tell the
//     two apart, so it is unknown.
//   - anything else (a store error while applying, say): unknown.
func classify(err error) outcome {
	switch {
	case err == nil:
		return done
	case errors.Is(err, raft.ErrNotLeader),
		errors.Is(err, raft.ErrEnqueueTimeout),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return failed
	default:
		return unknown
	}
}

// wait waits for f's answer for at most timeout of fake time. The
// goroutine that waits on f outlives a timeout; it ends when the node
// answers f, at the latest when the node shuts down.
func wait(f raft.Future, timeout time.Duration) (error, bool) {
	ch := make(chan error, 1)
	go func() { ch <- f.Error() }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-ch:
		return err, true
	case <-t.C:
		return nil, false
	}
}
