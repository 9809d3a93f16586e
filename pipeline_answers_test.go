package raft

import (
	"errors"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestDirectAnswersFailOnceThenStop checks the handler a replicator gives
// this package's pipelines: the first failed answer closes failedCh, later
// answers are ignored (closing it again would panic), and after stop no
// answer reaches the replicator (whose nil fields would panic if touched).
func TestDirectAnswersFailOnceThenStop(t *testing.T) {
	s := &replicator{r: &Raft{logger: hclog.NewNullLogger()}, peer: Server{ID: "peer"}}
	d := &directAnswers{s: s, failedCh: make(chan struct{})}

	failed := newAppendFuture(&AppendEntriesRequest{}, &AppendEntriesResponse{})
	failed.respond(errors.New("connection reset"))
	d.handle(failed)
	select {
	case <-d.failedCh:
	default:
		t.Fatal("a failed answer did not close failedCh")
	}
	d.handle(failed) // ignored: failedCh is closed once

	stopped := &directAnswers{s: &replicator{}, failedCh: make(chan struct{})}
	stopped.stop()
	ok := newAppendFuture(&AppendEntriesRequest{}, &AppendEntriesResponse{Success: true})
	ok.respond(nil)
	stopped.handle(ok) // touches nothing of the replicator after stop
	select {
	case <-stopped.failedCh:
		t.Fatal("failedCh closed after stop")
	default:
	}
}
