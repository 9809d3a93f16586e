package client

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeCluster emulates the HTTP API of a raftkv cluster (see the server in
// cmd/raftkv/server.go) with httptest servers that share one map: followers
// send writes and non-stale reads to the leader with a 307, a cluster with
// no leader answers 503 with Retry-After, the leader applies. Tests steer
// it through its fields and the hook.
type fakeCluster struct {
	nodes  []*httptest.Server
	secret string

	mu struct {
		sync.Mutex
		kv      map[string]string
		leader  int // index of the leader in nodes, or -1
		members []Member
		// log records every request as "n<i> METHOD /path?query".
		log []string
		// ifMatch records the If-Match headers of PUTs, as received.
		ifMatch []string
		// hook, when set, may answer a request before the fake does; it
		// returns whether it answered. It runs without mu held.
		hook func(node int, w http.ResponseWriter, r *http.Request) bool
	}
}

// newFakeCluster starts n nodes, node 0 leading. With tlsCfg, they serve
// HTTPS with it.
func newFakeCluster(t *testing.T, n int, tlsCfg *tls.Config) *fakeCluster {
	t.Helper()
	f := &fakeCluster{}
	f.mu.kv = map[string]string{}
	for i := 0; i < n; i++ {
		i := i
		s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { f.serve(i, w, r) }))
		if tlsCfg != nil {
			s.TLS = tlsCfg
			s.StartTLS()
		} else {
			s.Start()
		}
		t.Cleanup(s.Close)
		f.nodes = append(f.nodes, s)
		f.mu.members = append(f.mu.members, Member{ID: fmt.Sprintf("n%d", i), RaftAddr: "raft", HTTPAddr: s.Listener.Addr().String(), Suffrage: "voter"})
	}
	return f
}

// addrs returns the nodes' host:port addresses.
func (f *fakeCluster) addrs() []string {
	var out []string
	for _, s := range f.nodes {
		out = append(out, s.Listener.Addr().String())
	}
	return out
}

func (f *fakeCluster) setLeader(i int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.leader = i
}

func (f *fakeCluster) setHook(h func(node int, w http.ResponseWriter, r *http.Request) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.hook = h
}

func (f *fakeCluster) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.mu.log...)
}

func (f *fakeCluster) value(key string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.mu.kv[key]
	return v, ok
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func (f *fakeCluster) serve(i int, w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.mu.log = append(f.mu.log, fmt.Sprintf("n%d %s %s", i, r.Method, r.URL.RequestURI()))
	hook := f.mu.hook
	f.mu.Unlock()
	if hook != nil && hook(i, w, r) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	leaderOnly := r.URL.Path != "/status" && !(r.Method == http.MethodGet && r.URL.Query().Get("consistency") == "stale")
	if leaderOnly && f.mu.leader != i {
		if f.mu.leader < 0 {
			w.Header().Set("Retry-After", "1")
			jsonError(w, http.StatusServiceUnavailable, "no leader known")
			return
		}
		http.Redirect(w, r, f.nodes[f.mu.leader].URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
		return
	}
	switch {
	case r.URL.Path == "/status":
		state := "Follower"
		if f.mu.leader == i {
			state = "Leader"
		}
		json.NewEncoder(w).Encode(Status{ID: fmt.Sprintf("n%d", i), State: state, LeaderID: fmt.Sprintf("n%d", f.mu.leader), Stats: map[string]string{"term": "3"}})
	case strings.HasPrefix(r.URL.Path, "/kv/"):
		f.serveKV(w, r)
	case r.URL.Path == "/members" && r.Method == http.MethodGet:
		json.NewEncoder(w).Encode(Membership{LeaderID: fmt.Sprintf("n%d", f.mu.leader), Members: f.mu.members})
	case strings.HasPrefix(r.URL.Path, "/members"):
		if f.secret == "" || r.Header.Get("Authorization") != "Bearer "+f.secret {
			jsonError(w, http.StatusUnauthorized, "membership changes need the secret")
			return
		}
		f.serveMembers(w, r)
	default:
		jsonError(w, http.StatusNotFound, "no such route")
	}
}

// serveKV answers /kv/{key}; mu is held.
func (f *fakeCluster) serveKV(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimPrefix(r.URL.Path, "/kv/")
	switch r.Method {
	case http.MethodGet:
		v, ok := f.mu.kv[key]
		if !ok {
			jsonError(w, http.StatusNotFound, "key not found")
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		io.WriteString(w, v)
	case http.MethodPut:
		body, _ := io.ReadAll(r.Body)
		if expected, ok := r.Header["If-Match"]; ok {
			// As the server (cmd/raftkv/kvapi.go): `""` expects an absent
			// key or an empty value, any other value itself.
			f.mu.ifMatch = append(f.mu.ifMatch, expected...)
			want := expected[0]
			if want == `""` {
				want = ""
			}
			if f.mu.kv[key] != want {
				jsonError(w, http.StatusPreconditionFailed, "the current value differs")
				return
			}
		}
		f.mu.kv[key] = string(body)
		w.WriteHeader(http.StatusNoContent)
	case http.MethodDelete:
		delete(f.mu.kv, key)
		w.WriteHeader(http.StatusNoContent)
	default:
		jsonError(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}

// serveMembers answers POST /members and DELETE /members/{id}; mu is held.
func (f *fakeCluster) serveMembers(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/members":
		var req struct {
			ID       string `json:"id"`
			RaftAddr string `json:"raft_addr"`
			HTTPAddr string `json:"http_addr"`
			Voter    *bool  `json:"voter"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.ID == "" {
			jsonError(w, http.StatusBadRequest, "malformed member")
			return
		}
		suffrage := "voter"
		if req.Voter != nil && !*req.Voter {
			suffrage = "nonvoter"
		}
		f.mu.members = append(f.mu.members, Member{ID: req.ID, RaftAddr: req.RaftAddr, HTTPAddr: req.HTTPAddr, Suffrage: suffrage})
		json.NewEncoder(w).Encode(map[string]string{"id": req.ID})
	case r.Method == http.MethodDelete:
		id := strings.TrimPrefix(r.URL.Path, "/members/")
		var keep []Member
		for _, m := range f.mu.members {
			if m.ID != id {
				keep = append(keep, m)
			}
		}
		f.mu.members = keep
		w.WriteHeader(http.StatusNoContent)
	default:
		jsonError(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}
