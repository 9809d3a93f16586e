package interop

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
	qraft "github.com/quorumkit/raft"
)

// mixedNetwork is the loopback network of one cluster. Each node listens
// through a mixedLayer registered here under its address, and the test can
// cut any node off and heal it again.
//
// A cut must drop everything sent while it lasts, as a real partition
// would. Closing the node's connections and refusing new ones is not
// enough on its own: a connection dialed just before the cut can wait in
// the listener's backlog with a request already in its buffer, and be
// accepted once the node is healed. So every partition and heal starts a
// new epoch, a dialer writes the epoch it dialed in as the connection's
// first bytes, and the accepting side drops any connection from an earlier
// epoch when it first reads.
type mixedNetwork struct {
	mu     sync.Mutex // guards every field below and the layers' cut and conns
	epoch  uint64
	layers map[string]*mixedLayer // by listening address; the latest incarnation's
	holds  map[string]*mixedDialHold
}

// mixedDialHold holds the dials to an address until a node listens on it
// again (see holdDialsUntilRelisten).
type mixedDialHold struct {
	released chan struct{}
	held     map[*mixedLayer]int // dials waiting, by dialing layer; guarded by nw.mu
}

func newMixedNetwork() *mixedNetwork {
	return &mixedNetwork{layers: make(map[string]*mixedLayer), holds: make(map[string]*mixedDialHold)}
}

// holdDialsUntilRelisten makes every dial to address wait, from now until
// a node listens on address again, and then go ahead as if it had just
// started. It stands for a slow dialer: a peer that decided what to send
// while the node was down and reaches it only after it came back.
func (nw *mixedNetwork) holdDialsUntilRelisten(address string) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if nw.holds[address] == nil {
		nw.holds[address] = &mixedDialHold{released: make(chan struct{}), held: make(map[*mixedLayer]int)}
	}
}

// releaseDials lets the dials held to address go ahead, if there are any.
func (nw *mixedNetwork) releaseDials(address string) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.releaseDialsLocked(address)
}

func (nw *mixedNetwork) releaseDialsLocked(address string) {
	if h := nw.holds[address]; h != nil {
		close(h.released)
		delete(nw.holds, address)
	}
}

// heldDials returns how many dials from the layer from to address are
// waiting on a hold.
func (nw *mixedNetwork) heldDials(from *mixedLayer, address string) int {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if h := nw.holds[address]; h != nil {
		return h.held[from]
	}
	return 0
}

// waitDialHold waits, if dials to address are held, until the hold is
// released; it reports false if that takes longer than mixedSettle.
func (l *mixedLayer) waitDialHold(address string) bool {
	l.nw.mu.Lock()
	h := l.nw.holds[address]
	if h == nil {
		l.nw.mu.Unlock()
		return true
	}
	h.held[l]++
	l.nw.mu.Unlock()
	t := time.NewTimer(mixedSettle)
	defer t.Stop()
	released := true
	select {
	case <-h.released:
	case <-t.C:
		released = false
	}
	l.nw.mu.Lock()
	h.held[l]--
	l.nw.mu.Unlock()
	return released
}

