package raft

import (
	"bufio"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// Pipelined AppendEntries come back on Consumer in the order they were
// sent, each with its own answer.
func TestNetPipeline_AnswersInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := newNetTestNode(t, network, "10.0.0.1:1", nil)
		server.serve(netEchoAnswer)
		client := newNetTestNode(t, network, "10.0.0.2:1", func(c *NetworkTransportConfig) { c.MaxRPCsInFlight = 4 })

		p, err := client.AppendEntriesPipeline("s", server.addr)
		if err != nil {
			t.Fatalf("AppendEntriesPipeline: %v", err)
		}
		const total = 20
		go func() {
			for i := 0; i < total; i++ {
				req := &AppendEntriesRequest{Term: 1, PrevLogEntry: uint64(i), LeaderCommitIndex: 1,
					Entries: []*Log{{Index: uint64(i + 1), Term: 1, Data: []byte{byte(i)}}}}
				if _, err := p.AppendEntries(req, &AppendEntriesResponse{}); err != nil {
					t.Errorf("AppendEntries %d: %v", i, err)
					return
				}
			}
		}()
		for i := 0; i < total; i++ {
			f := <-p.Consumer()
			if err := f.Error(); err != nil {
				t.Fatalf("future %d: %v", i, err)
			}
			if got := f.Request().PrevLogEntry; got != uint64(i) {
				t.Fatalf("future %d carries request %d: out of order", i, got)
			}
			if got := f.Response().LastLog; got != uint64(i+1) {
				t.Fatalf("future %d answered LastLog %d, want %d", i, got, i+1)
			}
			if f.Start().IsZero() {
				t.Fatalf("future %d has no start time", i)
			}
		}
		if err := p.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := p.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := p.AppendEntries(&AppendEntriesRequest{}, &AppendEntriesResponse{}); !errors.Is(err, ErrPipelineShutdown) {
			t.Fatalf("AppendEntries after Close: %v, want ErrPipelineShutdown", err)
		}
		client.closeAndWait()
		server.closeAndWait()
	})
}

// netRawServer accepts connections on a netPipeNetwork address without a
// transport: it reads requests and answers only when told, so tests can see
// exactly what is in flight.
type netRawServer struct {
	received atomic.Int32  // requests read so far
	answerCh chan struct{} // each receive lets one answer be written
	conns    chan net.Conn // accepted connections, for the test to close
	listener *netPipeLayer
	doneCh   chan struct{} // closed by stop
}

func startNetRawServer(t *testing.T, network *netPipeNetwork, addr string) *netRawServer {
	t.Helper()
	l := network.listen(addr)
	s := &netRawServer{answerCh: make(chan struct{}), conns: make(chan net.Conn, 16), listener: l, doneCh: make(chan struct{})}
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			s.conns <- conn
			go s.serve(conn)
		}
	}()
	return s
}

// stop closes the listener and every connection not yet taken from conns,
// and ends the server's goroutines.
func (s *netRawServer) stop() {
	close(s.doneCh)
	s.listener.Close()
	for {
		select {
		case c := <-s.conns:
			c.Close()
		default:
			return
		}
	}
}

// serve reads AppendEntries requests as fast as they come and writes one
// answer per value received on answerCh, in order.
func (s *netRawServer) serve(conn net.Conn) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	dec := newWireDecoder(r, DefaultMaxRPCBytes, newWireDecodeHandle())
	w := bufio.NewWriter(conn)
	enc := newWireEncoder(w, newWireEncodeHandle(false))
	pending := make(chan uint64, 1024)
	go func() {
		for last := range pending {
			select {
			case <-s.answerCh:
			case <-s.doneCh:
				return
			}
			if err := enc.writeResponse("", &AppendEntriesResponse{LastLog: last, Success: true}); err != nil {
				return
			}
		}
	}()
	defer close(pending)
	for {
		if _, err := r.ReadByte(); err != nil {
			return
		}
		var req AppendEntriesRequest
		if err := dec.decode(&req); err != nil {
			return
		}
		s.received.Add(1)
		pending <- req.PrevLogEntry
	}
}

