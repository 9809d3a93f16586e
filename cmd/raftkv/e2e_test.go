package main

// An end-to-end test of raftkv as its users run it: three `raftkv serve`
// processes run on 127.0.0.1 (the test binary as raftkv, see
// raftkvCommand), with TLS and without. Clients without credentials are
// refused; then concurrent clients (the client package, cmd/raftkv/client)
// write, read and compare-and-set while the test SIGKILLs the leader and
// restarts it, SIGTERMs the next leader and restarts it, and removes a
// member and adds it back. Every operation's call and return are recorded
// and the history is checked for linearizability with porcupine; at the
// end every node must hold the final value of every key. Processes,
// helpers and the history live in e2e_cluster_test.go and
// e2e_history_test.go.
//
// Every wait is for a condition (a process printing its addresses, a node
// saying it leads, writes being acknowledged, a node holding a marker),
// bounded by e2eWait.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	kvclient "github.com/quorumkit/raft/cmd/raftkv/client"
	"github.com/quorumkit/raft/internal/testpki"
)

const (
	// e2eClients is the number of concurrent clients.
	e2eClients = 4
	// e2eProgress is how many writes must be acknowledged between two
	// steps of the scenario: the cluster serves again.
	e2eProgress = 50
)

// e2eKeys are the keys the clients work on: few, so that they collide.
var e2eKeys = []string{"k0", "k1", "k2"}

func TestE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three raftkv processes")
	}
	t.Run("plain", func(t *testing.T) {
		testE2E(t, clusterOpts{secret: "e2e-secret"})
	})
	t.Run("tls", func(t *testing.T) {
		testE2E(t, clusterOpts{tls: true})
	})
}

func testE2E(t *testing.T, opts clusterOpts) {
	began := time.Now()
	c := startCluster(t, opts)
	t.Logf("cluster up after %v: %v", time.Since(began).Round(time.Millisecond), c.httpAddrs())
	t.Run("refusals", func(t *testing.T) {
		defer c.use(t)()
		c.checkRefusals()
	})

	seed := uint64(time.Now().UnixNano())
	t.Logf("workload seed %d", seed)
	h := newE2EHistory()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range e2eClients {
		kc := c.newClient(kvclient.Config{AtMostOnce: true, Timeout: 5 * time.Second})
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			e2eWorkload(h, kc, i, rng, stop)
		}()
	}
	stopClients := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	t.Cleanup(stopClients)

	c.progress(h, "writes before any fault")
	leader := c.waitLeader()
	t.Logf("SIGKILL the leader %s", leader.id)
	c.signal(leader, syscall.SIGKILL)
	c.progress(h, "writes after the leader was killed")
	c.start(leader)
	c.waitCaughtUp(leader, "after-sigkill")
	c.progress(h, "writes after the killed leader came back")

	leader = c.waitLeader()
	t.Logf("SIGTERM the leader %s", leader.id)
	if err := c.signal(leader, syscall.SIGTERM); err != nil {
		t.Errorf("%s did not exit cleanly on SIGTERM: %v\n%s", leader.id, err, c.logTail(leader))
	}
	c.progress(h, "writes after the leader was stopped")
	c.start(leader)
	c.waitCaughtUp(leader, "after-sigterm")
	c.progress(h, "writes after the stopped leader came back")

	t.Run("remove and re-add a member", func(t *testing.T) {
		defer c.use(t)()
		c.removeAndReAdd(h)
	})

	stopClients()
	c.checkFinalValues(h)
	recorded, unknown, failed, lastFail := h.counts()
	t.Logf("%d operations recorded (%d writes with an unknown outcome), %d failed and left out (last: %v); scenario took %v",
		recorded, unknown, failed, lastFail, time.Since(began).Round(time.Millisecond))
	checkStart := time.Now()
	if err := h.check(os.TempDir(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("linearizability check took %v", time.Since(checkStart).Round(time.Millisecond))
}

// use makes the cluster's helpers report to t (a subtest) until the
// returned function restores the previous test.
func (c *e2eCluster) use(t *testing.T) (restore func()) {
	prev := c.t
	c.t = t
	return func() { c.t = prev }
}

// progress waits until e2eProgress more writes are acknowledged.
func (c *e2eCluster) progress(h *e2eHistory, what string) {
	c.t.Helper()
	want := h.acked() + e2eProgress
	c.waitFor(what, func() error {
		if n := h.acked(); n < want {
			return fmt.Errorf("%d writes acknowledged, want %d", n, want)
		}
		return nil
	})
}

// e2eWorkload runs random operations on e2eKeys until stop is closed. A
// CAS expects the value the client last saw, so that many succeed.
func e2eWorkload(h *e2eHistory, kc *kvclient.Client, id int, rng *rand.Rand, stop <-chan struct{}) {
	seen := map[string]string{} // the last value seen per key; "" for absent
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		default:
		}
		key := e2eKeys[rng.IntN(len(e2eKeys))]
		value := fmt.Sprintf("c%d-%d", id, n)
		var in e2eInput
		switch r := rng.IntN(10); {
		case r < 4:
			in = e2eInput{Op: e2eGet, Key: key}
		case r < 7:
			in = e2eInput{Op: e2ePut, Key: key, Value: value}
		case r < 9:
			in = e2eInput{Op: e2eCAS, Key: key, Value: value, Expect: seen[key]}
		default:
			in = e2eInput{Op: e2eDelete, Key: key}
		}
		out := h.run(context.Background(), kc, id, in)
		switch {
		case out.Unknown:
		case in.Op == e2eGet:
			seen[key] = out.Value
		case in.Op == e2ePut, in.Op == e2eCAS && out.OK:
			seen[key] = in.Value
		case in.Op == e2eDelete:
			seen[key] = ""
		}
	}
}

