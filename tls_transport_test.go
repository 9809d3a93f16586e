package raft

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quorumkit/raft/internal/testpki"
)

// netTestCA issues certificates for the transport tests (internal/testpki).
type netTestCA struct{ *testpki.CA }

func newNetTestCA(t *testing.T, name string) *netTestCA {
	t.Helper()
	return &netTestCA{testpki.NewCA(t, name)}
}

// config returns a TLS configuration for a server called cn at ip, with a
// certificate from ca, trusting ca.
func (ca *netTestCA) config(t *testing.T, cn, ip string) *tls.Config {
	t.Helper()
	leaf := ca.IssueIP(t, cn, net.ParseIP(ip))
	return &tls.Config{
		Certificates: []tls.Certificate{leaf.TLS(t)},
		RootCAs:      ca.Pool(),
	}
}

// newNetTLSNode starts a transport at ip:1 that speaks mutual TLS with cfg.
func newNetTLSNode(t *testing.T, network *netPipeNetwork, ip string, cfg *tls.Config, edit func(*NetworkTransportConfig)) *netTestNode {
	t.Helper()
	return newNetTestNode(t, network, ip+":1", func(c *NetworkTransportConfig) {
		stream, err := NewTLSStreamLayer(c.Stream, cfg)
		if err != nil {
			t.Fatalf("NewTLSStreamLayer: %v", err)
		}
		c.Stream = stream
		if edit != nil {
			edit(c)
		}
	})
}

// Peers with certificates from the shared CA talk; every RPC type works
// over TLS.
func TestTLSTransport_MutualAuthAccepts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ca := newNetTestCA(t, "cluster CA")
		network := newNetPipeNetwork()
		server := newNetTLSNode(t, network, "10.0.0.1", ca.config(t, "s1", "10.0.0.1"), nil)
		server.serve(netEchoAnswer)
		client := newNetTLSNode(t, network, "10.0.0.2", ca.config(t, "s2", "10.0.0.2"), nil)
		for _, tc := range netRoundTripCases {
			if _, _, _, err := tc.send(client.NetworkTransport, server.addr); err != nil {
				t.Fatalf("%s over TLS: %v", tc.name, err)
			}
		}
		client.closeAndWait()
		server.closeAndWait()
	})
}

// A client whose certificate does not chain to the server's CA is refused
// in the handshake: the node never sees its request.
func TestTLSTransport_RefusesForeignClientCertificate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ca, foreign := newNetTestCA(t, "cluster CA"), newNetTestCA(t, "other CA")
		network := newNetPipeNetwork()
		server := newNetTLSNode(t, network, "10.0.0.1", ca.config(t, "s1", "10.0.0.1"), nil)
		seen := make(chan RPC, 1)
		server.serve(func(rpc RPC) { seen <- rpc; netEchoAnswer(rpc) })

		// The intruder trusts the cluster CA (so it accepts the server) but
		// holds a certificate from another CA.
		intruderCfg := foreign.config(t, "intruder", "10.6.6.6")
		intruderCfg.RootCAs = ca.Pool()
		intruder := newNetTLSNode(t, network, "10.6.6.6", intruderCfg, nil)
		var resp RequestVoteResponse
		if err := intruder.RequestVote("s1", server.addr, &RequestVoteRequest{Term: 1}, &resp); err == nil {
			t.Fatal("RPC with a foreign client certificate succeeded")
		}
		synctest.Wait()
		if len(seen) != 0 {
			t.Fatal("the node received a request from a refused client")
		}
		if got := server.log.count("TLS handshake failed"); got != 1 {
			t.Fatalf("want one handshake failure logged, log:\n%s", server.log)
		}

		// And a server with a foreign certificate is refused by the client.
		legit := newNetTLSNode(t, network, "10.0.0.2", ca.config(t, "s2", "10.0.0.2"), nil)
		if err := legit.RequestVote("x", intruder.addr, &RequestVoteRequest{Term: 1}, &resp); err == nil {
			t.Fatal("client accepted a server certificate from a foreign CA")
		}
		checkNetServed(t, legit, server.addr)
		intruder.closeAndWait()
		legit.closeAndWait()
		server.closeAndWait()
	})
}

