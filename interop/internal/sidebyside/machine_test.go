package sidebyside

import (
	"bytes"
	"testing"
)

func TestMachineSnapshotRoundTrip(t *testing.T) {
	m := NewMachine()
	m.Apply(GrowCommand(100_000, 7))
	m.Apply(command(256, 1, 1))
	var buf bytes.Buffer
	if _, err := m.Capture().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	snap := buf.Bytes()
	r := NewMachine()
	if err := r.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if r.Applied() != 2 || r.StateSize() != 100_000 {
		t.Errorf("restored %d applied, %d bytes; want 2, 100000", r.Applied(), r.StateSize())
	}
	select {
	case <-r.Restored():
	default:
		t.Error("Restored not closed after Restore")
	}
	if err := NewMachine().Restore(bytes.NewReader(snap[:10])); err == nil {
		t.Error("a truncated snapshot restored without error")
	}
}

func TestMachineRegisters(t *testing.T) {
	m := NewMachine()
	m.Apply(PutCommand(256, 3, 10))
	m.Apply(PutCommand(256, 3+ReadKeys, 7)) // same register, older value: kept at 10
	m.Apply(PutCommand(13, 4, 2))
	m.Apply(command(256, 1, 1)) // a workload command touches no register
	if got := m.Apply(GetCommand(3)); got != 10 {
		t.Errorf("get of register 3 answered %d, want 10", got)
	}
	if got, want := m.Get(4), uint64(2); got != want {
		t.Errorf("Get(4) = %d, want %d", got, want)
	}
	if got := m.Applied(); got != 5 {
		t.Errorf("%d applied, want 5 (gets count too)", got)
	}
	var buf bytes.Buffer
	if _, err := m.Capture().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	r := NewMachine()
	if err := r.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if r.Get(3) != 10 || r.Get(4) != 2 || r.Get(5) != 0 {
		t.Errorf("restored registers 3, 4, 5 = %d, %d, %d; want 10, 2, 0", r.Get(3), r.Get(4), r.Get(5))
	}
}

func BenchmarkMachineGet(b *testing.B) {
	m := NewMachine()
	m.Apply(PutCommand(256, 1, 1))
	var sum uint64
	for i := 0; b.Loop(); i++ {
		sum += m.Get(uint32(i))
	}
	_ = sum
}
