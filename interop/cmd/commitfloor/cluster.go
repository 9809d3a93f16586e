package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// request is one client's command, answered on done once committed.
type request struct {
	cmd  []byte
	done chan struct{}
	at   int64 // when submitted, with -stages
}

// cluster is a leader and two followers in this process, each with its own
// store in its own directory, the leader holding one TCP connection on
// 127.0.0.1 to each follower. It has no consensus logic: it only moves
// batches and acknowledgements and applies the commit rule.
type cluster struct {
	in     chan *request // clients to the leader
	stores [3]store      // the leader's, then the followers'
	conns  [2]net.Conn   // the leader's ends
	peers  [2]net.Conn   // the followers' ends
	wg     sync.WaitGroup
	errMu  sync.Mutex
	err    error

	stopping atomic.Bool // set before the leader closes the connections

	mu            sync.Mutex
	pending       []*request // not yet answered, in index order
	answered      uint64     // highest index answered
	leaderDurable uint64
	acked         [2]uint64 // highest index each follower reported durable

	batches, entries uint64 // the leader's batches and their entries
}

// Stage names of the followers, for -stages.
var (
	followerReceived = [2]string{"F0 received", "F1 received"}
	followerStoreEnd = [2]string{"F0 store end", "F1 store end"}
	ackReceived      = [2]string{"F0 ack received", "F1 ack received"}
)

// frameHead is a batch's header on the wire: first index, count, body length.
const frameHead = 16

// startCluster opens the three stores under dir, connects the leader to
// the followers and starts every node's goroutines.
func startCluster(kind, dir string) (*cluster, error) {
	c := &cluster{in: make(chan *request, 4096)}
	for i := range c.stores {
		d := filepath.Join(dir, fmt.Sprintf("node%d", i))
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
		s, err := openStore(kind, d)
		if err != nil {
			c.closeStores()
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		c.stores[i] = s
	}
	for i := range c.conns {
		leaderEnd, followerEnd, err := connect()
		if err != nil {
			c.closeConns()
			c.closeStores()
			return nil, err
		}
		c.conns[i], c.peers[i] = leaderEnd, followerEnd
	}
	c.wg.Add(5)
	go c.lead()
	for i := range c.peers {
		go c.follow(i, c.peers[i], c.stores[i+1])
		go c.acks(i)
	}
	return c, nil
}

// connect returns both ends of a TCP connection on 127.0.0.1.
func connect() (net.Conn, net.Conn, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	b := <-ch
	if b.err != nil {
		a.Close()
		return nil, nil, b.err
	}
	return a, b.c, nil // Go sets TCP_NODELAY on both
}

// submit sends r to the leader; the caller waits on r.done.
func (c *cluster) submit(r *request) { c.in <- r }

// stop ends the cluster once no client submits any more and every
// submitted request was answered, and returns the first error any node met.
func (c *cluster) stop() error {
	close(c.in)
	c.wg.Wait() // the leader stops on the closed channel, then closes its connections
	c.closeStores()
	return c.err
}

func (c *cluster) fail(err error) {
	c.errMu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.errMu.Unlock()
}

func (c *cluster) closeConns() {
	for i := range c.conns {
		if c.conns[i] != nil {
			c.conns[i].Close()
			c.peers[i].Close()
		}
	}
}

func (c *cluster) closeStores() {
	for _, s := range c.stores {
		if s != nil {
			if err := s.close(); err != nil {
				c.fail(err)
			}
		}
	}
}

// lead is the leader's write loop: it takes everything pending as one
// batch, sends it to both followers (one write on each connection, without
// waiting for earlier batches' acknowledgements), then writes it to its
// own store, so that its write and sync overlap the followers'.
func (c *cluster) lead() {
	defer c.wg.Done()
	defer func() {
		c.stopping.Store(true)
		c.closeConns() // the followers and ack readers stop on it
	}()
	var (
		batch []*request
		cmds  [][]byte
		frame []byte
		next  = uint64(1)
	)
	for r := range c.in {
		batch = append(batch[:0], r)
	drain:
		for {
			select {
			case r, ok := <-c.in:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		first := next
		next += uint64(len(batch))
		cmds = cmds[:0]
		for _, r := range batch {
			cmds = append(cmds, r.cmd)
		}
		c.mu.Lock()
		c.pending = append(c.pending, batch...)
		c.batches++
		c.entries += uint64(len(batch))
		c.mu.Unlock()
		if stages != nil {
			for i, r := range batch {
				mark("submitted", first+uint64(i), first+uint64(i), r.at)
			}
		}
		mark("leader batch taken", first, next-1, now())
		frame = encodeFrame(frame[:0], first, cmds)
		for _, conn := range c.conns {
			if _, err := conn.Write(frame); err != nil {
				c.fail(fmt.Errorf("leader: send: %w", err))
				return
			}
		}
		mark("leader sent", first, next-1, now())
		if err := c.stores[0].append(first, cmds); err != nil {
			c.fail(fmt.Errorf("leader: store: %w", err))
			return
		}
		mark("leader store end", first, next-1, now())
		c.mu.Lock()
		c.leaderDurable = next - 1
		c.answer()
		c.mu.Unlock()
	}
}

// encodeFrame appends a batch's frame: the header, then each command's
// length and bytes.
func encodeFrame(b []byte, first uint64, cmds [][]byte) []byte {
	body := 0
	for _, cmd := range cmds {
		body += 4 + len(cmd)
	}
	b = binary.LittleEndian.AppendUint64(b, first)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(cmds)))
	b = binary.LittleEndian.AppendUint32(b, uint32(body))
	for _, cmd := range cmds {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(cmd)))
		b = append(b, cmd...)
	}
	return b
}

