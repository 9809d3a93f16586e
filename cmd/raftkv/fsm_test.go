package main

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/quorumkit/raft"
)

// Values are bytes: one that is not UTF-8 survives the log, a snapshot
// and a compare-and-set unchanged.
func TestKV_BinaryValuesRoundTrip(t *testing.T) {
	n := startNode(t, "n1", nodeOpts{bootstrap: true})
	leaderOf(t, n)
	bin := "\xff\x00\xfe\xc3"
	eventually(t, "put a binary value", func() error { return n.want(http.StatusNoContent, "PUT", "/kv/bin", bin) })
	if code, body, err := n.do("GET", "/kv/bin", ""); err != nil || code != http.StatusOK || body != bin {
		t.Fatalf("read back: %d %q %v", code, body, err)
	}
	// A header cannot carry control bytes, so an expected value can
	// only be binary above them.
	high := "\xff\xfeA\xc3"
	if err := n.want(http.StatusNoContent, "PUT", "/kv/bin", high); err != nil {
		t.Fatal(err)
	}
	if err := n.want(http.StatusNoContent, "PUT", "/kv/bin", "text", "If-Match", high); err != nil {
		t.Fatalf("compare-and-set from a binary value: %v", err)
	}
	if code, body, _ := n.do("GET", "/kv/bin", ""); code != http.StatusOK || body != "text" {
		t.Fatalf("after the compare-and-set: %d %q", code, body)
	}
}

// memSink is a SnapshotSink over a buffer.
type memSink struct{ bytes.Buffer }

func (*memSink) ID() string    { return "mem" }
func (*memSink) Cancel() error { return nil }
func (*memSink) Close() error  { return nil }

var _ raft.SnapshotSink = (*memSink)(nil)

func TestFSM_SnapshotFormats(t *testing.T) {
	src := newKV()
	src.data = map[string]string{"text": "héllo", "bin": "\xff\x00", "raftkv_snapshot": "2", "empty": ""}
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	dst := newKV()
	if err := dst.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatal(err)
	}
	if len(dst.data) != len(src.data) {
		t.Fatalf("restored %v, want %v", dst.data, src.data)
	}
	for k, v := range src.data {
		if dst.data[k] != v {
			t.Fatalf("restored %s=%q, want %q", k, dst.data[k], v)
		}
	}
	// A snapshot written by an earlier raftkv: a bare object of strings,
	// even one holding the key that marks the current format.
	old := newKV()
	if err := old.Restore(io.NopCloser(bytes.NewBufferString(`{"greeting":"hello","raftkv_snapshot":"x","_members/n1":"127.0.0.1:8001"}` + "\n"))); err != nil {
		t.Fatal(err)
	}
	if old.data["greeting"] != "hello" || old.data["raftkv_snapshot"] != "x" || len(old.data) != 3 {
		t.Fatalf("restored the old format as %v", old.data)
	}
	for _, bad := range []string{``, `[]`, `{"a":1}`, `{"raftkv_snapshot":2,"data":[]}`, `{"raftkv_snapshot":2,"data":{},"raw":{"a":"!"}}`} {
		if err := newKV().Restore(io.NopCloser(bytes.NewBufferString(bad))); err == nil {
			t.Errorf("restored %q without an error", bad)
		}
	}
}

// Log entries written before values could be binary still apply.
func TestFSM_OldLogEntriesApply(t *testing.T) {
	f := newKV()
	for i, e := range []string{`{"op":"put","key":"a","value":"1"}`, `{"op":"put","key":"b","value":"2"}`, `{"op":"delete","key":"b"}`} {
		if r := f.Apply(&raft.Log{Index: uint64(i + 1), Data: []byte(e)}); r != nil {
			t.Fatalf("applying %s: %v", e, r)
		}
	}
	if len(f.data) != 1 || f.data["a"] != "1" {
		t.Fatalf("state %v", f.data)
	}
}
