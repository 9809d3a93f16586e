package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/quorumkit/raft/internal/testpki"
)

// The client subcommands against a stand-in for a cluster: one httptest
// node that leads and applies, one that redirects to it, speaking the
// HTTP API of cmd/raftkv/server.go.

type cliFake struct {
	mu      sync.Mutex
	kv      map[string]string
	members []map[string]any
}

func (f *cliFake) handler(secret string) http.Handler {
	mux := http.NewServeMux()
	jsonErr := func(w http.ResponseWriter, status int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": msg})
	}
	mux.HandleFunc("GET /kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		v, ok := f.kv[r.PathValue("key")]
		if !ok {
			jsonErr(w, http.StatusNotFound, "key not found")
			return
		}
		io.WriteString(w, v)
	})
	mux.HandleFunc("PUT /kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		key := r.PathValue("key")
		if exp, ok := r.Header["If-Match"]; ok {
			// As the server (kvapi.go): `""` expects an absent key or an
			// empty value.
			want := exp[0]
			if want == `""` {
				want = ""
			}
			if f.kv[key] != want {
				jsonErr(w, http.StatusPreconditionFailed, "the current value differs")
				return
			}
		}
		f.kv[key] = string(body)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.kv, r.PathValue("key"))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /members", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"leader_id": "n1", "members": f.members})
	})
	mux.HandleFunc("POST /members", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+secret {
			jsonErr(w, http.StatusUnauthorized, "membership changes need the secret")
			return
		}
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		suffrage := "voter"
		if m["voter"] == false {
			suffrage = "nonvoter"
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.members = append(f.members, map[string]any{"id": m["id"], "raft_addr": m["raft_addr"], "http_addr": m["http_addr"], "suffrage": suffrage})
		json.NewEncoder(w).Encode(map[string]any{"id": m["id"]})
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"id":"n1","state":"Leader","leader_id":"n1","stats":{"term":"2","commit_index":"7","applied_index":"7"}}`)
	})
	return mux
}

// startCLIFake starts the leader and a follower that redirects to it, and
// returns their addresses, follower first.
func startCLIFake(t *testing.T, secret string, tlsCfg *tls.Config) []string {
	f := &cliFake{kv: map[string]string{}, members: []map[string]any{{"id": "n1", "raft_addr": "127.0.0.1:7001", "http_addr": "x", "suffrage": "voter"}}}
	start := func(h http.Handler) *httptest.Server {
		s := httptest.NewUnstartedServer(h)
		if tlsCfg != nil {
			s.TLS = tlsCfg
			s.StartTLS()
		} else {
			s.Start()
		}
		t.Cleanup(s.Close)
		return s
	}
	leader := start(f.handler(secret))
	follower := start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, leader.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	return []string{follower.Listener.Addr().String(), leader.Listener.Addr().String()}
}

// cli runs a client subcommand and returns its exit code and outputs.
func cli(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := runClient(args[0], args[1:], &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestCLI_WritesReadsAndExitCodes(t *testing.T) {
	nodes := "-nodes=" + strings.Join(startCLIFake(t, "", nil), ",")
	steps := []struct {
		args     []string
		code     int
		stdout   string
		inStderr string
	}{
		{[]string{"get", nodes, "greeting"}, exitNotFound, "", "key not found"},
		{[]string{"put", nodes, "greeting", "hello"}, exitOK, "", ""},
		{[]string{"get", "greeting", nodes, "-consistency", "stale"}, exitOK, "hello\n", ""},
		{[]string{"cas", nodes, "greeting", "bonjour", "hola"}, exitMismatch, "", "differs"},
		{[]string{"cas", nodes, "-json", "greeting", "hello", "hola"}, exitOK, `{"ok":true}` + "\n", ""},
		{[]string{"get", nodes, "-json", "greeting"}, exitOK, `{"key":"greeting","value":"hola"}` + "\n", ""},
		{[]string{"cas", nodes, "-json", "new", "", "first"}, exitOK, `{"ok":true}` + "\n", ""},
		{[]string{"del", nodes, "greeting"}, exitOK, "", ""},
		{[]string{"get", nodes, "-json", "greeting"}, exitNotFound, `{"error":"get \"greeting\": key not found","not_found":true}` + "\n", ""},
		{[]string{"put", nodes, "--", "-dash", "-1"}, exitOK, "", ""},
		{[]string{"get", nodes, "--", "-dash"}, exitOK, "-1\n", ""},
		{[]string{"get", nodes, "-consistency", "eventual", "k"}, exitFailed, "", "unknown consistency"},
		{[]string{"put", nodes, "onlykey"}, exitUsage, "", "want KEY VALUE"},
		{[]string{"get", nodes, "-nosuchflag", "k"}, exitUsage, "", "flag provided but not defined"},
		{[]string{"get", nodes, "-ca", "ca.crt", "k"}, exitUsage, "", "go together"},
	}
	for _, s := range steps {
		code, stdout, stderr := cli(s.args...)
		if code != s.code || stdout != s.stdout || !strings.Contains(stderr, s.inStderr) {
			t.Fatalf("raftkv %q: exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr with %q",
				s.args, code, stdout, stderr, s.code, s.stdout, s.inStderr)
		}
	}
}

func TestCLI_MembersAndStatus(t *testing.T) {
	addrs := startCLIFake(t, "s3cret", nil)
	nodes := "-nodes=" + strings.Join(addrs, ",")
	if code, _, stderr := cli("members", nodes, "add", "n2", "127.0.0.1:7002", "127.0.0.1:8002"); code != exitFailed || !strings.Contains(stderr, "need -secret") {
		t.Fatalf("members add without the secret: exit %d, %q", code, stderr)
	}
	if code, _, stderr := cli("members", nodes, "-secret", "s3cret", "add", "n2", "127.0.0.1:7002", "127.0.0.1:8002", "-nonvoter"); code != exitOK {
		t.Fatalf("members add: exit %d, %q", code, stderr)
	}
	code, stdout, _ := cli("members", nodes)
	if code != exitOK || !strings.Contains(stdout, "n1  voter     127.0.0.1:7001  x               leader") ||
		!strings.Contains(stdout, "n2  nonvoter  127.0.0.1:7002  127.0.0.1:8002") {
		t.Fatalf("members: exit %d:\n%s", code, stdout)
	}
	code, stdout, _ = cli("members", nodes, "-json")
	var m struct {
		LeaderID string `json:"leader_id"`
		Members  []struct{ ID, Suffrage string }
	}
	if err := json.Unmarshal([]byte(stdout), &m); code != exitOK || err != nil || m.LeaderID != "n1" || len(m.Members) != 2 || m.Members[1].Suffrage != "nonvoter" {
		t.Fatalf("members -json: exit %d, %v: %s", code, err, stdout)
	}

	// status asks each node; one that does not answer fails the command.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	code, stdout, _ = cli("status", "-nodes", addrs[1]+","+dead)
	if code != exitFailed || !strings.Contains(stdout, addrs[1]+"  n1  Leader  n1      2     7       7") || !strings.Contains(stdout, dead+"  error: ") {
		t.Fatalf("status: exit %d:\n%s", code, stdout)
	}
}

func TestCLI_TLSFlags(t *testing.T) {
	ca := testpki.NewCA(t, "raftkv CLI test CA")
	addrs := startCLIFake(t, "", &tls.Config{
		Certificates: []tls.Certificate{ca.Issue(t, "n1").TLS(t)},
		ClientCAs:    ca.Pool(),
		ClientAuth:   tls.RequireAndVerifyClientCert,
	})
	dir := t.TempDir()
	caFile := ca.WriteCA(t, dir)
	certFile, keyFile := ca.Issue(t, "operator").Write(t, dir, "operator")
	nodes := "-nodes=" + strings.Join(addrs, ",")
	tlsFlags := []string{"-ca", caFile, "-cert", certFile, "-key", keyFile}
	if code, _, stderr := cli(append([]string{"put", nodes, "k", "v"}, tlsFlags...)...); code != exitOK {
		t.Fatalf("put over TLS: exit %d, %q", code, stderr)
	}
	if code, stdout, stderr := cli(append([]string{"get", nodes, "k"}, tlsFlags...)...); code != exitOK || stdout != "v\n" {
		t.Fatalf("get over TLS: exit %d, %q, %q", code, stdout, stderr)
	}
	// Without the flags the client speaks plain HTTP to an HTTPS node.
	if code, _, _ := cli("get", nodes, "-timeout", "200ms", "k"); code == exitOK {
		t.Fatal("a get without TLS flags succeeded against HTTPS nodes")
	}
}
