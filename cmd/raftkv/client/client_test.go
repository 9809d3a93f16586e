package client

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/quorumkit/raft/internal/testpki"
)

// newTestClient returns a client of f with short pauses, so that retries
// cost little; cfg's other fields are kept.
func newTestClient(t *testing.T, f *fakeCluster, cfg Config) *Client {
	t.Helper()
	if cfg.Nodes == nil {
		cfg.Nodes = f.addrs()
	}
	cfg.MinBackoff, cfg.MaxBackoff = time.Millisecond, 5*time.Millisecond
	if cfg.Timeout == 0 {
		cfg.Timeout = 20 * time.Second
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestClient_FollowsTheRedirectAndRemembersTheLeader(t *testing.T) {
	f := newFakeCluster(t, 3, nil)
	f.setLeader(2)
	c := newTestClient(t, f, Config{})
	ctx := context.Background()
	if err := c.Put(ctx, "k", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, "k", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	want := []string{"n0 PUT /kv/k", "n2 PUT /kv/k", "n2 PUT /kv/k"}
	if got := f.requests(); !slices.Equal(got, want) {
		t.Fatalf("requests %q, want %q", got, want)
	}
	if got, want := c.Leader(), f.nodes[2].URL; got != want {
		t.Fatalf("leader %q, want %q", got, want)
	}
	v, err := c.Get(ctx, "k", "")
	if err != nil || string(v) != "v2" {
		t.Fatalf("get: %q, %v; want v2", v, err)
	}
}

func TestClient_WaitsOutAClusterWithoutLeader(t *testing.T) {
	f := newFakeCluster(t, 3, nil)
	f.setLeader(-1)
	var refusals atomic.Int32
	f.setHook(func(node int, w http.ResponseWriter, r *http.Request) bool {
		if refusals.Add(1) == 4 {
			f.setLeader(1)
		}
		return false
	})
	c := newTestClient(t, f, Config{AtMostOnce: true})
	if err := c.Put(context.Background(), "k", []byte("v")); err != nil {
		t.Fatalf("put after an election: %v", err)
	}
	if v, _ := f.value("k"); v != "v" {
		t.Fatalf("value %q, want v", v)
	}
}

func TestClient_AClusterWithoutLeaderEndsInADefiniteFailure(t *testing.T) {
	f := newFakeCluster(t, 2, nil)
	c := newTestClient(t, f, Config{Timeout: 50 * time.Millisecond})
	// Every node answers at once that it knows no leader, so the deadline
	// always passes between attempts, never during one (which would leave
	// the outcome unknown).
	c.http.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{
			StatusCode: http.StatusServiceUnavailable,
			Header:     http.Header{"Retry-After": {"1"}, "Content-Type": {"application/json"}},
			Body:       io.NopCloser(strings.NewReader(`{"error":"no leader known"}`)),
			Request:    r,
		}, nil
	})
	err := c.Put(context.Background(), "k", []byte("v"))
	if err == nil || errors.Is(err, ErrUnknownOutcome) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("put without a leader: %v; want a deadline error, not an unknown outcome", err)
	}
	if !strings.Contains(err.Error(), "no leader known") {
		t.Fatalf("the error does not say why the last attempt failed: %v", err)
	}
}

// leadershipLost makes node from answer its first write with a 503 after
// handing leadership to node to, as a leader that lost its leadership
// mid-request does: the write may have been applied.
func leadershipLost(f *fakeCluster, from, to int) {
	var once atomic.Bool
	f.setHook(func(node int, w http.ResponseWriter, r *http.Request) bool {
		if node != from || r.Method == http.MethodGet || !once.CompareAndSwap(false, true) {
			return false
		}
		f.setLeader(to)
		jsonError(w, http.StatusServiceUnavailable, "leadership lost while committing log")
		return true
	})
}

