package raftboltdb

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/quorumkit/raft"
	"go.etcd.io/bbolt"
)

// testTimeout bounds the file-lock wait in tests, so that a leaked lock
// fails a test quickly instead of stalling it for DefaultOpenTimeout.
const testTimeout = 5 * time.Second

// openTestStore opens a store at a fresh path in a temporary directory
// and closes it when the test ends.
func openTestStore(t testing.TB) *BoltStore {
	t.Helper()
	return openStoreAt(t, filepath.Join(t.TempDir(), "raft.db"), Options{})
}

// openStoreAt opens the store at path with opts (Path is set from path)
// and closes it when the test ends.
func openStoreAt(t testing.TB, path string, opts Options) *BoltStore {
	t.Helper()
	opts.Path = path
	if opts.BoltOptions == nil {
		opts.BoltOptions = &bbolt.Options{Timeout: testTimeout}
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// entryData returns the payload of the entry at index: its length varies
// with the index and its bytes say which index they belong to, so a test
// can tell a whole entry from a wrong or torn one.
func entryData(index uint64, size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(index*31 + uint64(i))
	}
	if size >= 8 {
		binary.BigEndian.PutUint64(b, index)
	}
	return b
}

// makeLogs returns n entries from index first, each with size bytes of
// data and metadata that varies with the index.
func makeLogs(first uint64, n, size int) []*raft.Log {
	logs := make([]*raft.Log, n)
	for i := range logs {
		index := first + uint64(i)
		logs[i] = &raft.Log{
			Index:      index,
			Term:       index/10 + 1,
			Type:       raft.LogType(index % 6),
			Data:       entryData(index, size),
			Extensions: []byte(fmt.Sprintf("ext-%d", index)),
			AppendedAt: time.Unix(1_700_000_000+int64(index), int64(index)).UTC(),
		}
	}
	return logs
}

// sameLog reports how got differs from want, or "" if it does not. Times
// are compared with Equal: their location is not part of the format.
func sameLog(got, want *raft.Log) string {
	switch {
	case got.Index != want.Index, got.Term != want.Term, got.Type != want.Type:
		return fmt.Sprintf("header: got (%d, %d, %v), want (%d, %d, %v)", got.Index, got.Term, got.Type, want.Index, want.Term, want.Type)
	case !bytes.Equal(got.Data, want.Data) || (got.Data == nil) != (want.Data == nil):
		return fmt.Sprintf("Data: got %q, want %q", got.Data, want.Data)
	case !bytes.Equal(got.Extensions, want.Extensions) || (got.Extensions == nil) != (want.Extensions == nil):
		return fmt.Sprintf("Extensions: got %q, want %q", got.Extensions, want.Extensions)
	case !got.AppendedAt.Equal(want.AppendedAt):
		return fmt.Sprintf("AppendedAt: got %v, want %v", got.AppendedAt, want.AppendedAt)
	}
	return ""
}

// mustStore stores logs or fails the test.
func mustStore(t testing.TB, s *BoltStore, logs []*raft.Log) {
	t.Helper()
	if err := s.StoreLogs(logs); err != nil {
		t.Fatalf("StoreLogs: %v", err)
	}
}

// checkRange checks that the store holds exactly the indexes first..last
// (none if last < first), each equal to want(index).
func checkRange(t testing.TB, s *BoltStore, first, last uint64, want func(uint64) *raft.Log) {
	t.Helper()
	if last < first {
		first, last = 0, 0
	}
	gotFirst, err := s.FirstIndex()
	if err != nil {
		t.Fatalf("FirstIndex: %v", err)
	}
	gotLast, err := s.LastIndex()
	if err != nil {
		t.Fatalf("LastIndex: %v", err)
	}
	if gotFirst != first || gotLast != last {
		t.Fatalf("FirstIndex, LastIndex = %d, %d; want %d, %d", gotFirst, gotLast, first, last)
	}
	if first == 0 {
		return
	}
	var got raft.Log
	for i := first; i <= last; i++ {
		if err := s.GetLog(i, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		if diff := sameLog(&got, want(i)); diff != "" {
			t.Fatalf("GetLog(%d): %s", i, diff)
		}
	}
	for _, i := range []uint64{first - 1, last + 1} {
		if err := s.GetLog(i, &got); err != raft.ErrLogNotFound {
			t.Fatalf("GetLog(%d) outside %d..%d = %v; want ErrLogNotFound", i, first, last, err)
		}
	}
}
