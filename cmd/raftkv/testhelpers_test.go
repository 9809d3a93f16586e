package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"github.com/quorumkit/raft/internal/testpki"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// testCA is a certificate authority made for one test (testpki), which
// issues certificates into a temporary directory.
type testCA struct {
	pki    *testpki.CA
	dir    string
	caFile string
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	ca := &testCA{pki: testpki.NewCA(t, name), dir: t.TempDir()}
	ca.caFile = ca.pki.WriteCA(t, ca.dir)
	return ca
}

// issue makes a key and a certificate for cn, valid for 127.0.0.1 as
// client and server, and returns the two files.
func (ca *testCA) issue(t testing.TB, cn string) (certFile, keyFile string) {
	t.Helper()
	return ca.pki.Issue(t, cn).Write(t, ca.dir, cn)
}

// httpsClient is a client that trusts ca and presents the certificate of
// cn issued by issuer (no certificate when issuer is nil).
func httpsClient(t testing.TB, ca, issuer *testCA, cn string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(ca.caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if issuer != nil {
		certFile, keyFile := issuer.issue(t, cn)
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	tr := &http.Transport{TLSClientConfig: cfg}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: settle / 2}
}

// node is a server under test and the client that talks to it.
type node struct {
	*server
	c    *http.Client
	base string // scheme://host:port
}

// nodeOpts are what a test may change in a server's configuration.
type nodeOpts struct {
	bootstrap bool
	join      string // HTTP address
	secret    string
	ca        *testCA // TLS when set
	log       io.Writer
	dataDir   string
}

// startNode starts a server on 127.0.0.1 with short timeouts.
func startNode(t testing.TB, id string, o nodeOpts) *node {
	t.Helper()
	n, err := tryStartNode(t, id, o)
	if err != nil {
		t.Fatalf("starting %s: %v", id, err)
	}
	return n
}

func tryStartNode(t testing.TB, id string, o nodeOpts) (*node, error) {
	t.Helper()
	if o.log == nil {
		o.log = io.Discard
	}
	if o.dataDir == "" {
		o.dataDir = t.TempDir()
	}
	cfg := serverConfig{
		id: id, raftAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0", dataDir: o.dataDir,
		bootstrap: o.bootstrap, join: o.join, heartbeat: 300 * time.Millisecond, logOutput: o.log,
		secret: o.secret,
	}
	c, scheme := client, "http"
	if o.ca != nil {
		cfg.caFile = o.ca.caFile
		cfg.certFile, cfg.keyFile = o.ca.issue(t, id)
		c, scheme = httpsClient(t, o.ca, o.ca, "client-"+id), "https"
	}
	s, err := startServer(cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(s.close)
	return &node{server: s, c: c, base: scheme + "://" + s.cfg.httpAddr}, nil
}

// do sends a request and returns the status and body; redirects are
// followed by the client.
func (n *node) do(method, path, body string, header ...string) (int, string, error) {
	req, err := http.NewRequest(method, n.base+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := n.c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// want checks a request's answer, for use inside eventually.
func (n *node) want(code int, method, path, body string, header ...string) error {
	got, ans, err := n.do(method, path, body, header...)
	if err != nil {
		return err
	}
	if got != code {
		return fmt.Errorf("%s %s: %d %s, want %d", method, path, got, ans, code)
	}
	return nil
}

// leaderOf waits until one of nodes leads and returns it.
func leaderOf(t testing.TB, nodes ...*node) *node {
	t.Helper()
	var l *node
	eventually(t, "a leader", func() error {
		for _, n := range nodes {
			if n.leads() {
				l = n
				return nil
			}
		}
		return fmt.Errorf("no leader among %d nodes", len(nodes))
	})
	return l
}

// waitStale waits until n's own copy of key holds value.
func waitStale(t testing.TB, n *node, key, value string) {
	t.Helper()
	eventually(t, n.cfg.id+" applies "+key, func() error {
		if v, _ := n.kv.get(key); v != value {
			return fmt.Errorf("%s=%q", key, v)
		}
		return nil
	})
}
