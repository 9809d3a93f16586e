package raftboltdb

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/quorumkit/raft"
	"go.etcd.io/bbolt"
)

// Damage done to the file after it was checked (here by truncating it
// under the open store) makes bbolt fault on the memory map. The fault
// comes back as an error wrapping ErrCorrupt, and the store refuses all
// further work except Close.
func TestFaultAfterOpenIsAnError(t *testing.T) {
	path := buildStore(t, 2000, 100)
	s := openStoreAt(t, path, Options{BoltOptions: &bbolt.Options{Timeout: testTimeout}})
	if err := os.Truncate(path, 4*smallPages); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	err := s.GetLog(1500, &l)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("GetLog on a truncated file = %v; want ErrCorrupt", err)
	}
	t.Logf("GetLog: %v", err)
	if _, err := s.FirstIndex(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("FirstIndex after the fault = %v; want the store to refuse", err)
	}
	if err := s.StoreLog(&raft.Log{Index: 2001}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("StoreLog after the fault = %v; want the store to refuse", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close after the fault: %v", err)
	}
}

// Garbage written over a page of the open store makes bbolt panic; the
// panic comes back as an error.
func TestPanicAfterOpenIsAnError(t *testing.T) {
	path := buildStore(t, 400, 40)
	_, ps, pages := inspect(t, path)
	s := openStoreAt(t, path, Options{BoltOptions: &bbolt.Options{Timeout: testTimeout}})
	for _, p := range pages {
		if p.depth >= 2 {
			patch(t, path, p.id*ps, make([]byte, ps)) // zero every leaf of the logs bucket
		}
	}
	var l raft.Log
	err := s.GetLog(200, &l)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("GetLog over a zeroed page = %v; want ErrCorrupt", err)
	}
	t.Logf("GetLog: %v", err)
	if err := s.DeleteRange(1, 5); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("DeleteRange after the panic = %v; want the store to refuse", err)
	}
}

// When bbolt panics while holding its own locks (here: both meta pages
// overwritten under the open store, found as a read begins), closing it
// would wait forever. Close gives up after a while and says so.
func TestCloseAfterFailureDoesNotHang(t *testing.T) {
	prev := closeWait
	t.Cleanup(func() { closeWait = prev }) // after the store's own cleanup
	closeWait = 100 * time.Millisecond
	path := buildStore(t, 50, 40)
	_, ps, _ := inspect(t, path)
	s := openStoreAt(t, path, Options{BoltOptions: &bbolt.Options{Timeout: testTimeout}})
	patch(t, path, 0, make([]byte, 2*ps))
	if _, err := s.LastIndex(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("LastIndex with both meta pages gone = %v; want ErrCorrupt", err)
	}
	err := s.Close()
	if err == nil || !strings.Contains(err.Error(), "stays open") {
		t.Fatalf("Close after bbolt stopped holding its locks = %v; want an error saying the file stays open", err)
	}
	t.Logf("Close: %v", err)
}
