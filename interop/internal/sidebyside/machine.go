package sidebyside

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Machine is the state machine both libraries run, wrapped by each in its
// own FSM type. A workload command only counts; a grow command (see
// GrowCommand) replaces the machine's state by that many pseudo-random
// bytes, so that the snapshot mode can give the FSM a state of a chosen
// size in one entry. The reads mode adds ReadKeys registers: a put
// command (PutCommand) raises one to a value, a get command (GetCommand)
// answers its value through the log. A snapshot is the count, the state
// and the registers.
type Machine struct {
	applied atomic.Uint64
	regs    [ReadKeys]atomic.Uint64 // written on the FSM goroutine, read by anyone

	mu    sync.Mutex // guards state; Apply and Restore run on the library's FSM goroutine
	state []byte     // replaced, never modified in place, so a snapshot may keep it

	restoreOnce sync.Once
	restored    chan struct{}
	restoredAt  time.Time // set before restored is closed
	restoreTook time.Duration

	growOnce sync.Once
	grown    chan struct{}
}

// NewMachine returns an empty machine.
func NewMachine() *Machine {
	return &Machine{restored: make(chan struct{}), grown: make(chan struct{})}
}

// growMagic starts a grow command; workload commands start with a zero byte.
var growMagic = []byte("sbs-grow")

const growLen = 8 + 8 + 8 // magic, size, seed

// GrowCommand returns the command that sets a machine's state to size
// pseudo-random bytes drawn from seed.
func GrowCommand(size int, seed uint64) []byte {
	b := append([]byte(nil), growMagic...)
	b = binary.BigEndian.AppendUint64(b, uint64(size))
	return binary.BigEndian.AppendUint64(b, seed)
}

// ReadKeys is how many registers the machine holds.
const ReadKeys = 16

// Kinds of register commands, their first byte. Workload commands start
// with a zero byte and grow commands with growMagic.
const (
	cmdPut = 1 // then the key (4 bytes) and the value (8 bytes)
	cmdGet = 2 // then the key (4 bytes)
)

// PutCommand returns a command of size bytes (at least 13) that raises
// register key (modulo ReadKeys) to value: a register keeps the largest
// value ever put, so that puts applied out of the order they were issued
// in still leave it monotonic.
func PutCommand(size int, key uint32, value uint64) []byte {
	b := make([]byte, max(size, 13))
	b[0] = cmdPut
	binary.BigEndian.PutUint32(b[1:5], key)
	binary.BigEndian.PutUint64(b[5:13], value)
	return b
}

// GetCommand returns the command that reads register key through the log:
// Apply answers the register's value.
func GetCommand(key uint32) []byte {
	b := []byte{cmdGet, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:5], key)
	return b
}

// Get reads register key (modulo ReadKeys) directly, as a read served
// from this node's state after a read index or lease says it may.
func (m *Machine) Get(key uint32) uint64 { return m.regs[key%ReadKeys].Load() }

// Apply applies one committed command and returns its answer: a get
// command's register value, 0 for every other command.
func (m *Machine) Apply(data []byte) uint64 {
	m.applied.Add(1)
	switch {
	case len(data) >= 13 && data[0] == cmdPut:
		r := &m.regs[binary.BigEndian.Uint32(data[1:5])%ReadKeys]
		if v := binary.BigEndian.Uint64(data[5:13]); v > r.Load() {
			r.Store(v) // only the FSM goroutine writes
		}
		return 0
	case len(data) == 5 && data[0] == cmdGet:
		return m.Get(binary.BigEndian.Uint32(data[1:5]))
	case len(data) != growLen || !bytes.HasPrefix(data, growMagic):
		return 0
	}
	size := binary.BigEndian.Uint64(data[8:16])
	seed := binary.BigEndian.Uint64(data[16:24])
	state := make([]byte, size)
	var key [32]byte
	binary.BigEndian.PutUint64(key[:], seed)
	rand.NewChaCha8(key).Read(state)
	m.mu.Lock()
	m.state = state
	m.mu.Unlock()
	m.growOnce.Do(func() { close(m.grown) })
	return 0
}