// listen binds addr for a node, retrying for a while: a restarted node
// takes the port its previous incarnation has just released.
func (nw *mixedNetwork) listen(addr string) (*mixedLayer, error) {
	deadline := time.Now().Add(mixedSettle)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			l := &mixedLayer{nw: nw, ln: ln, conns: make(map[*mixedConn]struct{})}
			nw.mu.Lock()
			nw.layers[ln.Addr().String()] = l
			nw.releaseDialsLocked(ln.Addr().String())
			nw.mu.Unlock()
			return l, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("listening on %s: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mixedLayer is one node's TCP stream layer on a mixedNetwork. While the
// node is cut off it neither dials nor accepts, and cutting it closes every
// connection it holds, in both directions. Peers see refused or reset
// connections at once, as after a crash, rather than the long timeouts of
// a black hole.
type mixedLayer struct {
	nw *mixedNetwork
	ln net.Listener

	// Guarded by nw.mu.
	cut   bool
	conns map[*mixedConn]struct{}
	// dials counts the connections dialed from this layer, by address.
	dials map[string]int
}

// dialsTo returns how many connections the node dialed to address.
func (l *mixedLayer) dialsTo(address string) int {
	l.nw.mu.Lock()
	defer l.nw.mu.Unlock()
	return l.dials[address]
}

// mixedConn is a connection a layer keeps track of.
type mixedConn struct {
	net.Conn
	layer *mixedLayer
	once  sync.Once

	// accepted connections check the dialer's epoch on their first read.
	accepted  bool
	checkOnce sync.Once
	checkErr  error
}

func (c *mixedConn) Close() error {
	c.once.Do(func() { c.layer.forget(c) })
	return c.Conn.Close()
}

func (c *mixedConn) Read(p []byte) (int, error) {
	if c.accepted {
		c.checkOnce.Do(c.checkEpoch)
		if c.checkErr != nil {
			return 0, c.checkErr
		}
	}
	return c.Conn.Read(p)
}

// checkEpoch reads the epoch the dialer wrote and drops the connection if
// a partition or heal has happened since it was dialed.
func (c *mixedConn) checkEpoch() {
	var b [8]byte
	if _, err := io.ReadFull(c.Conn, b[:]); err != nil {
		c.checkErr = err
		return
	}
	nw := c.layer.nw
	nw.mu.Lock()
	stale := c.layer.cut || binary.BigEndian.Uint64(b[:]) != nw.epoch
	nw.mu.Unlock()
	if stale {
		c.checkErr = errMixedPartitioned
		c.Close()
	}
}

// adopt tracks c, or closes it and returns nil while the layer is cut.
func (l *mixedLayer) adopt(c net.Conn, accepted bool) *mixedConn {
	l.nw.mu.Lock()
	defer l.nw.mu.Unlock()
	if l.cut {
		c.Close()
		return nil
	}
	mc := &mixedConn{Conn: c, layer: l, accepted: accepted}
	l.conns[mc] = struct{}{}
	return mc
}

func (l *mixedLayer) forget(c *mixedConn) {
	l.nw.mu.Lock()
	defer l.nw.mu.Unlock()
	delete(l.conns, c)
}

// partition cuts the node off and drops every connection it has.
func (l *mixedLayer) partition() {
	l.nw.mu.Lock()
	l.cut = true
	l.nw.epoch++
	conns := make([]*mixedConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.nw.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// isCut reports whether the node is cut off.
func (l *mixedLayer) isCut() bool {
	l.nw.mu.Lock()
	defer l.nw.mu.Unlock()
	return l.cut
}

// heal lets the node talk to the network again.
func (l *mixedLayer) heal() {
	l.nw.mu.Lock()
	defer l.nw.mu.Unlock()
	l.cut = false
	l.nw.epoch++
}

func (l *mixedLayer) Accept() (net.Conn, error) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return nil, err
		}
		if mc := l.adopt(c, true); mc != nil {
			return mc, nil
		}
	}
}

// dial connects to the node listening on address, unless either end is cut
// off, and writes the epoch as the connection's first bytes. A dial held
// by holdDialsUntilRelisten starts once the hold is released.
func (l *mixedLayer) dial(address string, timeout time.Duration) (net.Conn, error) {
	if !l.waitDialHold(address) {
		return nil, fmt.Errorf("dial to %s held for %v", address, mixedSettle)
	}
	l.nw.mu.Lock()
	target := l.nw.layers[address]
	refused := l.cut || target == nil || target.cut
	epoch := l.nw.epoch
	if l.dials == nil {
		l.dials = make(map[string]int)
	}
	l.dials[address]++
	l.nw.mu.Unlock()
	if refused {
		return nil, errMixedPartitioned
	}
	c, err := net.DialTimeout("tcp", address, timeout)
	if err != nil {
		return nil, err
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], epoch)
	c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write(b[:]); err != nil {
		c.Close()
		return nil, err
	}
	c.SetWriteDeadline(time.Time{})
	if mc := l.adopt(c, false); mc != nil {
		return mc, nil
	}
	return nil, errMixedPartitioned
}

func (l *mixedLayer) Close() error   { return l.ln.Close() }
func (l *mixedLayer) Addr() net.Addr { return l.ln.Addr() }

// The two libraries' StreamLayer interfaces differ only in the type of
// Dial's address.
type mixedOurLayer struct{ *mixedLayer }

func (l mixedOurLayer) Dial(a qraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return l.dial(string(a), timeout)
}

type mixedRefLayer struct{ *mixedLayer }

func (l mixedRefLayer) Dial(a hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return l.dial(string(a), timeout)
}

// TestMixedNetworkDropsWhatWasSentDuringACut checks the partition the
// cluster tests rely on: nothing sent to a node while it is cut off
// reaches it, not even a request on a connection dialed just before the
// cut and accepted only after the node is healed.
func TestMixedNetworkDropsWhatWasSentDuringACut(t *testing.T) {
	nw := newMixedNetwork()
	a, err := nw.listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := nw.listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	bAddr := b.Addr().String()

	// Dialed before the cut, written during it, accepted after the heal.
	early, err := a.dial(bAddr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	b.partition()
	if _, err := early.Write([]byte("sent during the cut")); err != nil {
		t.Fatal(err)
	}
	if c, err := a.dial(bAddr, time.Second); err == nil {
		c.Close()
		t.Fatal("dialing a node that is cut off succeeded")
	}
	b.heal()
	accepted, err := b.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer accepted.Close()
	accepted.SetReadDeadline(time.Now().Add(mixedSettle))
	// The drop must be the epoch check's doing, not the read deadline's.
	if n, err := accepted.Read(make([]byte, 64)); !errors.Is(err, errMixedPartitioned) {
		t.Fatalf("read %d bytes sent during the cut (%v); want the connection dropped as partitioned", n, err)
	}

	// After the heal, a new connection works, until the next cut closes
	// it on both sides.
	late, err := a.dial(bAddr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	if _, err := late.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	served, err := b.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer served.Close()
	served.SetReadDeadline(time.Now().Add(mixedSettle))
	got := make([]byte, 4)
	if _, err := io.ReadFull(served, got); err != nil || string(got) != "ping" {
		t.Fatalf("after the heal read %q, %v; want \"ping\"", got, err)
	}
	b.partition()
	if _, err := served.Read(got); err == nil {
		t.Fatal("a connection of a node that was cut off is still open")
	}
}