func TestClient_LeaderChangeMidCall(t *testing.T) {
	ctx := context.Background()
	t.Run("put is sent again to the new leader", func(t *testing.T) {
		f := newFakeCluster(t, 3, nil)
		leadershipLost(f, 0, 1)
		c := newTestClient(t, f, Config{})
		if err := c.Put(ctx, "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
		if v, _ := f.value("k"); v != "v" {
			t.Fatalf("value %q, want v", v)
		}
		if c.Leader() != f.nodes[1].URL {
			t.Fatalf("leader %q, want node 1", c.Leader())
		}
	})
	t.Run("at most once: put reports an unknown outcome", func(t *testing.T) {
		f := newFakeCluster(t, 3, nil)
		leadershipLost(f, 0, 1)
		c := newTestClient(t, f, Config{AtMostOnce: true})
		if err := c.Put(ctx, "k", []byte("v")); !errors.Is(err, ErrUnknownOutcome) {
			t.Fatalf("put: %v; want ErrUnknownOutcome", err)
		}
		if n := len(f.requests()); n != 1 {
			t.Fatalf("%d requests sent, want 1", n)
		}
	})
	t.Run("cas is never sent twice", func(t *testing.T) {
		f := newFakeCluster(t, 3, nil)
		leadershipLost(f, 0, 1)
		c := newTestClient(t, f, Config{})
		err := c.CAS(ctx, "k", nil, []byte("v"))
		if !errors.Is(err, ErrUnknownOutcome) || errors.Is(err, ErrCASMismatch) {
			t.Fatalf("cas: %v; want ErrUnknownOutcome only", err)
		}
		if n := len(f.requests()); n != 1 {
			t.Fatalf("%d requests sent, want 1", n)
		}
	})
	t.Run("a redirect is not an unknown outcome", func(t *testing.T) {
		f := newFakeCluster(t, 3, nil)
		// Node 1 leads; node 0 redirects there. Between the redirect and
		// the attempt, leadership moves on to node 2.
		f.setLeader(1)
		var once atomic.Bool
		f.setHook(func(node int, w http.ResponseWriter, r *http.Request) bool {
			if node == 1 && once.CompareAndSwap(false, true) {
				f.setLeader(2)
			}
			return false
		})
		c := newTestClient(t, f, Config{AtMostOnce: true})
		if err := c.CAS(ctx, "k", nil, []byte("v")); err != nil {
			t.Fatalf("cas: %v", err)
		}
		want := []string{"n0 PUT /kv/k", "n1 PUT /kv/k", "n2 PUT /kv/k"}
		if got := f.requests(); !slices.Equal(got, want) {
			t.Fatalf("requests %q, want %q", got, want)
		}
	})
}

func TestClient_ADroppedConnectionAfterTheRequestIsAnUnknownOutcome(t *testing.T) {
	f := newFakeCluster(t, 2, nil)
	f.setHook(func(node int, w http.ResponseWriter, r *http.Request) bool {
		if node != 0 {
			return false
		}
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
		return true
	})
	c := newTestClient(t, f, Config{AtMostOnce: true})
	err := c.Delete(context.Background(), "k")
	if !errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf("delete: %v; want ErrUnknownOutcome", err)
	}
}

func TestClient_AnUnreachableNodeIsSkippedAndNothingIsUnknown(t *testing.T) {
	f := newFakeCluster(t, 2, nil)
	f.setLeader(1)
	// A node address nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	c := newTestClient(t, f, Config{Nodes: []string{dead, f.addrs()[1]}, AtMostOnce: true})
	if err := c.CAS(context.Background(), "k", nil, []byte("v")); err != nil {
		t.Fatalf("cas past an unreachable node: %v", err)
	}

	only := newTestClient(t, f, Config{Nodes: []string{dead}, Timeout: 50 * time.Millisecond})
	err = only.Put(context.Background(), "k", []byte("w"))
	if err == nil || errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf("put to an unreachable cluster: %v; want a definite failure", err)
	}
}

func TestClient_CASAndNotFound(t *testing.T) {
	f := newFakeCluster(t, 1, nil)
	c := newTestClient(t, f, Config{})
	ctx := context.Background()
	if _, err := c.Get(ctx, "k", Linearizable); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get of an absent key: %v; want ErrNotFound", err)
	}
	if err := c.CAS(ctx, "k", nil, []byte("one")); err != nil {
		t.Fatalf("cas from absent: %v", err)
	}
	if err := c.CAS(ctx, "k", nil, []byte("two")); !errors.Is(err, ErrCASMismatch) || errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf("cas from absent on a present key: %v; want ErrCASMismatch", err)
	}
	if err := c.CAS(ctx, "k", []byte("zero"), []byte("two")); !errors.Is(err, ErrCASMismatch) {
		t.Fatalf("cas with a wrong expected value: %v; want ErrCASMismatch", err)
	}
	if err := c.CAS(ctx, "k", []byte("one"), []byte("two")); err != nil {
		t.Fatalf("cas: %v", err)
	}
	// The API's form of "absent" is If-Match: "" (an empty header could
	// be dropped on the way, turning the CAS into a put); the value `""`
	// itself cannot be expected, and is refused without being sent.
	f.mu.Lock()
	sent := slices.Clone(f.mu.ifMatch)
	f.mu.Unlock()
	if want := []string{`""`, `""`, "zero", "one"}; !slices.Equal(sent, want) {
		t.Fatalf("If-Match headers sent: %q, want %q", sent, want)
	}
	if err := c.CAS(ctx, "quoted", []byte(`""`), []byte("v")); err == nil || errors.Is(err, ErrCASMismatch) || errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf(`cas expecting the value "": %v; want a refusal`, err)
	}
	if _, ok := f.value("quoted"); ok {
		t.Fatal(`a cas expecting the value "" wrote to an absent key`)
	}
	if err := c.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "k", Stale); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v; want ErrNotFound", err)
	}
}