// answer answers, in index order, every request that is durable on the
// leader and on at least one follower. c.mu is held.
func (c *cluster) answer() {
	commit := min(c.leaderDurable, max(c.acked[0], c.acked[1]))
	n := 0
	if c.answered < commit {
		mark("answered", c.answered+1, commit, now())
	}
	for c.answered < commit {
		c.pending[n].done <- struct{}{}
		c.pending[n] = nil
		n++
		c.answered++
	}
	c.pending = c.pending[n:]
}

// acks reads follower i's acknowledgements (the highest index it has made
// durable) and answers what they commit.
func (c *cluster) acks(i int) {
	defer c.wg.Done()
	br := bufio.NewReader(c.conns[i])
	var b [8]byte
	for {
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return // the leader closed the connection
		}
		last := binary.LittleEndian.Uint64(b[:])
		for br.Buffered() >= 8 { // later acknowledgements already here supersede it
			io.ReadFull(br, b[:])
			last = binary.LittleEndian.Uint64(b[:])
		}
		mark(ackReceived[i], c.acked[i]+1, last, now())
		c.mu.Lock()
		c.acked[i] = last
		c.answer()
		c.mu.Unlock()
	}
}

// follow is a follower: it reads a batch, adds every further batch that
// has already arrived whole (those the leader sent while the previous
// write was syncing), writes them all to its store with one append and
// acknowledges the last index.
func (c *cluster) follow(id int, conn net.Conn, s store) {
	defer c.wg.Done()
	br := bufio.NewReaderSize(conn, 1<<20)
	var (
		cmds   [][]byte
		bodies [][]byte
		head   [frameHead]byte
		ack    [8]byte
	)
	for {
		if _, err := io.ReadFull(br, head[:]); err != nil {
			if !c.stopping.Load() {
				c.fail(fmt.Errorf("follower: read: %w", err))
			}
			return
		}
		first := binary.LittleEndian.Uint64(head[:8])
		last := first - 1
		t := now()
		cmds, bodies = cmds[:0], bodies[:0]
		for {
			count := binary.LittleEndian.Uint32(head[8:12])
			body := make([]byte, binary.LittleEndian.Uint32(head[12:16]))
			if _, err := io.ReadFull(br, body); err != nil {
				if !c.stopping.Load() {
					c.fail(fmt.Errorf("follower: read: %w", err))
				}
				return
			}
			bodies = append(bodies, body)
			last += uint64(count)
			if br.Buffered() < frameHead {
				break
			}
			p, _ := br.Peek(frameHead)
			if br.Buffered() < frameHead+int(binary.LittleEndian.Uint32(p[12:16])) {
				break
			}
			io.ReadFull(br, head[:])
		}
		for _, body := range bodies {
			cmds = appendCommands(cmds, body)
		}
		mark(followerReceived[id], first, last, t)
		if err := s.append(first, cmds); err != nil {
			c.fail(fmt.Errorf("follower: store: %w", err))
			return
		}
		mark(followerStoreEnd[id], first, last, now())
		binary.LittleEndian.PutUint64(ack[:], last)
		if _, err := conn.Write(ack[:]); err != nil {
			return // the leader closed the connection
		}
	}
}

// appendCommands appends the commands of a frame's body to cmds (they
// share the body's bytes).
func appendCommands(cmds [][]byte, body []byte) [][]byte {
	for len(body) >= 4 {
		n := int(binary.LittleEndian.Uint32(body[:4]))
		if n > len(body)-4 {
			break // the leader in this process never sends one
		}
		cmds = append(cmds, body[4:4+n])
		body = body[4+n:]
	}
	return cmds
}
