package raftboltdb

import (
	"bytes"
	"errors"
	"testing"
)

func TestStableStore(t *testing.T) {
	s := openTestStore(t)
	if err := s.Set([]byte("LastVoteCand"), []byte("127.0.0.1:8300")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 42); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get([]byte("LastVoteCand"))
	if err != nil || string(got) != "127.0.0.1:8300" {
		t.Fatalf("Get = %q, %v", got, err)
	}
	got[0] = 'X' // a copy: changing it changes nothing stored
	if again, _ := s.Get([]byte("LastVoteCand")); string(again) != "127.0.0.1:8300" {
		t.Fatalf("Get after changing the returned slice = %q", again)
	}
	if n, err := s.GetUint64([]byte("CurrentTerm")); n != 42 || err != nil {
		t.Fatalf("GetUint64 = %d, %v", n, err)
	}
	if raw := rawValue(t, s, bucketConf, []byte("CurrentTerm")); !bytes.Equal(raw, []byte{0, 0, 0, 0, 0, 0, 0, 42}) {
		t.Fatalf("SetUint64 stored %x; want 8 big-endian bytes", raw)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 43); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.GetUint64([]byte("CurrentTerm")); n != 43 {
		t.Fatalf("GetUint64 after overwrite = %d", n)
	}
}

// A missing key is ErrKeyNotFound itself, whose text raft recognises.
func TestStableStoreMissingKey(t *testing.T) {
	s := openTestStore(t)
	if v, err := s.Get([]byte("nope")); err != ErrKeyNotFound || v != nil {
		t.Fatalf("Get(missing) = %q, %v; want nil, ErrKeyNotFound", v, err)
	}
	if n, err := s.GetUint64([]byte("nope")); err != ErrKeyNotFound || n != 0 {
		t.Fatalf("GetUint64(missing) = %d, %v; want 0, ErrKeyNotFound", n, err)
	}
	if ErrKeyNotFound.Error() != "not found" {
		t.Fatalf("ErrKeyNotFound says %q", ErrKeyNotFound)
	}
}

func TestStableStoreOddValues(t *testing.T) {
	s := openTestStore(t)
	// An empty value reads back as nil, as in raft-boltdb.
	if err := s.Set([]byte("empty"), []byte{}); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("empty")); v != nil || err != nil {
		t.Fatalf("Get(empty value) = %q, %v; want nil, nil", v, err)
	}
	if err := s.Set([]byte("short"), []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUint64([]byte("short")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("GetUint64 of a 3-byte value = %v; want ErrCorrupt", err)
	}
	if err := s.Set(nil, []byte("x")); err == nil {
		t.Fatalf("Set with an empty key succeeded")
	}
}
