package main

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a log destination several goroutines write to.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Closing the leader (what SIGTERM does) hands its leadership to another
// voter rather than leaving the others to an election, and closes its
// stores: it restarts on the same data directory and catches up.
func TestGraceful_ClosingTheLeaderHandsOverAndClosesItsStores(t *testing.T) {
	logs := map[string]*syncBuffer{}
	var nodes []*node
	for i, id := range []string{"n1", "n2", "n3"} {
		logs[id] = &syncBuffer{}
		o := nodeOpts{secret: "k", log: logs[id], dataDir: t.TempDir()}
		if i == 0 {
			o.bootstrap = true
		} else {
			o.join = nodes[0].cfg.httpAddr
		}
		nodes = append(nodes, startNode(t, id, o))
		if i == 0 {
			eventually(t, "first write", func() error { return nodes[0].want(http.StatusNoContent, "PUT", "/kv/a", "1") })
		}
	}
	old := leaderOf(t, nodes...)
	before := map[string]int{}
	for id, l := range logs {
		before[id] = len(l.String())
	}
	raftAddr, httpAddr, dir := string(old.trans.LocalAddr()), old.cfg.httpAddr, old.cfg.dataDir
	old.close()
	if l := logs[old.cfg.id].String(); !strings.Contains(l, "handed leadership over before shutting down") {
		t.Fatalf("the leader shut down without handing its leadership over:\n%s", l)
	}
	var rest []*node
	for _, n := range nodes {
		if n != old {
			rest = append(rest, n)
		}
	}
	next := leaderOf(t, rest...)
	// The new leader took over on the old one's word, not after its
	// heartbeats stopped.
	if l := logs[next.cfg.id].String()[before[next.cfg.id]:]; strings.Contains(l, "heartbeat timeout reached") {
		t.Errorf("%s's heartbeat timed out: an election, not a hand-off:\n%s", next.cfg.id, l)
	}
	eventually(t, "write after the hand-off", func() error { return next.want(http.StatusNoContent, "PUT", "/kv/a", "2") })

	// The stores were closed: the server restarts on its directory.
	back, err := startServer(serverConfig{id: old.cfg.id, raftAddr: raftAddr, httpAddr: httpAddr, dataDir: dir,
		heartbeat: old.cfg.heartbeat, logOutput: discard{}, secret: "k"})
	if err != nil {
		t.Fatalf("restarting %s on its data directory: %v", old.cfg.id, err)
	}
	t.Cleanup(back.close)
	eventually(t, "the restarted server catches up", func() error {
		if v, _ := back.kv.get("a"); v != "2" {
			return fmt.Errorf("a=%q", v)
		}
		return nil
	})
}

// A server restarted with another HTTP address records it once it leads,
// so that followers send clients to the right place.
func TestGraceful_RestartWithANewHTTPAddressIsRecorded(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, "n1", nodeOpts{bootstrap: true, dataDir: dir})
	waitStale(t, n, httpKeyPrefix+"n1", n.cfg.httpAddr)
	raftAddr, oldHTTP := string(n.trans.LocalAddr()), n.cfg.httpAddr
	n.close()
	logs := &syncBuffer{}
	back, err := startServer(serverConfig{id: "n1", raftAddr: raftAddr, httpAddr: "127.0.0.1:0", dataDir: dir,
		heartbeat: n.cfg.heartbeat, logOutput: logs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(back.close)
	if back.cfg.httpAddr == oldHTTP {
		t.Skip("the new listener got the old port")
	}
	defer func() {
		if t.Failed() {
			t.Logf("the restarted server's log:\n%s", logs)
		}
	}()
	waitStale(t, &node{server: back}, httpKeyPrefix+"n1", back.cfg.httpAddr)
}