// Grown is closed once the machine has applied a grow command (rather
// than received its state in a snapshot).
func (m *Machine) Grown() <-chan struct{} { return m.grown }

// Applied is how many commands the machine has applied, counting those a
// restored snapshot held.
func (m *Machine) Applied() uint64 { return m.applied.Load() }

// StateSize is the size of the machine's state in bytes.
func (m *Machine) StateSize() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.state)
}

// Restored is closed once the machine has restored a snapshot.
func (m *Machine) Restored() <-chan struct{} { return m.restored }

// RestoredAt is when the first restore finished; valid once Restored is
// closed.
func (m *Machine) RestoredAt() time.Time {
	<-m.restored
	return m.restoredAt
}

// RestoreTook is how long the first restore's Restore call took: the
// machine's own work (allocating its state and reading the snapshot from
// the library's reader), the same code under either library. Valid once
// Restored is closed.
func (m *Machine) RestoreTook() time.Duration {
	<-m.restored
	return m.restoreTook
}

// Capture is a point-in-time copy of the machine for a snapshot.
type Capture struct {
	applied uint64
	state   []byte
	regs    [ReadKeys]uint64
}

// Capture takes the machine's current state; writing it out may run
// concurrently with later applies.
func (m *Machine) Capture() Capture {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := Capture{applied: m.applied.Load(), state: m.state}
	for i := range m.regs {
		c.regs[i] = m.regs[i].Load()
	}
	return c
}

// persistChunk is the size of each Write to a snapshot sink, the buffer
// size of a typical io.Copy.
const persistChunk = 32 << 10

// WriteTo writes the snapshot: the applied count, the state's length and
// the state, in writes of persistChunk bytes, then the registers.
func (c Capture) WriteTo(w io.Writer) (int64, error) {
	var head [16]byte
	binary.BigEndian.PutUint64(head[:8], c.applied)
	binary.BigEndian.PutUint64(head[8:], uint64(len(c.state)))
	n, err := w.Write(head[:])
	total := int64(n)
	for off := 0; err == nil && off < len(c.state); off += persistChunk {
		n, err = w.Write(c.state[off:min(off+persistChunk, len(c.state))])
		total += int64(n)
	}
	if err == nil {
		var regs [ReadKeys * 8]byte
		for i, v := range c.regs {
			binary.BigEndian.PutUint64(regs[i*8:], v)
		}
		n, err = w.Write(regs[:])
		total += int64(n)
	}
	if err != nil {
		return total, fmt.Errorf("writing the snapshot: %w", err)
	}
	return total, nil
}

// maxRestore bounds the state a snapshot may claim, against a damaged one.
const maxRestore = 16 << 30

// Restore replaces the machine by the snapshot read from r.
func (m *Machine) Restore(r io.Reader) error {
	start := time.Now()
	var head [16]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return fmt.Errorf("reading the snapshot header: %w", err)
	}
	applied := binary.BigEndian.Uint64(head[:8])
	size := binary.BigEndian.Uint64(head[8:])
	if size > maxRestore {
		return errors.New("snapshot claims a state larger than 16 GiB")
	}
	state := make([]byte, size)
	if _, err := io.ReadFull(r, state); err != nil {
		return fmt.Errorf("reading the snapshot state: %w", err)
	}
	var regs [ReadKeys * 8]byte
	if _, err := io.ReadFull(r, regs[:]); err != nil {
		return fmt.Errorf("reading the snapshot registers: %w", err)
	}
	m.mu.Lock()
	m.state = state
	m.applied.Store(applied)
	for i := range m.regs {
		m.regs[i].Store(binary.BigEndian.Uint64(regs[i*8:]))
	}
	m.mu.Unlock()
	m.restoreOnce.Do(func() {
		m.restoredAt = time.Now()
		m.restoreTook = m.restoredAt.Sub(start)
		close(m.restored)
	})
	return nil
}
