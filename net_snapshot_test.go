package raft

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// netSnapshotSource produces size pseudo-random bytes on the fly, hashing
// them as it goes, and fails the test if it is read again after reporting
// EOF: the transport must stream it once, never rewind or re-read it.
type netSnapshotSource struct {
	t         *testing.T
	remaining int64
	rng       *rand.ChaCha8
	sum       hash.Hash
	ended     bool
}

func newNetSnapshotSource(t *testing.T, size int64, seed byte) *netSnapshotSource {
	return &netSnapshotSource{t: t, remaining: size, rng: rand.NewChaCha8([32]byte{seed}), sum: sha256.New()}
}

func (s *netSnapshotSource) Read(p []byte) (int, error) {
	if s.ended {
		s.t.Error("snapshot source read again after EOF")
		return 0, errors.New("read after EOF")
	}
	if s.remaining == 0 {
		s.ended = true
		return 0, io.EOF
	}
	if int64(len(p)) > s.remaining {
		p = p[:s.remaining]
	}
	_, _ = s.rng.Read(p)
	s.sum.Write(p)
	s.remaining -= int64(len(p))
	return len(p), nil
}

// A large snapshot is streamed: the bytes arrive intact, in order, the
// sender never holds them in memory, and its connection is closed
// afterwards rather than pooled.
func TestNetTransport_InstallSnapshotStreams(t *testing.T) {
	const size = 16 << 20
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := newNetTestNode(t, network, "10.0.0.1:1", nil)
		client := newNetTestNode(t, network, "10.0.0.2:1", nil)
		received := make(chan string, 1)
		server.serve(func(rpc RPC) {
			req := rpc.Command.(*InstallSnapshotRequest)
			sum := sha256.New()
			n, err := io.CopyBuffer(sum, rpc.Reader, make([]byte, 4096))
			if err != nil || n != req.Size {
				t.Errorf("server read %d of %d snapshot bytes: %v", n, req.Size, err)
			}
			received <- fmt.Sprintf("%x", sum.Sum(nil))
			rpc.Respond(&InstallSnapshotResponse{Term: req.Term, Success: true}, nil)
		})

		src := newNetSnapshotSource(t, size, 1)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var resp InstallSnapshotResponse
		err := client.InstallSnapshot("s", server.addr, &InstallSnapshotRequest{Term: 3, Size: size}, &resp, src)
		runtime.ReadMemStats(&after)
		if err != nil || !resp.Success {
			t.Fatalf("InstallSnapshot: %v %+v", err, resp)
		}
		if got, want := <-received, fmt.Sprintf("%x", src.sum.Sum(nil)); got != want {
			t.Fatalf("server hashed %s, sender %s", got, want)
		}
		// Both ends together allocated a small fraction of the snapshot.
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/4 {
			t.Fatalf("streaming %d bytes allocated %d bytes", size, alloc)
		}
		if got := client.pooled(server.addr); got != 0 {
			t.Fatalf("InstallSnapshot connection pooled (%d)", got)
		}
		synctest.Wait()
		if got := server.server.count("10.0.0.2"); got != 0 {
			t.Fatalf("server still holds %d connections: the sender did not close", got)
		}
		client.closeAndWait()
		server.closeAndWait()
	})
}

// When the node reads only part of the snapshot, the transport drains the
// rest before answering, so the stream stays in step; the node's error
// text reaches the sender.
func TestNetTransport_InstallSnapshotDrainsUnreadBody(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := newNetTestNode(t, network, "10.0.0.1:1", nil)
		client := newNetTestNode(t, network, "10.0.0.2:1", nil)
		server.serve(func(rpc RPC) {
			if req, ok := rpc.Command.(*InstallSnapshotRequest); ok {
				_, _ = io.ReadFull(rpc.Reader, make([]byte, 10))
				rpc.Respond(&InstallSnapshotResponse{Term: req.Term}, fmt.Errorf("unsupported snapshot version %d", 7))
				return
			}
			netEchoAnswer(rpc)
		})
		var resp InstallSnapshotResponse
		err := client.InstallSnapshot("s", server.addr, &InstallSnapshotRequest{Term: 3, Size: 1 << 20}, &resp, newNetSnapshotSource(t, 1<<20, 2))
		if err == nil || err.Error() != "unsupported snapshot version 7" {
			t.Fatalf("InstallSnapshot error %v, want the node's text", err)
		}
		if resp.Term != 3 {
			t.Fatalf("response beside the error not decoded: %+v", resp)
		}
		checkNetServed(t, client, server.addr)
		client.closeAndWait()
		server.closeAndWait()
	})
}

// Data shorter than Size is an error on the sending side.
func TestNetTransport_InstallSnapshotShortData(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := newNetTestNode(t, network, "10.0.0.1:1", nil)
		server.serve(func(rpc RPC) {
			_, err := io.Copy(io.Discard, rpc.Reader)
			rpc.Respond(&InstallSnapshotResponse{}, err)
		})
		client := newNetTestNode(t, network, "10.0.0.2:1", nil)
		var resp InstallSnapshotResponse
		err := client.InstallSnapshot("s", server.addr, &InstallSnapshotRequest{Size: 100}, &resp, strings.NewReader("short"))
		if err == nil || !strings.Contains(err.Error(), "ended after 5 of 100 bytes") {
			t.Fatalf("error %v, want a short-data error", err)
		}
		client.closeAndWait()
		server.closeAndWait()
	})
}

// The sender's deadline is one Timeout per TimeoutScale bytes: a receiver
// that takes the request but never reads the body is given up on after
// exactly that long.
func TestNetTransport_InstallSnapshotDeadlineScales(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := newNetTestNode(t, network, "10.0.0.1:1", nil)
		server.serve(func(RPC) {}) // takes the request, reads nothing
		client := newNetTestNode(t, network, "10.0.0.2:1", func(c *NetworkTransportConfig) { c.Timeout = time.Second })
		client.TimeoutScale = 1024

		start := time.Now()
		var resp InstallSnapshotResponse
		err := client.InstallSnapshot("s", server.addr, &InstallSnapshotRequest{Size: 10 * 1024 * 1024}, &resp, newNetSnapshotSource(t, 10*1024*1024, 3))
		if err == nil {
			t.Fatal("InstallSnapshot to a receiver that never reads succeeded")
		}
		if elapsed, want := time.Since(start), 10240*time.Second; elapsed != want {
			t.Fatalf("gave up after %v, want %v (Timeout × Size/TimeoutScale)", elapsed, want)
		}
		client.closeAndWait()
		server.closeAndWait()
	})
}
