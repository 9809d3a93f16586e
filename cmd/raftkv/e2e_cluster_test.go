package main

// The processes of the end-to-end test (e2e_test.go): three `raftkv serve`
// processes on 127.0.0.1, each killed by the test's cleanup at the latest.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	kvclient "github.com/quorumkit/raft/cmd/raftkv/client"
	"github.com/quorumkit/raft/internal/testpki"
)

// e2eWait bounds every wait of the end-to-end test for a condition. It is
// generous so that a loaded machine only makes the test slower; reaching
// it is a failure, never a measurement.
const e2eWait = 30 * time.Second

// raftkvCommand returns a command that runs raftkv with args as a process
// of its own: the test binary, which TestMain (process_test.go) turns into
// raftkv's main() when RAFTKV_TEST_RUN_MAIN is set, so that no build is
// needed. Signals reach main() as they reach a built raftkv.
func raftkvCommand(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "RAFTKV_TEST_RUN_MAIN=1")
	return cmd
}

// clusterOpts is how a test cluster is run: TLS on or off, and the shared
// secret for membership changes ("" for none).
type clusterOpts struct {
	tls    bool
	secret string
}

// e2eCluster is three raftkv processes and what the test needs to talk to
// them.
type e2eCluster struct {
	t     *testing.T
	dir   string
	opts  clusterOpts
	nodes []*e2eNode

	// With TLS: the CA's file, and the client certificate of the test's
	// clients (any certificate from the CA may change membership).
	caFile    string
	clientTLS *tls.Config
	// status asks single nodes for their view.
	status *kvclient.Client
	// local holds a client per node for stale reads of its own copy.
	local map[*e2eNode]*kvclient.Client
}

// e2eNode is one raftkv server process. Its addresses are fixed once it first
// started, so that it comes back where the others expect it.
type e2eNode struct {
	id                 string
	raftAddr, httpAddr string // "127.0.0.1:0" until the first start
	dataDir            string
	certFile, keyFile  string
	logFile            string

	cmd *exec.Cmd
	// done is closed by the goroutine that waits for the process once it
	// has exited; exitErr is its result, readable after that.
	done    chan struct{}
	exitErr error
}

// running reports whether the process is up.
func (p *e2eNode) running() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// startCluster starts a three-node cluster: n1 bootstraps it, n2 and n3
// join through n1. It returns once all three are up and a leader is known.
func startCluster(t *testing.T, opts clusterOpts) *e2eCluster {
	t.Helper()
	c := &e2eCluster{t: t, dir: t.TempDir(), opts: opts, local: map[*e2eNode]*kvclient.Client{}}
	if opts.tls {
		ca := testpki.NewCA(t, "raftkv e2e CA")
		c.caFile = ca.WriteCA(t, c.dir)
		c.clientTLS = &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{ca.Issue(t, "e2e-client").TLS(t)}}
		for i := 1; i <= 3; i++ {
			id := fmt.Sprintf("n%d", i)
			p := &e2eNode{id: id}
			p.certFile, p.keyFile = ca.Issue(t, id).Write(t, c.dir, id)
			c.nodes = append(c.nodes, p)
		}
	} else {
		for i := 1; i <= 3; i++ {
			c.nodes = append(c.nodes, &e2eNode{id: fmt.Sprintf("n%d", i)})
		}
	}
	for _, p := range c.nodes {
		p.raftAddr, p.httpAddr = "127.0.0.1:0", "127.0.0.1:0"
		p.dataDir = filepath.Join(c.dir, p.id)
		p.logFile = filepath.Join(c.dir, p.id+".log")
	}
	// Status names the node it asks; the client's own list is unused.
	c.status = c.newClient(kvclient.Config{Nodes: []string{"127.0.0.1:1"}, Timeout: 2 * time.Second})
	c.start(c.nodes[0], "-bootstrap")
	c.waitLeader()
	for _, p := range c.nodes[1:] {
		c.start(p, "-join", c.nodes[0].httpAddr)
	}
	c.waitLeader()
	return c
}

// newClient returns a client of the cluster with the test's credentials;
// cfg.Nodes defaults to every node.
func (c *e2eCluster) newClient(cfg kvclient.Config) *kvclient.Client {
	if cfg.Nodes == nil {
		cfg.Nodes = c.httpAddrs()
	}
	cfg.TLS, cfg.Secret = c.clientTLS, c.opts.secret
	kc, err := kvclient.New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(kc.Close)
	return kc
}

func (c *e2eCluster) httpAddrs() []string {
	var out []string
	for _, p := range c.nodes {
		out = append(out, p.httpAddr)
	}
	return out
}

// addrLine is what `raftkv serve` prints once it serves.
var addrLine = regexp.MustCompile(`raft on (\S+?),? HTTP on (\S+)`)

