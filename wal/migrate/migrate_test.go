package migrate_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/quorumkit/raft"
	"github.com/quorumkit/raft/raftboltdb"
	"github.com/quorumkit/raft/wal"
	"github.com/quorumkit/raft/wal/migrate"
)

func entry(i uint64) *raft.Log {
	return &raft.Log{
		Index:      i,
		Term:       i/50 + 1,
		Type:       raft.LogType(i % 6),
		Data:       bytes.Repeat([]byte{byte(i)}, int(i%300)),
		Extensions: []byte{byte(i >> 8), byte(i)},
		AppendedAt: time.Unix(1_700_000_000+int64(i), 0).UTC(),
	}
}

// TestMigrateFromBoltStore copies a raftboltdb store (compacted, so its
// log starts above 1) into a new WAL with small segments, reopens the WAL
// and finds every entry and stable value.
func TestMigrateFromBoltStore(t *testing.T) {
	dir := t.TempDir()
	src, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var logs []*raft.Log
	for i := uint64(1); i <= 900; i++ {
		logs = append(logs, entry(i))
	}
	if err := src.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := src.DeleteRange(1, 99); err != nil {
		t.Fatal(err)
	}
	src.SetUint64([]byte("CurrentTerm"), 19)
	src.SetUint64([]byte("LastVoteTerm"), 18)
	src.Set([]byte("LastVoteCand"), []byte("10.0.0.7:8300"))
	src.Set([]byte("custom"), []byte("kept"))

	walDir := filepath.Join(dir, "wal")
	open := func() *wal.WAL {
		w, err := wal.Open(walDir, wal.WithSegmentSize(16<<10), wal.WithLogger(hclog.NewNullLogger()))
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	if err := mkdir(walDir); err != nil {
		t.Fatal(err)
	}
	dst := open()
	progress := make(chan string, 1000)
	if err := migrate.CopyLogs(context.Background(), dst, src, 8<<10, progress); err != nil {
		t.Fatal(err)
	}
	lines := 0
	for range progress {
		lines++
	}
	if lines < 3 {
		t.Errorf("only %d progress lines", lines)
	}
	if err := migrate.CopyStable(context.Background(), dst, src, [][]byte{[]byte("custom")}, nil, nil); err != nil {
		t.Fatal(err)
	}
	dst.Close()

	dst = open()
	defer dst.Close()
	first, _ := dst.FirstIndex()
	last, _ := dst.LastIndex()
	if first != 100 || last != 900 {
		t.Fatalf("WAL holds %d..%d, want 100..900", first, last)
	}
	for i := first; i <= last; i++ {
		var got raft.Log
		if err := dst.GetLog(i, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		want := entry(i)
		if got.Term != want.Term || got.Type != want.Type || !bytes.Equal(got.Data, want.Data) ||
			!bytes.Equal(got.Extensions, want.Extensions) || !got.AppendedAt.Equal(want.AppendedAt) {
			t.Fatalf("entry %d differs: %+v", i, got)
		}
	}
	for key, want := range map[string]uint64{"CurrentTerm": 19, "LastVoteTerm": 18} {
		if got, err := dst.GetUint64([]byte(key)); err != nil || got != want {
			t.Errorf("%s = %d, %v; want %d", key, got, err, want)
		}
	}
	for key, want := range map[string]string{"LastVoteCand": "10.0.0.7:8300", "custom": "kept"} {
		if got, err := dst.Get([]byte(key)); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", key, got, err, want)
		}
	}
}

// TestMigrateEmptyStore copies a store raft never used: nothing to copy,
// and no error for the missing stable keys.
func TestMigrateEmptyStore(t *testing.T) {
	dir := t.TempDir()
	src, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := wal.Open(dir, wal.WithLogger(hclog.NewNullLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if err := migrate.CopyLogs(context.Background(), dst, src, 1<<20, nil); err != nil {
		t.Fatal(err)
	}
	if err := migrate.CopyStable(context.Background(), dst, src, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if last, _ := dst.LastIndex(); last != 0 {
		t.Fatalf("LastIndex %d", last)
	}
}