// VerifyPeer sees the verified certificate and the remote address; it can
// refuse the client, or bind the connection to a ServerID that every
// request on it must then carry.
func TestTLSTransport_VerifyPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ca := newNetTestCA(t, "cluster CA")
		network := newNetPipeNetwork()
		type call struct {
			cn, remote string
		}
		calls := make(chan call, 10)
		server := newNetTLSNode(t, network, "10.0.0.1", ca.config(t, "s1", "10.0.0.1"), func(c *NetworkTransportConfig) {
			c.VerifyPeer = func(cert *x509.Certificate, remote net.Addr) (ServerID, error) {
				calls <- call{cert.Subject.CommonName, remote.String()}
				if cert.Subject.CommonName == "banned" {
					return "", errors.New("server banned")
				}
				return ServerID(cert.Subject.CommonName), nil
			}
		})
		server.serve(netEchoAnswer)
		client := newNetTLSNode(t, network, "10.0.0.2", ca.config(t, "s2", "10.0.0.2"), nil)

		// The header names the certificate's server: served.
		var resp RequestVoteResponse
		if err := client.RequestVote("s1", server.addr, &RequestVoteRequest{RPCHeader: netTestHeader("s2"), Term: 1}, &resp); err != nil {
			t.Fatalf("RPC from the bound server: %v", err)
		}
		if c := <-calls; c.cn != "s2" || !strings.HasPrefix(c.remote, "10.0.0.2:") {
			t.Fatalf("VerifyPeer called with %+v, want s2 from 10.0.0.2", c)
		}

		// The header names someone else: the connection is closed.
		if err := client.RequestVote("s1", server.addr, &RequestVoteRequest{RPCHeader: netTestHeader("s3"), Term: 1}, &resp); err == nil {
			t.Fatal("RPC naming another server than the certificate succeeded")
		}
		synctest.Wait()
		if got := server.log.count("request from another server than the certificate's"); got != 1 {
			t.Fatalf("want the mismatch logged once, log:\n%s", server.log)
		}

		// VerifyPeer refuses: nothing is served.
		banned := newNetTLSNode(t, network, "10.0.0.3", ca.config(t, "banned", "10.0.0.3"), nil)
		if err := banned.RequestVote("s1", server.addr, &RequestVoteRequest{RPCHeader: netTestHeader("banned"), Term: 1}, &resp); err == nil {
			t.Fatal("RPC from a refused peer succeeded")
		}
		synctest.Wait()
		if got := server.log.count("VerifyPeer refused the client"); got != 1 {
			t.Fatalf("want the refusal logged once, log:\n%s", server.log)
		}
		if err := client.RequestVote("s1", server.addr, &RequestVoteRequest{RPCHeader: netTestHeader("s2"), Term: 1}, &resp); err != nil {
			t.Fatalf("bound server no longer served: %v", err)
		}
		banned.closeAndWait()
		client.closeAndWait()
		server.closeAndWait()
	})
}

// With VerifyPeer set, a connection that is not TLS is refused.
func TestTLSTransport_VerifyPeerNeedsTLS(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := newNetTestNode(t, network, "10.0.0.1:1", func(c *NetworkTransportConfig) {
			c.VerifyPeer = func(*x509.Certificate, net.Addr) (ServerID, error) { return "", nil }
		})
		server.serve(netEchoAnswer)
		client := newNetTestNode(t, network, "10.0.0.2:1", nil)
		var resp RequestVoteResponse
		if err := client.RequestVote("s", server.addr, &RequestVoteRequest{Term: 1}, &resp); err == nil {
			t.Fatal("plain connection served despite VerifyPeer")
		}
		client.closeAndWait()
		server.closeAndWait()
	})
}

// A client that connects and never handshakes is dropped after
// FrameTimeout, and does not hold up anyone else meanwhile: the handshake
// runs on the connection's goroutine, not in Accept.
func TestTLSTransport_StalledHandshake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ca := newNetTestCA(t, "cluster CA")
		network := newNetPipeNetwork()
		server := newNetTLSNode(t, network, "10.0.0.1", ca.config(t, "s1", "10.0.0.1"), func(c *NetworkTransportConfig) {
			c.FrameTimeout = 5 * time.Second
		})
		server.serve(netEchoAnswer)
		client := newNetTLSNode(t, network, "10.0.0.2", ca.config(t, "s2", "10.0.0.2"), nil)

		start := time.Now()
		var stalled []*hostilePeer
		for i := 0; i < 3; i++ {
			stalled = append(stalled, dialHostile(t, network, "10.6.6.6", server.addr))
		}
		checkNetServed(t, client, server.addr)
		if time.Since(start) != 0 {
			t.Fatal("a legitimate peer waited behind stalled handshakes")
		}
		for _, h := range stalled {
			if elapsed := h.waitClosed(t, start); elapsed != 5*time.Second {
				t.Fatalf("stalled handshake dropped after %v, want FrameTimeout", elapsed)
			}
		}
		client.closeAndWait()
		server.closeAndWait()
	})
}

func TestTLSTransport_ConfigChecks(t *testing.T) {
	if _, err := NewTLSStreamLayer(nil, nil); err == nil {
		t.Error("nil config accepted")
	}
	if _, err := NewTLSStreamLayer(nil, &tls.Config{}); !errors.Is(err, errNoCertificate) {
		t.Errorf("config without certificate: %v", err)
	}
	if _, err := NewTLSTransport("127.0.0.1:0", nil, &tls.Config{}, 1, time.Second, nil); !errors.Is(err, errNoCertificate) {
		t.Errorf("NewTLSTransport without certificate: %v", err)
	}
}
