package raft

import (
	"bytes"
	"fmt"
	"io"
	"reflect"
	"testing"
	"testing/synctest"
	"time"
)

// prefixPeerTransport encodes peers as "peer:<addr>", so tests can see
// that a store used the transport it was given. Only EncodePeer is
// implemented.
type prefixPeerTransport struct {
	Transport
}

func (prefixPeerTransport) EncodePeer(_ ServerID, addr ServerAddress) []byte {
	return []byte("peer:" + addr)
}

// snapTestConfiguration is the membership the snapshot tests record.
var snapTestConfiguration = Configuration{Servers: []Server{
	{Suffrage: Voter, ID: "n1", Address: "127.0.0.1:1"},
	{Suffrage: Nonvoter, ID: "n2", Address: "127.0.0.1:2"},
}}

// writeInmemSnapshot creates, fills and closes a snapshot.
func writeInmemSnapshot(t *testing.T, store *InmemSnapshotStore, index, term uint64, data string) string {
	t.Helper()
	sink, err := store.Create(1, index, term, snapTestConfiguration, 3, prefixPeerTransport{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(sink, data); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	return sink.ID()
}

// readStoredSnapshot opens id in store and returns its metadata and bytes.
func readStoredSnapshot(t *testing.T, store SnapshotStore, id string) (*SnapshotMeta, string) {
	t.Helper()
	meta, rc, err := store.Open(id)
	if err != nil {
		t.Fatalf("Open(%q): %v", id, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading snapshot %s: %v", id, err)
	}
	return meta, string(data)
}

func TestInmemSnapshotStoreRoundTrip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := NewInmemSnapshotStore()
		list, err := store.List()
		if err != nil || list == nil || len(list) != 0 {
			t.Fatalf("List of an empty store = %#v, %v; want an empty non-nil slice", list, err)
		}

		id := writeInmemSnapshot(t, store, 10, 3, "hello")
		// The bubble's clock starts at 2000-01-01T00:00:00Z.
		if want := "3-10-946684800000"; id != want {
			t.Fatalf("ID = %q; want %q", id, want)
		}
		want := &SnapshotMeta{
			Version:            1,
			ID:                 id,
			Index:              10,
			Term:               3,
			Peers:              encodePeers(snapTestConfiguration, prefixPeerTransport{}),
			Configuration:      snapTestConfiguration,
			ConfigurationIndex: 3,
			Size:               5,
		}
		list, err = store.List()
		if err != nil || len(list) != 1 || !reflect.DeepEqual(list[0], want) {
			t.Fatalf("List = %+v, %v; want [%+v]", list, err, want)
		}
		meta, data := readStoredSnapshot(t, store, id)
		if !reflect.DeepEqual(meta, want) || data != "hello" {
			t.Fatalf("Open = %+v, %q; want %+v, \"hello\"", meta, data, want)
		}
	})
}

func TestInmemSnapshotStoreErrors(t *testing.T) {
	store := NewInmemSnapshotStore()
	for _, v := range []SnapshotVersion{0, 2, -1} {
		_, err := store.Create(v, 1, 1, snapTestConfiguration, 1, nil)
		if want := fmt.Sprintf("unsupported snapshot version %d", v); err == nil || err.Error() != want {
			t.Errorf("Create(version %d) = %v; want %q", v, err, want)
		}
	}
	_, _, err := store.Open("1-2-3")
	if want := "[ERR] snapshot: failed to open snapshot id: 1-2-3"; err == nil || err.Error() != want {
		t.Fatalf("Open of an unknown ID = %v; want %q", err, want)
	}
	id := writeInmemSnapshot(t, store, 1, 1, "x")
	_, _, err = store.Open(id + "0")
	if want := "[ERR] snapshot: failed to open snapshot id: " + id + "0"; err == nil || err.Error() != want {
		t.Fatalf("Open of an unknown ID = %v; want %q", err, want)
	}
}

func TestInmemSnapshotStoreKeepsOnlyLatest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := NewInmemSnapshotStore()
		first := writeInmemSnapshot(t, store, 10, 1, "first")
		time.Sleep(time.Millisecond)
		second := writeInmemSnapshot(t, store, 20, 1, "second")
		list, _ := store.List()
		if len(list) != 1 || list[0].ID != second {
			t.Fatalf("List = %+v; want only %s", list, second)
		}
		if _, _, err := store.Open(first); err == nil {
			t.Fatal("the replaced snapshot can still be opened")
		}
	})
}

func TestInmemSnapshotSinkLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := NewInmemSnapshotStore()
		kept := writeInmemSnapshot(t, store, 10, 1, "kept")
		time.Sleep(time.Millisecond)

		// A snapshot is invisible until it is closed, and a cancelled one
		// never appears.
		sink, err := store.Create(1, 20, 1, snapTestConfiguration, 3, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sink.Write([]byte("dropped")); err != nil {
			t.Fatal(err)
		}
		if list, _ := store.List(); len(list) != 1 || list[0].ID != kept {
			t.Fatalf("List while writing = %+v; want only %s", list, kept)
		}
		if err := sink.Cancel(); err != nil {
			t.Fatal(err)
		}
		if err := sink.Cancel(); err != nil {
			t.Fatalf("second Cancel = %v", err)
		}
		if err := sink.Close(); err != nil {
			t.Fatalf("Close after Cancel = %v", err)
		}
		if _, err := sink.Write([]byte("late")); err == nil {
			t.Fatal("Write after Cancel succeeded")
		}
		if list, _ := store.List(); len(list) != 1 || list[0].ID != kept {
			t.Fatalf("List after Cancel = %+v; want only %s", list, kept)
		}

		// Closing twice is harmless; writing after Close fails.
		time.Sleep(time.Millisecond)
		sink, _ = store.Create(1, 30, 1, snapTestConfiguration, 3, nil)
		_, _ = sink.Write([]byte("ab"))
		_, _ = sink.Write([]byte("cd"))
		if err := sink.Close(); err != nil {
			t.Fatal(err)
		}
		if err := sink.Close(); err != nil {
			t.Fatalf("second Close = %v", err)
		}
		if err := sink.Cancel(); err != nil {
			t.Fatalf("Cancel after Close = %v", err)
		}
		if _, err := sink.Write([]byte("late")); err == nil {
			t.Fatal("Write after Close succeeded")
		}
		meta, data := readStoredSnapshot(t, store, sink.ID())
		if data != "abcd" || meta.Size != 4 {
			t.Fatalf("snapshot = %q of size %d; want \"abcd\" of size 4", data, meta.Size)
		}
	})
}

func TestInmemSnapshotStoreReadersAreStable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := NewInmemSnapshotStore()
		id := writeInmemSnapshot(t, store, 10, 1, "original")
		meta, rc, err := store.Open(id)
		if err != nil {
			t.Fatal(err)
		}
		// Changing what List and Open returned does not reach the store.
		meta.Configuration.Servers[0].ID = "changed"
		meta.Peers[0] = 'X'
		list, _ := store.List()
		list[0].Size = 99

		// A newer snapshot does not change the bytes an open reader sees.
		time.Sleep(time.Millisecond)
		writeInmemSnapshot(t, store, 20, 1, "replacement")
		data, _ := io.ReadAll(rc)
		if string(data) != "original" {
			t.Fatalf("open reader returned %q after a new snapshot; want \"original\"", data)
		}
		// Two readers of one snapshot do not share a position.
		latest, _ := store.List()
		_, a := readStoredSnapshot(t, store, latest[0].ID)
		_, b := readStoredSnapshot(t, store, latest[0].ID)
		if a != "replacement" || b != "replacement" {
			t.Fatalf("two reads returned %q and %q", a, b)
		}
		got, _ := store.List()
		if got[0].Size != int64(len("replacement")) || got[0].Configuration.Servers[0].ID != "n1" ||
			!bytes.Equal(got[0].Peers, encodePeers(snapTestConfiguration, prefixPeerTransport{})) {
			t.Fatalf("store's metadata was changed through a returned copy: %+v", got[0])
		}
	})
}

func TestInmemSnapshotStoreNilTransport(t *testing.T) {
	store := NewInmemSnapshotStore()
	sink, err := store.Create(1, 1, 1, snapTestConfiguration, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	list, _ := store.List()
	// Only the voter is a peer, encoded as its address.
	want, _ := encodeMsgpack([][]byte{[]byte("127.0.0.1:1")})
	if !bytes.Equal(list[0].Peers, want) {
		t.Fatalf("Peers = %x; want %x", list[0].Peers, want)
	}
}

func TestInmemSnapshotStoreConcurrentUse(t *testing.T) {
	readSnapshotsWhileWriting(t, NewInmemSnapshotStore(), 3, 200)
}
