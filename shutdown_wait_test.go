package raft

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
)

// stuckFSM is a testFSM whose Apply of one command blocks until released.
// It counts every call made to it.
type stuckFSM struct {
	testFSM
	stuck   string
	entered chan uint64 // receives the stuck entry's index
	release chan struct{}

	mu    sync.Mutex
	calls int
}

func (f *stuckFSM) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *stuckFSM) called() {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
}

func (f *stuckFSM) Apply(l *Log) interface{} {
	f.called()
	if string(l.Data) == f.stuck {
		f.entered <- l.Index
		<-f.release
	}
	return f.testFSM.Apply(l)
}

func (f *stuckFSM) Snapshot() (FSMSnapshot, error) {
	f.called()
	return f.testFSM.Snapshot()
}

func (f *stuckFSM) Restore(rc io.ReadCloser) error {
	f.called()
	return f.testFSM.Restore(rc)
}

// timedLog records each log line with the (fake) time it was written.
type timedLog struct {
	mu    sync.Mutex
	lines []string
	at    []time.Time
}

func (l *timedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, strings.TrimRight(string(p), "\n"))
	l.at = append(l.at, time.Now())
	return len(p), nil
}

// matching returns the lines holding s and when they were written.
func (l *timedLog) matching(s string) ([]string, []time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var lines []string
	var at []time.Time
	for i, line := range l.lines {
		if strings.Contains(line, s) {
			lines = append(lines, line)
			at = append(at, l.at[i])
		}
	}
	return lines, at
}

// Shutdown waits for an FSM.Apply that does not return, as the reference
// does, and says so every 5 seconds while it waits; it returns once the
// call does, and nothing calls the FSM afterwards.
func TestShutdown_WaitsForAStuckApplyAndSaysSo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := &timedLog{}
		conf := testConfig(t, "node0")
		conf.Logger = hclog.New(&hclog.LoggerOptions{Name: "node0", Level: hclog.Warn, Output: logs})
		store := NewInmemStore()
		snaps := NewInmemSnapshotStore()
		_, trans := NewInmemTransport("addr-node0")
		boot := Configuration{Servers: []Server{{Suffrage: Voter, ID: "node0", Address: "addr-node0"}}}
		if err := BootstrapCluster(conf, store, store, snaps, trans, boot); err != nil {
			t.Fatal(err)
		}
		fsm := &stuckFSM{stuck: "stuck", entered: make(chan uint64), release: make(chan struct{})}
		r, err := NewRaft(conf, fsm, store, store, snaps, trans)
		if err != nil {
			t.Fatal(err)
		}
		if !<-r.LeaderCh() {
			t.Fatal("did not become leader")
		}
		if err := r.Apply([]byte("first"), 0).Error(); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range []string{"stuck", "later-1", "later-2"} {
			go r.Apply([]byte(cmd), 0).Error()
		}
		index := <-fsm.entered

		start := time.Now()
		done := make(chan struct{})
		go func() {
			r.Shutdown().Error()
			close(done)
		}()
		released := false
		defer func() {
			// On failure, let the node stop so the bubble can end.
			if !released {
				close(fsm.release)
				<-done
			}
		}()
		time.Sleep(12 * time.Second)
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("Shutdown returned while FSM.Apply had not")
		default:
		}
		lines, at := logs.matching("Shutdown waits for it")
		if len(lines) != 2 {
			t.Fatalf("%d warnings in 12s, want 2: %q", len(lines), lines)
		}
		for i, line := range lines {
			after := time.Duration(i+1) * 5 * time.Second
			want := fmt.Sprintf("FSM.Apply at index %d has not returned for %v; Shutdown waits for it", index, after)
			if !strings.Contains(line, want) {
				t.Errorf("warning %d: %q, want it to say %q", i, line, want)
			}
			if got := at[i].Sub(start); got != after {
				t.Errorf("warning %d logged %v after Shutdown, want %v", i, got, after)
			}
		}

		close(fsm.release)
		released = true
		<-done
		if waited := time.Since(start); waited != 12*time.Second {
			t.Errorf("Shutdown returned %v after it was called, want 12s (when Apply returned)", waited)
		}
		calls := fsm.count()
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := fsm.count(); n != calls {
			t.Errorf("the FSM was called %d times after Shutdown returned", n-calls)
		}
		if lines, _ := logs.matching("Shutdown waits for it"); len(lines) != 2 {
			t.Errorf("warnings after Shutdown returned: %q", lines[2:])
		}
	})
}
