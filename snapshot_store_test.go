package raft

import (
	"bytes"
	"io"
	"slices"
	"sync"
	"testing"
)

// readSnapshotsWhileWriting stores snapshots 1..writes (snapshot i holds i
// bytes of value i) while readers goroutines list and open every snapshot
// they see, and checks each one they read whole. A snapshot may be reaped
// between List and Open; an Open that fails for a snapshot still listed
// afterwards is a failure.
func readSnapshotsWhileWriting(t *testing.T, store SnapshotStore, readers, writes int) {
	t.Helper()
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range readers {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if !readEverySnapshot(t, store) {
					return
				}
			}
		})
	}
	for i := 1; i <= writes; i++ {
		sink, err := store.Create(1, uint64(i), 1, snapTestConfiguration, 1, nil)
		if err != nil {
			t.Fatalf("Create %d: %v", i, err)
		}
		if _, err := sink.Write(bytes.Repeat([]byte{byte(i)}, i)); err != nil {
			t.Fatalf("Write %d: %v", i, err)
		}
		if err := sink.Close(); err != nil {
			t.Fatalf("Close %d: %v", i, err)
		}
	}
	close(done)
	wg.Wait()
}

// readEverySnapshot lists store and reads each snapshot listed. It reports
// false after the first failure, which it has already recorded.
func readEverySnapshot(t *testing.T, store SnapshotStore) bool {
	list, err := store.List()
	if err != nil {
		t.Errorf("List: %v", err)
		return false
	}
	for _, m := range list {
		meta, rc, err := store.Open(m.ID)
		if err != nil {
			if stillListed(store, m.ID) {
				t.Errorf("Open(%s) of a listed snapshot: %v", m.ID, err)
				return false
			}
			continue // reaped or replaced meanwhile
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		want := bytes.Repeat([]byte{byte(meta.Index)}, int(meta.Index))
		if err != nil || int64(len(data)) != meta.Size || !bytes.Equal(data, want) {
			t.Errorf("snapshot %s: read %d bytes (%v), want %d bytes of %d", m.ID, len(data), err, len(want), meta.Index)
			return false
		}
	}
	return true
}

func stillListed(store SnapshotStore, id string) bool {
	list, err := store.List()
	return err == nil && slices.ContainsFunc(list, func(m *SnapshotMeta) bool { return m.ID == id })
}
