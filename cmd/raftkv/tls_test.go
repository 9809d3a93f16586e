package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/quorumkit/raft"
)

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// With -ca, -cert and -key, raft runs over mutual TLS with each peer bound
// to the ID its certificate names, and every route of the API needs a
// client certificate from the same CA.

func TestTLS_ClusterFormsAndReplicates(t *testing.T) {
	ca := newTestCA(t, "raftkv-test-ca")
	n1 := startNode(t, "n1", nodeOpts{bootstrap: true, ca: ca})
	eventually(t, "first write", func() error { return n1.want(http.StatusNoContent, "PUT", "/kv/a", "1") })
	n2 := startNode(t, "n2", nodeOpts{join: n1.cfg.httpAddr, ca: ca})
	n3 := startNode(t, "n3", nodeOpts{join: n1.cfg.httpAddr, ca: ca})
	for _, n := range []*node{n1, n2, n3} {
		if !strings.HasPrefix(n.base, "https://") {
			t.Fatalf("%s serves %s", n.cfg.id, n.base)
		}
	}
	// A write through a follower is redirected to the leader over https.
	eventually(t, "write through n3", func() error { return n3.want(http.StatusNoContent, "PUT", "/kv/b", "2") })
	for _, n := range []*node{n1, n2, n3} {
		waitStale(t, n, "b", "2")
		// (eventually: a loaded machine may see an election meanwhile)
		eventually(t, "linearizable read through "+n.cfg.id, func() error {
			code, body, err := n.do("GET", "/kv/b", "")
			if err == nil && (code != http.StatusOK || body != "2") {
				err = fmt.Errorf("%d %q", code, body)
			}
			return err
		})
	}
	resp, err := n3.c.Do(mustRequest(t, "PUT", n3.base+"/kv/c", "3"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The redirect itself names https. It is asked of whichever node
	// follows at the time (a loaded machine may see an election).
	eventually(t, "a redirect from a follower", func() error {
		follower := n3
		for _, n := range []*node{n1, n2, n3} {
			if !n.leads() {
				follower = n
			}
		}
		noFollow := *follower.c
		noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := noFollow.Do(mustRequest(t, "PUT", follower.base+"/kv/c", "3"))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, "https://") {
			return fmt.Errorf("redirect from %s: %d Location %q", follower.cfg.id, resp.StatusCode, loc)
		}
		return nil
	})
}

func mustRequest(t *testing.T, method, url, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// A client without a certificate, or with one from another CA, is
// refused by the TLS handshake on every route, reads and metrics included.
func TestTLS_ClientsWithoutACertificateOfTheCAAreRefused(t *testing.T) {
	ca, other := newTestCA(t, "raftkv-test-ca"), newTestCA(t, "another-ca")
	n1 := startNode(t, "n1", nodeOpts{bootstrap: true, ca: ca})
	eventually(t, "first write", func() error { return n1.want(http.StatusNoContent, "PUT", "/kv/a", "1") })
	for name, c := range map[string]*http.Client{
		"no certificate":           httpsClient(t, ca, nil, ""),
		"another CA's certificate": httpsClient(t, ca, other, "n2"),
	} {
		for _, path := range []string{"/kv/a", "/status", "/members", "/metrics"} {
			resp, err := c.Get(n1.base + path)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("%s: GET %s answered %s", name, path, resp.Status)
			}
		}
	}
	// Plain HTTP gets no answer either.
	resp, err := client.Get("http://" + n1.cfg.httpAddr + "/kv/a")
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("plain HTTP to a TLS server answered %s", resp.Status)
		}
	}
}

