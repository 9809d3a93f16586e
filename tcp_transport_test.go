package raft

import (
	"net"
	"strings"
	"testing"
	"time"
)

// These tests use real sockets on 127.0.0.1, so they run outside synctest
// bubbles; every wait is bounded by the transports' timeouts.

func TestTCPTransport_AddressChecks(t *testing.T) {
	_, err := NewTCPTransport("0.0.0.0:0", nil, 1, time.Second, nil)
	if err == nil || err.Error() != "local bind address is not advertisable" {
		t.Fatalf("unspecified bind address without advertise: %v", err)
	}
	_, err = NewTCPTransport("127.0.0.1:0", netPipeAddr("10.0.0.1:1"), 1, time.Second, nil)
	if err == nil || err.Error() != "local address is not a TCP address" {
		t.Fatalf("non-TCP advertise address: %v", err)
	}
	_, err = NewTCPTransport("127.0.0.1:0", &net.TCPAddr{IP: net.IPv4zero, Port: 1}, 1, time.Second, nil)
	if err == nil || err.Error() != "local bind address is not advertisable" {
		t.Fatalf("unspecified advertise address: %v", err)
	}

	// An advertised address replaces the listener's in LocalAddr, and the
	// listener is usable: the checks above closed theirs.
	adv := &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 7000}
	trans, err := NewTCPTransport("127.0.0.1:0", adv, 1, time.Second, nil)
	if err != nil {
		t.Fatalf("NewTCPTransport: %v", err)
	}
	defer trans.Close()
	if got := trans.LocalAddr(); got != "192.0.2.1:7000" {
		t.Fatalf("LocalAddr = %q, want the advertised address", got)
	}
}

// netLoopbackTimeout is the Timeout of the transports that the loopback
// tests run over real sockets: generous, so that a loaded machine only
// makes them slower, never makes an RPC miss its deadline.
const netLoopbackTimeout = 30 * time.Second

// newTCPPair starts two transports on loopback, the first one answering
// with netEchoAnswer.
func newTCPPair(t *testing.T) (server, client *NetworkTransport) {
	t.Helper()
	server, err := NewTCPTransportWithConfig("127.0.0.1:0", nil, &NetworkTransportConfig{MaxPool: 2, Timeout: netLoopbackTimeout})
	if err != nil {
		t.Fatal(err)
	}
	client, err = NewTCPTransportWithLogger("127.0.0.1:0", nil, 2, netLoopbackTimeout, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			select {
			case rpc := <-server.Consumer():
				if rpc.Reader != nil {
					buf := make([]byte, 64<<10)
					for {
						if _, err := rpc.Reader.Read(buf); err != nil {
							break
						}
					}
				}
				netEchoAnswer(rpc)
			case <-server.shutdownCh:
				return
			}
		}
	}()
	return server, client
}

// Every RPC type and a pipeline work over real TCP.
func TestTCPTransport_Loopback(t *testing.T) {
	server, client := newTCPPair(t)
	target := server.LocalAddr()
	if !strings.HasPrefix(string(target), "127.0.0.1:") {
		t.Fatalf("LocalAddr = %q", target)
	}
	for _, tc := range netRoundTripCases {
		if _, _, _, err := tc.send(client, target); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	var resp InstallSnapshotResponse
	if err := client.InstallSnapshot("s", target, &InstallSnapshotRequest{Term: 2, Size: 8 << 20}, &resp, newNetSnapshotSource(t, 8<<20, 4)); err != nil || !resp.Success {
		t.Fatalf("8 MiB InstallSnapshot: %v %+v", err, resp)
	}
	p, err := client.AppendEntriesPipeline("s", target)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if _, err := p.AppendEntries(&AppendEntriesRequest{PrevLogEntry: uint64(i), LeaderCommitIndex: 1}, &AppendEntriesResponse{}); err != nil {
			t.Fatal(err)
		}
		f := <-p.Consumer()
		if f.Error() != nil || f.Request().PrevLogEntry != uint64(i) {
			t.Fatalf("future %d: %v", i, f.Error())
		}
	}
	p.Close()
	client.Close()
	server.Close()
	client.routines.Wait()
	server.routines.Wait()
}

// Mutual TLS over real TCP.
func TestTLSTransport_Loopback(t *testing.T) {
	ca := newNetTestCA(t, "cluster CA")
	server, err := NewTLSTransport("127.0.0.1:0", nil, ca.config(t, "s1", "127.0.0.1"), 2, netLoopbackTimeout, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			select {
			case rpc := <-server.Consumer():
				netEchoAnswer(rpc)
			case <-server.shutdownCh:
				return
			}
		}
	}()
	client, err := NewTLSTransport("127.0.0.1:0", nil, ca.config(t, "s2", "127.0.0.1"), 2, netLoopbackTimeout, nil)
	if err != nil {
		t.Fatal(err)
	}
	var resp AppendEntriesResponse
	for i := 0; i < 3; i++ {
		if err := client.AppendEntries("s1", server.LocalAddr(), &AppendEntriesRequest{Term: 3, LeaderCommitIndex: 1}, &resp); err != nil || !resp.Success {
			t.Fatalf("AppendEntries over TLS: %v %+v", err, resp)
		}
	}
	client.Close()
	server.Close()
	client.routines.Wait()
	server.routines.Wait()
}