func TestClient_StaleReadsStayOnTheNodeAsked(t *testing.T) {
	f := newFakeCluster(t, 2, nil)
	c := newTestClient(t, f, Config{})
	if err := c.Put(context.Background(), "a/b c", []byte("v")); err != nil {
		t.Fatal(err)
	}
	follower := newTestClient(t, f, Config{Nodes: f.addrs()[1:]})
	v, err := follower.Get(context.Background(), "a/b c", Stale)
	if err != nil || string(v) != "v" {
		t.Fatalf("stale get: %q, %v", v, err)
	}
	got := f.requests()
	if want := "n1 GET /kv/a%2Fb%20c?consistency=stale&stale=true"; got[len(got)-1] != want {
		t.Fatalf("requests %q, want the last to be %q", got, want)
	}
	if _, err := follower.Get(context.Background(), "k", "eventual"); err == nil {
		t.Fatal("an unknown consistency was accepted")
	}
}

func TestClient_RefusesBadInputWithoutSendingIt(t *testing.T) {
	f := newFakeCluster(t, 1, nil)
	c := newTestClient(t, f, Config{})
	ctx := context.Background()
	for name, err := range map[string]error{
		"empty key":      c.Put(ctx, "", []byte("v")),
		"long key":       c.Delete(ctx, strings.Repeat("k", MaxKeyLen+1)),
		"large value":    c.Put(ctx, "k", make([]byte, MaxValueLen+1)),
		"newline in cas": c.CAS(ctx, "k", []byte("a\nb"), []byte("v")),
		"no member id":   c.RemoveMember(ctx, ""),
	} {
		if err == nil || errors.Is(err, ErrUnknownOutcome) {
			t.Errorf("%s: %v; want a definite error", name, err)
		}
	}
	if n := len(f.requests()); n != 0 {
		t.Fatalf("%d requests sent", n)
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("a client without nodes was made")
	}
}

func TestClient_Membership(t *testing.T) {
	f := newFakeCluster(t, 2, nil)
	f.secret = "s3cret"
	f.setLeader(1)
	ctx := context.Background()
	anon := newTestClient(t, f, Config{})
	if err := anon.AddMember(ctx, "n9", "127.0.0.1:7009", "127.0.0.1:8009", true); !errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf("add member without the secret: %v; want ErrUnauthorized", err)
	}
	c := newTestClient(t, f, Config{Secret: "s3cret"})
	if err := c.AddMember(ctx, "n9", "127.0.0.1:7009", "127.0.0.1:8009", false); err != nil {
		t.Fatal(err)
	}
	m, err := c.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.LeaderID != "n1" || len(m.Members) != 3 || m.Members[2] != (Member{ID: "n9", RaftAddr: "127.0.0.1:7009", HTTPAddr: "127.0.0.1:8009", Suffrage: "nonvoter"}) {
		t.Fatalf("members %+v", m)
	}
	if err := c.RemoveMember(ctx, "n9"); err != nil {
		t.Fatal(err)
	}
	if m, _ := c.Members(ctx); len(m.Members) != 2 {
		t.Fatalf("members after the removal: %+v", m)
	}
	st, err := c.Status(ctx, f.addrs()[1])
	if err != nil || st.State != "Leader" || st.ID != "n1" || st.Stats["term"] != "3" {
		t.Fatalf("status: %+v, %v", st, err)
	}
}