// start runs p with the given extra flags and returns once it printed its
// addresses. The test's cleanup kills it if it still runs.
func (c *e2eCluster) start(p *e2eNode, extra ...string) {
	t := c.t
	t.Helper()
	args := []string{"serve", "-id", p.id, "-raft", p.raftAddr, "-http", p.httpAddr, "-data", p.dataDir, "-heartbeat", "300ms"}
	if c.opts.tls {
		args = append(args, "-ca", c.caFile, "-cert", p.certFile, "-key", p.keyFile)
	}
	if c.opts.secret != "" {
		args = append(args, "-secret", c.opts.secret)
	}
	args = append(args, extra...)
	logf, err := os.OpenFile(p.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== raftkv %s\n", strings.Join(args, " "))
	cmd := raftkvCommand(args...)
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", p.id, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	done := p.done
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	addrs := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := addrLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addrs <- m[1:]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stdout)
		p.exitErr = cmd.Wait()
		close(done)
	}()
	select {
	case a := <-addrs:
		p.raftAddr, p.httpAddr = a[0], a[1]
	case <-done:
		t.Fatalf("%s exited before serving: %v\n%s", p.id, p.exitErr, c.logTail(p))
	case <-time.After(e2eWait):
		t.Fatalf("%s did not print its addresses within %v\n%s", p.id, e2eWait, c.logTail(p))
	}
}

// signal sends sig to p and, for SIGKILL and SIGTERM, waits for it to
// exit; it returns how the process ended.
func (c *e2eCluster) signal(p *e2eNode, sig syscall.Signal) error {
	c.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("signalling %s: %v", p.id, err)
	}
	select {
	case <-p.done:
		return p.exitErr
	case <-time.After(e2eWait):
		c.t.Fatalf("%s still runs %v after %v\n%s", p.id, e2eWait, sig, c.logTail(p))
		return nil
	}
}

// logTail returns the end of p's log, for failure messages.
func (c *e2eCluster) logTail(p *e2eNode) string {
	b, _ := os.ReadFile(p.logFile)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return fmt.Sprintf("--- %s's log (end):\n%s", p.id, b)
}

// logTails returns the end of every node's log.
func (c *e2eCluster) logTails() string {
	var b strings.Builder
	for _, p := range c.nodes {
		b.WriteString(c.logTail(p))
	}
	return b.String()
}

// waitFor polls cond until it returns nil, failing the test after e2eWait
// with cond's last error.
func (c *e2eCluster) waitFor(what string, cond func() error) {
	c.t.Helper()
	deadline := time.Now().Add(e2eWait)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: not within %v: %v\n%s", what, e2eWait, err, c.logTails())
		}
		poll := time.NewTimer(20 * time.Millisecond)
		<-poll.C
	}
}

// waitLeader returns the running node that says it leads, once exactly
// one does.
func (c *e2eCluster) waitLeader() *e2eNode {
	c.t.Helper()
	var leader *e2eNode
	c.waitFor("a single leader", func() error {
		leader = nil
		var states []string
		for _, p := range c.nodes {
			if !p.running() {
				continue
			}
			st, err := c.status.Status(context.Background(), p.httpAddr)
			if err != nil {
				states = append(states, p.id+": "+err.Error())
				continue
			}
			states = append(states, p.id+": "+st.State)
			if st.State == "Leader" {
				if leader != nil {
					return fmt.Errorf("two leaders: %v", states)
				}
				leader = p
			}
		}
		if leader == nil {
			return fmt.Errorf("no leader: %v", states)
		}
		return nil
	})
	return leader
}

// followers returns the running nodes other than leader.
func (c *e2eCluster) followers(leader *e2eNode) []*e2eNode {
	var out []*e2eNode
	for _, p := range c.nodes {
		if p != leader && p.running() {
			out = append(out, p)
		}
	}
	return out
}

// staleGet reads key from p's own copy.
func (c *e2eCluster) staleGet(p *e2eNode, key string) (string, bool, error) {
	kc := c.local[p]
	if kc == nil {
		kc = c.newClient(kvclient.Config{Nodes: []string{p.httpAddr}, Timeout: 2 * time.Second})
		c.local[p] = kc
	}
	v, err := kc.Get(context.Background(), key, kvclient.Stale)
	if errors.Is(err, kvclient.ErrNotFound) {
		return "", false, nil
	}
	return string(v), err == nil, err
}

// waitCaughtUp writes a fresh marker through the cluster and waits until p
// holds it: p has applied everything committed before.
func (c *e2eCluster) waitCaughtUp(p *e2eNode, marker string) {
	c.t.Helper()
	kc := c.newClient(kvclient.Config{})
	c.waitFor("writing marker "+marker, func() error {
		return kc.Put(context.Background(), "e2e-marker", []byte(marker))
	})
	c.waitFor(p.id+" catching up with marker "+marker, func() error {
		v, _, err := c.staleGet(p, "e2e-marker")
		if err == nil && v != marker {
			err = fmt.Errorf("holds %q", v)
		}
		return err
	})
}