// checkRefusals checks that the cluster refuses who it should: with TLS, a
// client without a certificate from the cluster's CA; without, a
// membership change without the secret.
func (c *e2eCluster) checkRefusals() {
	t := c.t
	ctx := context.Background()
	if c.opts.tls {
		for name, cfg := range map[string]*tls.Config{
			"a client without a certificate": {RootCAs: c.clientTLS.RootCAs},
			"a client with a certificate of another CA": {
				RootCAs:      c.clientTLS.RootCAs,
				Certificates: []tls.Certificate{testpki.NewCA(t, "another CA").Issue(t, "intruder").TLS(t)},
			},
		} {
			kc, err := kvclient.New(kvclient.Config{Nodes: c.httpAddrs(), TLS: cfg, Timeout: e2eWait})
			if err != nil {
				t.Fatal(err)
			}
			defer kc.Close()
			if _, err := kc.Get(ctx, "k0", kvclient.Stale); err == nil || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s read: %v; want a refused handshake", name, err)
			}
			// The client may count the refusal as an unknown outcome (see
			// cmd/raftkv/client/call.go); that nothing was applied is
			// checked below, on the membership.
			if err := kc.AddMember(ctx, "intruder", "127.0.0.1:1", "127.0.0.1:2", true); err == nil || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s joining: %v; want a refused handshake", name, err)
			}
		}
		plain := &http.Client{Timeout: e2eWait}
		if resp, err := plain.Get("http://" + c.nodes[0].httpAddr + "/kv/k0"); err == nil {
			resp.Body.Close()
			if resp.StatusCode < 400 {
				t.Errorf("a plain HTTP request to a TLS node answered %s", resp.Status)
			}
		}
	} else {
		for _, secret := range []string{"", "not-the-secret"} {
			kc, err := kvclient.New(kvclient.Config{Nodes: c.httpAddrs(), Secret: secret, Timeout: e2eWait})
			if err != nil {
				t.Fatal(err)
			}
			defer kc.Close()
			err = kc.AddMember(ctx, "intruder", "127.0.0.1:1", "127.0.0.1:2", true)
			if !errors.Is(err, kvclient.ErrUnauthorized) || errors.Is(err, kvclient.ErrUnknownOutcome) {
				t.Errorf("joining with secret %q: %v; want ErrUnauthorized", secret, err)
			}
			if err := kc.RemoveMember(ctx, c.nodes[2].id); !errors.Is(err, kvclient.ErrUnauthorized) {
				t.Errorf("removing a member with secret %q: %v; want ErrUnauthorized", secret, err)
			}
		}
		// The old route, as the servers of before the members routes
		// used it.
		for _, node := range c.nodes {
			resp, err := http.Post("http://"+node.httpAddr+"/join", "application/json",
				strings.NewReader(`{"id":"intruder","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`))
			if err != nil {
				t.Fatalf("POST /join: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
				t.Errorf("POST /join without the secret to %s answered %s; want 401 or 403", node.id, resp.Status)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("POST /join refused with Content-Type %q; want JSON", ct)
			}
		}
	}
	m, err := c.newClient(kvclient.Config{}).Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, mb := range m.Members {
		if mb.ID == "intruder" {
			t.Fatalf("an unauthorised join went through: %+v", m)
		}
	}
}