func TestClient_TLS(t *testing.T) {
	ca := testpki.NewCA(t, "raftkv test CA")
	server := ca.Issue(t, "n0")
	f := newFakeCluster(t, 2, &tls.Config{
		Certificates: []tls.Certificate{server.TLS(t)},
		ClientCAs:    ca.Pool(),
		ClientAuth:   tls.RequireAndVerifyClientCert,
	})
	f.setLeader(1)
	ctx := context.Background()
	c := newTestClient(t, f, Config{TLS: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{ca.Issue(t, "client").TLS(t)}}})
	if err := c.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("put over TLS: %v", err)
	}
	if !strings.HasPrefix(c.Leader(), "https://") {
		t.Fatalf("leader %q is not an https URL", c.Leader())
	}

	// Without a client certificate, every node refuses the handshake: the
	// call fails without waiting for its deadline. Whether the client can
	// tell that nothing was applied depends on how the refusal reaches it:
	// a TLS alert or a failed write it can, a reset while it awaits the
	// answer it cannot (TLS 1.3 completes the client's side of the
	// handshake first).
	anon := newTestClient(t, f, Config{TLS: &tls.Config{RootCAs: ca.Pool()}, Timeout: time.Minute})
	err := anon.Put(ctx, "k", []byte("w"))
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("put without a client certificate: %v; want a refusal", err)
	}
	// A server the client's CA did not sign is refused too.
	other := testpki.NewCA(t, "another CA")
	stranger := newTestClient(t, f, Config{TLS: &tls.Config{RootCAs: other.Pool()}, Timeout: time.Minute})
	if _, err := stranger.Get(ctx, "k", Stale); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("get from a server of another CA: %v; want a refusal", err)
	}
	if v, _ := f.value("k"); v != "v" {
		t.Fatalf("value %q, want v", v)
	}
}

func TestParseRetryAfter(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 0, "1": time.Second, " 2 ": 2 * time.Second, "-1": 0, "soon": 0} {
		if got := parseRetryAfter(http.Header{"Retry-After": {in}}); got != want {
			t.Errorf("Retry-After %q: %v, want %v", in, got, want)
		}
	}
}

// roundTripFunc is a transport scripted by a test.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A request whose writing failed part way never reached a handler whole,
// so it was not applied, even though its headers went out. This is what a
// TLS 1.3 client without a certificate sees when the node refuses the
// handshake while the request is being written ("broken pipe"): the
// handshake completes on the client's side first.
func TestClient_ARequestCutShortWhileWritingIsNotAnUnknownOutcome(t *testing.T) {
	f := newFakeCluster(t, 2, nil)
	c := newTestClient(t, f, Config{AtMostOnce: true})
	real := c.http.Transport
	var cut atomic.Bool
	c.http.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if !cut.CompareAndSwap(false, true) {
			return real.RoundTrip(r)
		}
		trace := httptrace.ContextClientTrace(r.Context())
		err := &net.OpError{Op: "write", Net: "tcp", Err: syscall.EPIPE}
		if trace.WroteHeaders != nil {
			trace.WroteHeaders()
		}
		if trace.WroteRequest != nil {
			trace.WroteRequest(httptrace.WroteRequestInfo{Err: err})
		}
		return nil, err
	})
	if err := c.CAS(context.Background(), "k", nil, []byte("v")); err != nil {
		t.Fatalf("cas after an attempt cut short while writing: %v; want it sent again and applied", err)
	}
	if v, _ := f.value("k"); v != "v" {
		t.Fatalf("value %q, want v", v)
	}
}

func TestClient_PauseGrowsWithJitterAndHonoursRetryAfter(t *testing.T) {
	c, err := New(Config{Nodes: []string{"127.0.0.1:1"}, MinBackoff: 10 * time.Millisecond, MaxBackoff: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	backoff := c.cfg.MinBackoff
	for i := 0; i < 12; i++ {
		wait, next := c.pause(backoff, 0)
		if wait < backoff/2 || wait > backoff {
			t.Fatalf("backoff %v: waits %v, want within [%v, %v]", backoff, wait, backoff/2, backoff)
		}
		if want := min(2*backoff, c.cfg.MaxBackoff); next != want {
			t.Fatalf("backoff %v: next %v, want %v", backoff, next, want)
		}
		backoff = next
	}
	if wait, _ := c.pause(10*time.Millisecond, time.Second); wait != time.Second {
		t.Fatalf("Retry-After 1s: waits %v", wait)
	}
	if wait, _ := c.pause(10*time.Millisecond, time.Minute); wait != c.cfg.MaxBackoff {
		t.Fatalf("Retry-After 1m: waits %v, want MaxBackoff %v", wait, c.cfg.MaxBackoff)
	}
}
