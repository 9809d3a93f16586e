package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// Membership changes need the secret (plain mode) or a certificate of the
// CA (TLS); everything else is refused with 401 or 403 and a JSON error.

func TestMembers_UnauthorisedChangesAreRefused(t *testing.T) {
	open := startNode(t, "n1", nodeOpts{bootstrap: true})
	guarded := startNode(t, "g1", nodeOpts{bootstrap: true, secret: "right"})
	leaderOf(t, open)
	leaderOf(t, guarded)
	add := `{"id":"x","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`
	for _, tc := range []struct {
		name   string
		n      *node
		method string
		path   string
		header []string
		want   int
	}{
		{"no -secret: add", open, "POST", "/members", nil, http.StatusForbidden},
		{"no -secret: join", open, "POST", "/join", []string{"Authorization", "Bearer anything"}, http.StatusForbidden},
		{"no -secret: remove", open, "DELETE", "/members/n1", nil, http.StatusForbidden},
		{"no secret", guarded, "POST", "/members", nil, http.StatusUnauthorized},
		{"wrong secret", guarded, "POST", "/join", []string{"Authorization", "Bearer wrong"}, http.StatusUnauthorized},
		{"secret without Bearer", guarded, "POST", "/members", []string{"Authorization", "right"}, http.StatusUnauthorized},
		{"wrong secret: remove", guarded, "DELETE", "/members/g1", []string{"Authorization", "Bearer righ"}, http.StatusUnauthorized},
	} {
		code, body, err := tc.n.do(tc.method, tc.path, add, tc.header...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var e apiError
		if code != tc.want || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
			t.Errorf("%s: %d %q, want %d with a JSON error", tc.name, code, body, tc.want)
		}
	}
	// A server started without the secret cannot join.
	_, err := tryStartNode(t, "n2", nodeOpts{join: guarded.cfg.httpAddr})
	if err == nil {
		t.Fatal("a server without the secret joined")
	}
	_, err = tryStartNode(t, "n2", nodeOpts{join: guarded.cfg.httpAddr, secret: "wrong"})
	if err == nil {
		t.Fatal("a server with a wrong secret joined")
	}
	for _, n := range []*node{open, guarded} {
		if m := members(t, n); len(m) != 1 {
			t.Fatalf("%s's members after refused changes: %v", n.cfg.id, m)
		}
	}
}

// A member is removed (its HTTP address forgotten), then added back, as a
// nonvoter and then as a voter, and catches up.
func TestMembers_RemoveAndReAdd(t *testing.T) {
	const secret = "s3"
	auth := []string{"Authorization", "Bearer " + secret}
	n1 := startNode(t, "n1", nodeOpts{bootstrap: true, secret: secret})
	eventually(t, "first write", func() error { return n1.want(http.StatusNoContent, "PUT", "/kv/a", "1") })
	n2 := startNode(t, "n2", nodeOpts{join: n1.cfg.httpAddr, secret: secret})
	n3 := startNode(t, "n3", nodeOpts{join: n1.cfg.httpAddr, secret: secret})
	if m := membersWhen(t, n2, func(m map[string]string) bool { return !(len(m) != 3 || m["n3"] != "voter") }); len(m) != 3 || m["n3"] != "voter" {
		t.Fatalf("members: %v", m)
	}

	// Remove n3 through a follower: the request is sent to the leader.
	via := n2
	if n2.leads() {
		via = n1
	}
	eventually(t, "remove n3", func() error { return via.want(http.StatusNoContent, "DELETE", "/members/n3", "", auth...) })
	if m := membersWhen(t, leaderOf(t, n1, n2), func(m map[string]string) bool { return !(len(m) != 2 || m["n3"] != "") }); len(m) != 2 || m["n3"] != "" {
		t.Fatalf("members after removing n3: %v", m)
	}
	waitStale(t, n1, httpKeyPrefix+"n3", "")

	// Add it back as a nonvoter, with the same data, and write meanwhile.
	eventually(t, "write without n3", func() error { return n1.want(http.StatusNoContent, "PUT", "/kv/a", "2") })
	body := `{"id":"n3","raft_addr":"` + string(n3.trans.LocalAddr()) + `","http_addr":"` + n3.cfg.httpAddr + `","voter":false}`
	eventually(t, "add n3 as a nonvoter", func() error { return n1.want(http.StatusOK, "POST", "/members", body, auth...) })
	if m := membersWhen(t, n1, func(m map[string]string) bool { return !(m["n3"] != "nonvoter") }); m["n3"] != "nonvoter" {
		t.Fatalf("members after adding n3 as a nonvoter: %v", m)
	}
	waitStale(t, n3, "a", "2")
	waitStale(t, n1, httpKeyPrefix+"n3", n3.cfg.httpAddr)
	// Promote it.
	body = `{"id":"n3","raft_addr":"` + string(n3.trans.LocalAddr()) + `","http_addr":"` + n3.cfg.httpAddr + `"}`
	eventually(t, "promote n3", func() error { return n1.want(http.StatusOK, "POST", "/members", body, auth...) })
	if m := membersWhen(t, n3, func(m map[string]string) bool { return !(len(m) != 3 || m["n3"] != "voter") }); len(m) != 3 || m["n3"] != "voter" {
		t.Fatalf("members after promoting n3: %v", m)
	}

	// Removing the leader itself: it hands leadership over and the new
	// leader removes it.
	old := leaderOf(t, n1, n2, n3)
	eventually(t, "remove the leader", func() error {
		return old.want(http.StatusNoContent, "DELETE", "/members/"+old.cfg.id, "", auth...)
	})
	var rest []*node
	for _, n := range []*node{n1, n2, n3} {
		if n != old {
			rest = append(rest, n)
		}
	}
	if m := membersWhen(t, leaderOf(t, rest...), func(m map[string]string) bool { return !(len(m) != 2 || m[old.cfg.id] != "") }); len(m) != 2 || m[old.cfg.id] != "" {
		t.Fatalf("members after removing the old leader %s: %v", old.cfg.id, m)
	}
}

// Bad membership requests get a 4xx and change nothing.
func TestMembers_BadRequests(t *testing.T) {
	auth := []string{"Authorization", "Bearer k"}
	n := startNode(t, "n1", nodeOpts{bootstrap: true, secret: "k"})
	leaderOf(t, n)
	for _, tc := range []struct {
		body string
		want int
	}{
		{``, http.StatusBadRequest},
		{`{`, http.StatusBadRequest},
		{`[]`, http.StatusBadRequest},
		{`{"id":"x"}`, http.StatusBadRequest},
		{`{"id":"","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`, http.StatusBadRequest},
		{`{"id":"a/b","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`, http.StatusBadRequest},
		{`{"id":"x","raft_addr":"nohost","http_addr":"127.0.0.1:2"}`, http.StatusBadRequest},
		{`{"id":"x","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"} {}`, http.StatusBadRequest},
		{`{"id":"x","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2","voter":"yes"}`, http.StatusBadRequest},
		{`{"id":"` + strings.Repeat("a", 70000) + `"}`, http.StatusRequestEntityTooLarge},
	} {
		if err := n.want(tc.want, "POST", "/members", tc.body, auth...); err != nil {
			t.Errorf("%.60q: %v", tc.body, err)
		}
	}
	if err := n.want(http.StatusConflict, "DELETE", "/members/n1", "", auth...); err != nil {
		t.Errorf("removing the only voter: %v", err)
	}
	if m := members(t, n); len(m) != 1 {
		t.Fatalf("members: %v", m)
	}
}