// removeAndReAdd removes a follower, lets the cluster write without it,
// adds it back as a voter and waits for it to catch up.
func (c *e2eCluster) removeAndReAdd(h *e2eHistory) {
	t := c.t
	ctx := context.Background()
	f := c.followers(c.waitLeader())[0]
	kc := c.newClient(kvclient.Config{Timeout: e2eWait})
	memberIDs := func() ([]string, error) {
		m, err := kc.Members(ctx)
		if err != nil {
			return nil, err
		}
		var ids []string
		for _, mb := range m.Members {
			if mb.Suffrage == "voter" {
				ids = append(ids, mb.ID)
			}
		}
		return ids, nil
	}
	t.Logf("removing %s", f.id)
	if err := kc.RemoveMember(ctx, f.id); err != nil {
		t.Fatal(err)
	}
	c.waitFor(f.id+" leaving the membership", func() error {
		ids, err := memberIDs()
		if err == nil && slices.Contains(ids, f.id) {
			err = fmt.Errorf("voters %v", ids)
		}
		return err
	})
	c.progress(h, "writes without "+f.id)
	t.Logf("adding %s back", f.id)
	if err := kc.AddMember(ctx, f.id, f.raftAddr, f.httpAddr, true); err != nil {
		t.Fatal(err)
	}
	c.waitFor(f.id+" back among the voters", func() error {
		ids, err := memberIDs()
		if err == nil && !slices.Contains(ids, f.id) {
			err = fmt.Errorf("voters %v", ids)
		}
		return err
	})
	c.waitCaughtUp(f, "after-re-add")
	c.progress(h, "writes after "+f.id+" came back")
}

// checkFinalValues reads every key linearizably (recording the reads in
// the history) and waits until every node's own copy holds that value:
// every acknowledged write has reached every node.
func (c *e2eCluster) checkFinalValues(h *e2eHistory) {
	c.t.Helper()
	kc := c.newClient(kvclient.Config{AtMostOnce: true, Timeout: 5 * time.Second})
	for _, key := range e2eKeys {
		c.waitFor("every node holding the final value of "+key, func() error {
			out := h.run(context.Background(), kc, e2eClients, e2eInput{Op: e2eGet, Key: key})
			if out.Unknown {
				return errors.New("the linearizable read failed")
			}
			for _, p := range c.nodes {
				v, ok, err := c.staleGet(p, key)
				if err != nil {
					return err
				}
				if ok != out.Exists || v != out.Value {
					return fmt.Errorf("%s holds %q (present %v), the cluster %q (present %v)", p.id, v, ok, out.Value, out.Exists)
				}
			}
			return nil
		})
	}
}
