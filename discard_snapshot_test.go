package raft

import (
	"io"
	"testing"
)

func TestDiscardSnapshotStore(t *testing.T) {
	store := NewDiscardSnapshotStore()
	sink, err := store.Create(1, 10, 3, snapTestConfiguration, 1, nil)
	if err != nil {
		t.Fatalf("Create = %v", err)
	}
	if _, ok := sink.(*DiscardSnapshotSink); !ok {
		t.Fatalf("Create returned a %T; want *DiscardSnapshotSink", sink)
	}
	if n, err := io.WriteString(sink, "dropped"); n != 7 || err != nil {
		t.Fatalf("Write = %d, %v; want 7, nil", n, err)
	}
	if id := sink.ID(); id != "discard" {
		t.Fatalf("ID = %q; want \"discard\"", id)
	}
	if err := sink.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := sink.Cancel(); err != nil {
		t.Fatalf("Cancel = %v", err)
	}
	if list, err := store.List(); list != nil || err != nil {
		t.Fatalf("List = %v, %v; want nil, nil", list, err)
	}
	_, _, err = store.Open("discard")
	if err == nil || err.Error() != "open is not supported" {
		t.Fatalf("Open = %v; want \"open is not supported\"", err)
	}
}
