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
