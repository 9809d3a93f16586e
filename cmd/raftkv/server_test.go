package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// An end-to-end test of raftkv over real TCP and HTTP on 127.0.0.1: a
// cluster is bootstrapped, joined, written and read through any member,
// and survives the loss of its leader. It runs in real time with bounded
// retries.

func startTestServer(t *testing.T, id string, bootstrap bool, join string) *server {
	t.Helper()
	s, err := startServer(serverConfig{
		id: id, raftAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0", dataDir: t.TempDir(),
		bootstrap: bootstrap, join: join, heartbeat: 300 * time.Millisecond, logOutput: io.Discard,
		secret: "test-secret",
	})
	if err != nil {
		t.Fatalf("starting %s: %v", id, err)
	}
	return s
}

// settle bounds every wait of these tests: generous, so that a loaded
// machine only makes them slower. Reaching it is a failure, never a
// measurement.
const settle = time.Minute

// client is the HTTP client of these tests: a request that hangs fails
// and is retried instead of hanging the test.
var client = &http.Client{Timeout: settle / 2}

// eventually retries op until it succeeds, failing the test after settle.
func eventually(t testing.TB, what string, op func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(settle); time.Now().Before(deadline); {
		if err = op(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

func put(addr, key, value string) error {
	req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/kv/"+key, strings.NewReader(value))
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		body, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s", resp.Status, body)
	}
	return nil
}

func get(addr, key string) (string, error) {
	resp, err := client.Get("http://" + addr + "/kv/" + key)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, body)
	}
	return string(body), nil
}

func TestServe_ClusterWritesReadsAndSurvivesItsLeader(t *testing.T) {
	first := startTestServer(t, "node1", true, "")
	servers := []*server{first}
	defer func() {
		for _, s := range servers {
			s.close()
		}
	}()
	eventually(t, "first write", func() error { return put(first.cfg.httpAddr, "greeting", "hello") })
	for _, id := range []string{"node2", "node3"} {
		servers = append(servers, startTestServer(t, id, false, first.cfg.httpAddr))
	}
	// Any member answers, sending the client to the leader.
	for _, s := range servers {
		eventually(t, "linearizable read through "+s.cfg.id, func() error {
			v, err := get(s.cfg.httpAddr, "greeting")
			if err == nil && v != "hello" {
				err = fmt.Errorf("read %q", v)
			}
			return err
		})
	}
	eventually(t, "write through a follower", func() error { return put(servers[2].cfg.httpAddr, "greeting", "bonjour") })

	// Stop the leader; the others elect a new one and keep serving.
	leader := first
	for _, s := range servers {
		if s.raft.State().String() == "Leader" {
			leader = s
		}
	}
	leader.close()
	var rest []*server
	for _, s := range servers {
		if s != leader {
			rest = append(rest, s)
		}
	}
	servers = rest
	eventually(t, "write after losing the leader", func() error { return put(rest[0].cfg.httpAddr, "greeting", "hola") })
	for _, s := range rest {
		eventually(t, "read after losing the leader", func() error {
			v, err := get(s.cfg.httpAddr, "greeting")
			if err == nil && v != "hola" {
				err = fmt.Errorf("read %q", v)
			}
			return err
		})
	}
}

// A server started on an empty data directory without -bootstrap or -join
// is refused: it may be a member that lost its data, which must be removed
// and joined again rather than restarted.
func TestServe_RefusesAnEmptyDataDirectoryWithoutBootstrapOrJoin(t *testing.T) {
	s, err := startServer(serverConfig{
		id: "wiped", raftAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0", dataDir: t.TempDir(), logOutput: io.Discard,
	})
	if err == nil {
		s.close()
		t.Fatal("a server with an empty data directory started without -bootstrap or -join")
	}
	if !strings.Contains(err.Error(), "holds no raft state") {
		t.Fatalf("unexpected error: %v", err)
	}
}
