package reference

import (
	"io"
	"net"
	"time"

	hraft "github.com/hashicorp/raft"
	"github.com/quorumkit/raft/interop/internal/sidebyside"
)

// fsm runs the shared machine as a hashicorp/raft FSM.
type fsm struct{ m *sidebyside.Machine }

func (f fsm) Apply(l *hraft.Log) interface{} {
	return f.m.Apply(l.Data)
}

func (f fsm) Snapshot() (hraft.FSMSnapshot, error) { return fsmSnapshot{f.m.Capture()}, nil }

func (f fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	return f.m.Restore(rc)
}

type fsmSnapshot struct{ c sidebyside.Capture }

func (s fsmSnapshot) Persist(sink hraft.SnapshotSink) error {
	if _, err := s.c.WriteTo(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s fsmSnapshot) Release() {}

// streamLayer is a sidebyside.Link as a hashicorp/raft StreamLayer.
type streamLayer struct{ *sidebyside.Link }

func (s streamLayer) Dial(addr hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return s.Link.Dial(string(addr), timeout)
}

// gatedLog passes every call through a gate, so that a crash can stop it.
type gatedLog struct {
	gate *sidebyside.Gate
	s    hraft.LogStore
}

func (g gatedLog) FirstIndex() (uint64, error) { g.gate.Pass(); return g.s.FirstIndex() }
func (g gatedLog) LastIndex() (uint64, error)  { g.gate.Pass(); return g.s.LastIndex() }
func (g gatedLog) GetLog(i uint64, l *hraft.Log) error {
	g.gate.Pass()
	return g.s.GetLog(i, l)
}
func (g gatedLog) StoreLog(l *hraft.Log) error { g.gate.Pass(); return g.s.StoreLog(l) }
func (g gatedLog) StoreLogs(ls []*hraft.Log) error {
	g.gate.Pass()
	return g.s.StoreLogs(ls)
}
func (g gatedLog) DeleteRange(lo, hi uint64) error { g.gate.Pass(); return g.s.DeleteRange(lo, hi) }

// IsMonotonic forwards what the store says, as LogCache does.
func (g gatedLog) IsMonotonic() bool {
	m, ok := g.s.(hraft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// gatedStable passes every call through a gate, so that a crash can stop it.
type gatedStable struct {
	gate *sidebyside.Gate
	s    hraft.StableStore
}

func (g gatedStable) Set(k, v []byte) error              { g.gate.Pass(); return g.s.Set(k, v) }
func (g gatedStable) Get(k []byte) ([]byte, error)       { g.gate.Pass(); return g.s.Get(k) }
func (g gatedStable) SetUint64(k []byte, v uint64) error { g.gate.Pass(); return g.s.SetUint64(k, v) }
func (g gatedStable) GetUint64(k []byte) (uint64, error) { g.gate.Pass(); return g.s.GetUint64(k) }
