package raft

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// The ReadIndex RPC on the network transport (net_read_index.go).

// The new messages have golden bytes of their own, and a type byte after
// every type hashicorp/raft knows; the existing golden files do not change
// (wire_golden_test.go).
func TestWire_ReadIndexGolden(t *testing.T) {
	req := &ReadIndexRequest{RPCHeader: RPCHeader{ProtocolVersion: 3, ID: []byte("n2"), Addr: []byte("10.0.0.2:8300")}, Term: 301}
	frame := encodeFrame(t, rpcReadIndex, req, false)
	if frame[0] != 5 {
		t.Fatalf("ReadIndex type byte %d, want 5", frame[0])
	}
	checkWireGolden(t, "read_index_request", frame)
	resp := &ReadIndexResponse{RPCHeader: RPCHeader{ProtocolVersion: 3, ID: []byte("n1"), Addr: []byte("10.0.0.1:8300")},
		Term: 301, ReadIndex: 70002, Success: true}
	checkWireGolden(t, "read_index_response", encodeResponseFrame(t, "", resp, false))

	var back ReadIndexRequest
	decodeFrameForTest(t, frame[1:], &back)
	if back.ProtocolVersion != 3 || !bytes.Equal(back.ID, req.ID) || !bytes.Equal(back.Addr, req.Addr) || back.Term != 301 {
		t.Fatalf("decoded %+v, want %+v", back, req)
	}

	// A request from a sender without the Term field (as this library
	// sent them before it had one) still decodes, with Term 0, which the
	// leader counts for nothing (follower_read.go).
	old, err := hex.DecodeString("0583a441646472ad31302e302e302e323a38333030a24944a26e32af50726f746f636f6c56657273696f6e03")
	if err != nil {
		t.Fatal(err)
	}
	var fromOld ReadIndexRequest
	decodeFrameForTest(t, old[1:], &fromOld)
	if !bytes.Equal(fromOld.ID, req.ID) || fromOld.Term != 0 {
		t.Fatalf("decoded %+v from a request without Term", fromOld)
	}
}

// referenceLikePeer listens at addr and does with every connection what a
// hashicorp/raft server does on a request type it does not know: it reads
// what arrived (into a buffer as large as the reference's), finds the
// type byte unknown and closes the connection without answering. accepted
// counts the connections; closing l stops it.
func referenceLikePeer(network *netPipeNetwork, addr string) (l *netPipeLayer, accepted *atomic.Int64) {
	l = network.listen(addr)
	accepted = &atomic.Int64{}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				b := make([]byte, 256<<10)
				_, _ = c.Read(b)
				_ = c.Close()
			}()
		}
	}()
	return l, accepted
}

// Against a peer that closes the connection on the request, the error says
// the RPC is unsupported, after one connection.
func TestNetTransport_ReadIndexUnsupportedByPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		ref, accepted := referenceLikePeer(network, "10.0.0.1:1")
		defer ref.Close()
		client := newNetTestNode(t, network, "10.0.0.2:1", nil)
		var resp ReadIndexResponse
		err := client.ReadIndex("ref", "10.0.0.1:1", &ReadIndexRequest{RPCHeader: netTestHeader("n2")}, &resp)
		if !errors.Is(err, ErrReadIndexUnsupported) {
			t.Fatalf("ReadIndex against a peer without it: %v, want ErrReadIndexUnsupported", err)
		}
		synctest.Wait()
		if got := accepted.Load(); got != 1 {
			t.Fatalf("%d connections for one request, want 1", got)
		}
		client.closeAndWait()
	})
}

// A peer whose transport delivers the request to a node that refuses it
// as an unexpected command does not support it either.
func TestNetTransport_ReadIndexUnexpectedCommand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := newNetTestNode(t, network, "10.0.0.1:1", nil)
		server.serve(func(rpc RPC) { rpc.Respond(nil, errors.New(errUnexpectedCommand)) })
		client := newNetTestNode(t, network, "10.0.0.2:1", nil)
		var resp ReadIndexResponse
		err := client.ReadIndex("s", server.addr, &ReadIndexRequest{RPCHeader: netTestHeader("n2")}, &resp)
		if !errors.Is(err, ErrReadIndexUnsupported) {
			t.Fatalf("ReadIndex answered %q: %v, want ErrReadIndexUnsupported", errUnexpectedCommand, err)
		}
		client.closeAndWait()
		server.closeAndWait()
	})
}

// A pooled connection the peer closed while idle is not taken for a peer
// without the RPC: the request is sent again on a fresh connection.
func TestNetTransport_ReadIndexStalePooledConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := newNetTestNode(t, network, "10.0.0.1:1", func(c *NetworkTransportConfig) {
			c.IdleTimeout = time.Second
		})
		server.serve(netEchoAnswer)
		client := newNetTestNode(t, network, "10.0.0.2:1", nil)
		req := &ReadIndexRequest{RPCHeader: netTestHeader("n2")}
		var resp ReadIndexResponse
		if err := client.ReadIndex("s", server.addr, req, &resp); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // the server closes the pooled connection
		synctest.Wait()
		resp = ReadIndexResponse{}
		if err := client.ReadIndex("s", server.addr, req, &resp); err != nil {
			t.Fatalf("ReadIndex after the pooled connection went stale: %v", err)
		}
		if !resp.Success || resp.ReadIndex != 42 {
			t.Fatalf("answer %+v", resp)
		}
		client.closeAndWait()
		server.closeAndWait()
	})
}

// With VerifyPeer, a ReadIndex request must name the server the
// connection's certificate was bound to, as every other request must.
func TestTLSTransport_ReadIndexBoundToCertificate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ca := newNetTestCA(t, "cluster CA")
		network := newNetPipeNetwork()
		server := newNetTLSNode(t, network, "10.0.0.1", ca.config(t, "s1", "10.0.0.1"), func(c *NetworkTransportConfig) {
			c.VerifyPeer = func(cert *x509.Certificate, remote net.Addr) (ServerID, error) {
				return ServerID(cert.Subject.CommonName), nil
			}
		})
		server.serve(netEchoAnswer)
		client := newNetTLSNode(t, network, "10.0.0.2", ca.config(t, "s2", "10.0.0.2"), nil)
		var resp ReadIndexResponse
		if err := client.ReadIndex("s1", server.addr, &ReadIndexRequest{RPCHeader: netTestHeader("s2")}, &resp); err != nil || !resp.Success {
			t.Fatalf("ReadIndex from the bound server: %+v, %v", resp, err)
		}
		if err := client.ReadIndex("s1", server.addr, &ReadIndexRequest{RPCHeader: netTestHeader("s3")}, &resp); err == nil {
			t.Fatal("ReadIndex naming another server than the certificate succeeded")
		}
		synctest.Wait()
		if got := server.log.count("request from another server than the certificate's"); got != 1 {
			t.Fatalf("want the mismatch logged once, log:\n%s", server.log)
		}
		client.closeAndWait()
		server.closeAndWait()
	})
}