// A server whose certificate comes from another CA cannot join: the
// handshake of its join request fails, and so would its raft traffic.
func TestTLS_JoinWithAnotherCAIsRefused(t *testing.T) {
	ca, other := newTestCA(t, "raftkv-test-ca"), newTestCA(t, "another-ca")
	n1 := startNode(t, "n1", nodeOpts{bootstrap: true, ca: ca})
	eventually(t, "first write", func() error { return n1.want(http.StatusNoContent, "PUT", "/kv/a", "1") })
	// A server with a certificate of the other CA, which trusts both CAs:
	// it accepts the cluster's certificates, so its own is the problem.
	certFile, keyFile := other.issue(t, "intruder")
	both := filepath.Join(t.TempDir(), "both.crt")
	if err := os.WriteFile(both, append(readFile(t, ca.caFile), readFile(t, other.caFile)...), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := startServer(serverConfig{
		id: "intruder", raftAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0", dataDir: t.TempDir(),
		join: n1.cfg.httpAddr, caFile: both, certFile: certFile, keyFile: keyFile, logOutput: discard{},
	})
	if err == nil {
		t.Fatal("a server with another CA's certificate joined")
	}
	if !strings.Contains(err.Error(), "tls") {
		t.Fatalf("join failed, but not at the TLS handshake: %v", err)
	}
	if c := members(t, n1); len(c) != 1 {
		t.Fatalf("members after the refused join: %v", c)
	}
}

// discard is an io.Writer that drops everything.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// A certificate must name the server's ID, since peers bind raft
// connections to it.
func TestTLS_CertificateMustNameTheServerID(t *testing.T) {
	ca := newTestCA(t, "raftkv-test-ca")
	certFile, keyFile := ca.issue(t, "someone-else")
	_, err := startServer(serverConfig{
		id: "n1", raftAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0", dataDir: t.TempDir(), bootstrap: true,
		caFile: ca.caFile, certFile: certFile, keyFile: keyFile, logOutput: discard{},
	})
	if err == nil || !strings.Contains(err.Error(), "must name this server's ID") {
		t.Fatalf("started with a certificate for another ID: %v", err)
	}
	_, err = startServer(serverConfig{
		id: "n1", raftAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0", dataDir: t.TempDir(), bootstrap: true,
		caFile: ca.caFile, certFile: certFile, logOutput: discard{},
	})
	if err == nil || !strings.Contains(err.Error(), "all three") {
		t.Fatalf("started with -ca and -cert but no -key: %v", err)
	}
}

// members returns the IDs GET /members lists on n, and their suffrage.
func members(t testing.TB, n *node) map[string]string {
	t.Helper()
	return membersWhen(t, n, func(map[string]string) bool { return true })
}

// membersWhen is members once ok accepts the list (or the last list
// after the tests' patience ran out).
func membersWhen(t testing.TB, n *node, ok func(map[string]string) bool) map[string]string {
	t.Helper()
	got := map[string]string{}
	deadline := time.Now().Add(settle)
	eventually(t, "GET /members", func() error {
		var ans membersAnswer
		code, body, err := n.do("GET", "/members", "")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("%d %s", code, body)
		}
		if err := jsonUnmarshal(body, &ans); err != nil {
			return err
		}
		clear(got)
		for _, m := range ans.Members {
			got[m.ID] = m.Suffrage
		}
		if !ok(got) && time.Now().Before(deadline) {
			return fmt.Errorf("members %v", got)
		}
		return nil
	})
	return got
}

// A raft connection speaks only as the server ID its certificate names:
// a holder of a client certificate of the CA who claims to be a member is
// cut off, and its claim never reaches raft.
func TestTLS_RaftPeersAreBoundToTheirCertificateID(t *testing.T) {
	ca := newTestCA(t, "raftkv-test-ca")
	n1 := startNode(t, "n1", nodeOpts{bootstrap: true, ca: ca})
	eventually(t, "first write", func() error { return n1.want(http.StatusNoContent, "PUT", "/kv/a", "1") })
	term := n1.raft.CurrentTerm()

	certFile, keyFile := ca.issue(t, "client")
	setup, err := loadTLS(ca.caFile, certFile, keyFile, "client")
	if err != nil {
		t.Fatal(err)
	}
	trans, err := raft.NewTLSTransportWithConfig("127.0.0.1:0", nil, setup.raftConfig(), &raft.NetworkTransportConfig{
		MaxPool: 1, Timeout: settle / 2, Logger: hclog.NewNullLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer trans.Close()
	vote := func(claim string) error {
		req := &raft.RequestVoteRequest{
			RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(claim), Addr: []byte(trans.LocalAddr())},
			Term:      term + 100, LastLogIndex: 1 << 40, LastLogTerm: term + 99,
		}
		var resp raft.RequestVoteResponse
		return trans.RequestVote(raft.ServerID("n1"), n1.trans.LocalAddr(), req, &resp)
	}
	if err := vote("n1"); err == nil {
		t.Fatal("a vote request claiming another server's ID was answered")
	}
	// Under its own name it is answered (and refused: it is no member).
	if err := vote("client"); err != nil {
		t.Fatalf("a vote request under the certificate's own ID: %v", err)
	}
}