// With MaxRPCsInFlight = N, N requests may be unanswered; the next
// AppendEntries blocks until an answer arrives.
func TestNetPipeline_BackPressure(t *testing.T) {
	const inFlight = 5
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := startNetRawServer(t, network, "10.0.0.1:1")
		client := newNetTestNode(t, network, "10.0.0.2:1", func(c *NetworkTransportConfig) {
			c.MaxRPCsInFlight = inFlight
			c.Timeout = 0 // no deadline: the test holds answers as long as it likes
		})
		p, err := client.AppendEntriesPipeline("s", "10.0.0.1:1")
		if err != nil {
			t.Fatalf("AppendEntriesPipeline: %v", err)
		}

		var returned atomic.Int32
		senderErr := make(chan error, 1)
		go func() {
			for i := 0; i < inFlight+3; i++ {
				if _, err := p.AppendEntries(&AppendEntriesRequest{PrevLogEntry: uint64(i)}, &AppendEntriesResponse{}); err != nil {
					senderErr <- err
					return
				}
				returned.Add(1)
			}
			senderErr <- nil
		}()
		synctest.Wait()
		if got := server.received.Load(); got != inFlight {
			t.Fatalf("%d requests on the wire unanswered, want MaxRPCsInFlight=%d", got, inFlight)
		}
		if got := returned.Load(); got != inFlight-1 {
			t.Fatalf("%d AppendEntries returned, want %d (the last one waits for room)", got, inFlight-1)
		}

		// One answer makes room for one more request.
		server.answerCh <- struct{}{}
		if f := <-p.Consumer(); f.Error() != nil || f.Response().LastLog != 0 {
			t.Fatalf("first future: %v %+v", f.Error(), f.Response())
		}
		synctest.Wait()
		if got := server.received.Load(); got != inFlight+1 {
			t.Fatalf("%d requests sent after one answer, want %d", got, inFlight+1)
		}

		// Close releases the blocked sender with ErrPipelineShutdown.
		p.Close()
		if err := <-senderErr; !errors.Is(err, ErrPipelineShutdown) {
			t.Fatalf("blocked AppendEntries returned %v at Close, want ErrPipelineShutdown", err)
		}
		client.closeAndWait()
		server.stop()
	})
}

// A connection that breaks answers every future in flight with an error,
// and a silent peer costs each future at most one Timeout.
func TestNetPipeline_Failures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		network := newNetPipeNetwork()
		server := startNetRawServer(t, network, "10.0.0.1:1")
		client := newNetTestNode(t, network, "10.0.0.2:1", func(c *NetworkTransportConfig) {
			c.MaxRPCsInFlight = 4
			c.Timeout = 3 * time.Second
		})

		// Silent peer: the first future fails at the read deadline.
		p, err := client.AppendEntriesPipeline("s", "10.0.0.1:1")
		if err != nil {
			t.Fatalf("AppendEntriesPipeline: %v", err)
		}
		start := time.Now()
		for i := 0; i < 3; i++ {
			if _, err := p.AppendEntries(&AppendEntriesRequest{PrevLogEntry: uint64(i)}, &AppendEntriesResponse{}); err != nil {
				t.Fatalf("AppendEntries %d: %v", i, err)
			}
		}
		for i := 0; i < 3; i++ {
			f := <-p.Consumer()
			if f.Error() == nil {
				t.Fatalf("future %d succeeded without an answer", i)
			}
		}
		if elapsed := time.Since(start); elapsed != 3*time.Second {
			t.Fatalf("futures failed after %v, want one 3s Timeout", elapsed)
		}
		p.Close()
		<-server.conns

		// Broken connection: the server goes away with requests in flight.
		p, err = client.AppendEntriesPipeline("s", "10.0.0.1:1")
		if err != nil {
			t.Fatalf("AppendEntriesPipeline: %v", err)
		}
		for i := 0; i < 2; i++ {
			if _, err := p.AppendEntries(&AppendEntriesRequest{PrevLogEntry: uint64(i)}, &AppendEntriesResponse{}); err != nil {
				t.Fatalf("AppendEntries %d: %v", i, err)
			}
		}
		synctest.Wait()
		(<-server.conns).Close()
		for i := 0; i < 2; i++ {
			if f := <-p.Consumer(); f.Error() == nil {
				t.Fatalf("future %d succeeded on a closed connection", i)
			}
		}
		client.closeAndWait() // also closes the pipeline and its reader
		server.stop()
	})
}
