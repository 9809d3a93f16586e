package main

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"strings"
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
	for _, bad := range []string{``, `[]`, `{"a":1}`, `{"raftkv_snapshot":2,"data":[]}`, `{"raftkv_snapshot":2,"data":{},"raw":{"a":"!"}}`,
		`null`, `{"raftkv_snapshot":2,"data":null}`, `{"raftkv_snapshot":2}`, `{"raftkv_snapshot":3,"data":{}}`,
		`{"raftkv_snapshot":2,"data":{}} {}`, `{"a":"x"}{"b":"y"}`, `{"a":"x"}` + "\n" + `garbage`} {
		kv := newKV()
		kv.data["before"] = "kept"
		if err := kv.Restore(io.NopCloser(bytes.NewBufferString(bad))); err == nil {
			t.Errorf("restored %q without an error", bad)
		}
		if len(kv.data) != 1 || kv.data["before"] != "kept" {
			t.Errorf("a refused %q changed the map to %q", bad, kv.data)
		}
	}
	err = newKV().Restore(io.NopCloser(bytes.NewBufferString(`{"raftkv_snapshot":3,"data":{}}`)))
	if err == nil || !strings.Contains(err.Error(), "format 3") {
		t.Errorf("a snapshot of a newer format: %v, want an error naming format 3", err)
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

// FuzzFSMRestore restores arbitrary bytes as a snapshot. A snapshot that
// restores must write (Persist) and restore again to the same map; one
// that does not must leave the map as it was.
func FuzzFSMRestore(f *testing.F) {
	for _, seed := range []string{
		`{"raftkv_snapshot":2,"data":{"a":"x","b":""},"raw":{"c":"/w=="}}` + "\n",
		`{"greeting":"hello","raftkv_snapshot":"x"}`,
		`{"raftkv_snapshot":2,"data":null}`, `{"raftkv_snapshot":2.0,"data":{}}`,
		`{"raftkv_snapshot":2,"data":{"a":"x"},"raw":{"a":"AA=="}}`,
		`{"a":"\xff"}`, `null`, `{"a":1}`, `{"a":"x"`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		kv := newKV()
		kv.data["before"] = "kept"
		if err := kv.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
			if len(kv.data) != 1 || kv.data["before"] != "kept" {
				t.Fatalf("a failed Restore (%v) changed the map to %q", err, kv.data)
			}
			return
		}
		snap, err := kv.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		var sink memSink
		if err := snap.Persist(&sink); err != nil {
			t.Fatalf("Persist of a restored map: %v", err)
		}
		again := newKV()
		if err := again.Restore(io.NopCloser(&sink)); err != nil {
			t.Fatalf("restoring what Persist wrote: %v", err)
		}
		if !maps.Equal(kv.data, again.data) {
			t.Fatalf("a snapshot round trip changed the map:\n%q\n%q", kv.data, again.data)
		}
	})
}

// FuzzFSMApply applies an arbitrary log entry to a map holding one key.
// The answer is nil, a CAS mismatch or an error; only nil may change the
// map, and then only as the decoded command says.
func FuzzFSMApply(f *testing.F) {
	for _, c := range []command{
		{Op: "put", Key: "k"}, command{Op: "put", Key: "n"}.withValue("\xff"),
		{Op: "delete", Key: "k"}, {Op: "cas", Key: "k", Expected: "v", Value: "w"},
		{Op: "cas", Key: "k", Expected: "x", Value: "w"}, {Op: "cas", Key: "n", Value: "w"},
		{Op: "drop", Key: "k"},
	} {
		f.Add(c.encode())
	}
	f.Add([]byte(`{"op":"put","key":"k","value_raw":"!"}`))
	f.Add([]byte(`{"op":"put","key":"k","value":"a","value_raw":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		kv := newKV()
		kv.data["k"] = "v"
		res := kv.Apply(&raft.Log{Index: 7, Data: data})
		if res != nil {
			if _, ok := res.(error); !ok {
				t.Fatalf("Apply returned %T %v, want nil or an error", res, res)
			}
			if len(kv.data) != 1 || kv.data["k"] != "v" {
				t.Fatalf("a refused entry (%v) changed the map to %q", res, kv.data)
			}
			return
		}
		var c command
		if err := json.Unmarshal(data, &c); err != nil {
			t.Fatalf("Apply accepted an entry that does not decode: %v", err)
		}
		want := map[string]string{"k": "v"}
		switch c.Op {
		case "put", "cas":
			want[c.Key] = c.value()
		case "delete":
			delete(want, c.Key)
		default:
			t.Fatalf("Apply accepted operation %q", c.Op)
		}
		if !maps.Equal(kv.data, want) {
			t.Fatalf("Apply(%s) made %q, want %q", data, kv.data, want)
		}
	})
}
