package raft

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
)

// snapLogBuffer collects a store's log output; safe for concurrent use.
type snapLogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *snapLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *snapLogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// openFileSnapTestStore opens a store in base that logs to the returned
// buffer.
func openFileSnapTestStore(t *testing.T, base string, retain int) (*FileSnapshotStore, *snapLogBuffer) {
	t.Helper()
	logs := &snapLogBuffer{}
	store, err := NewFileSnapshotStore(base, retain, logs)
	if err != nil {
		t.Fatalf("NewFileSnapshotStore: %v", err)
	}
	return store, logs
}

// writeFileSnapshot creates, fills and closes a snapshot and returns its ID.
func writeFileSnapshot(t testing.TB, store *FileSnapshotStore, index, term uint64, data []byte) string {
	t.Helper()
	sink, err := store.Create(1, index, term, snapTestConfiguration, 3, nil)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := sink.Write(data); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := sink.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return sink.ID()
}

// snapDirNames returns the sorted entries of base/snapshots.
func snapDirNames(t *testing.T, base string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(base, snapshotsDirName))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// listedIDs returns the IDs List reports, in its order.
func listedIDs(t *testing.T, store *FileSnapshotStore) []string {
	t.Helper()
	list, err := store.List()
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var ids []string
	for _, m := range list {
		ids = append(ids, m.ID)
	}
	return ids
}

// snapPatternBytes returns n bytes where byte i is i % 251.
func snapPatternBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

func TestFileSnapshotStoreRoundTrip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := t.TempDir()
		store, _ := openFileSnapTestStore(t, base, 2)
		if ids := listedIDs(t, store); len(ids) != 0 {
			t.Fatalf("List of a new store = %v", ids)
		}

		sink, err := store.Create(1, 10, 3, snapTestConfiguration, 3, prefixPeerTransport{})
		if err != nil {
			t.Fatal(err)
		}
		id := sink.ID()
		if want := "3-10-946684800000"; id != want {
			t.Fatalf("ID = %q; want %q", id, want)
		}
		if got, want := snapDirNames(t, base), []string{id + ".tmp"}; !slices.Equal(got, want) {
			t.Fatalf("while writing, snapshots/ holds %v; want %v", got, want)
		}
		if ids := listedIDs(t, store); len(ids) != 0 {
			t.Fatalf("List shows an unfinished snapshot: %v", ids)
		}
		// Several writes crossing the sink's buffer size.
		data := snapPatternBytes(3*snapshotBufferSize + 17)
		for chunk := range slices.Chunk(data, 10000) {
			if n, err := sink.Write(chunk); n != len(chunk) || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
		}
		if err := sink.Close(); err != nil {
			t.Fatal(err)
		}
		if got, want := snapDirNames(t, base), []string{id}; !slices.Equal(got, want) {
			t.Fatalf("after Close, snapshots/ holds %v; want %v", got, want)
		}
		onDisk, err := os.ReadFile(filepath.Join(base, snapshotsDirName, id, snapshotStateFile))
		if err != nil || !bytes.Equal(onDisk, data) {
			t.Fatalf("state.bin does not hold exactly the bytes written (%d bytes, %v)", len(onDisk), err)
		}

		want := &SnapshotMeta{
			Version:            1,
			ID:                 id,
			Index:              10,
			Term:               3,
			Peers:              encodePeers(snapTestConfiguration, prefixPeerTransport{}),
			Configuration:      snapTestConfiguration,
			ConfigurationIndex: 3,
			Size:               int64(len(data)),
		}
		list, err := store.List()
		if err != nil || len(list) != 1 || !reflect.DeepEqual(list[0], want) {
			t.Fatalf("List = %+v, %v; want [%+v]", list, err, want)
		}
		meta, got := readStoredSnapshot(t, store, id)
		if !reflect.DeepEqual(meta, want) || got != string(data) {
			t.Fatalf("Open = %+v and %d bytes; want %+v and the bytes written", meta, len(got), want)
		}
	})
}

// TestFileSnapshotMetaMatchesCompatExample writes the snapshot behind the
// meta.json a hashicorp/raft store wrote (the example below) and compares
// the file byte for byte.
func TestFileSnapshotMetaMatchesCompatExample(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Move the bubble's clock to the example's millisecond.
		time.Sleep(time.Until(time.UnixMilli(1795434449549)))
		base := t.TempDir()
		store, _ := openFileSnapTestStore(t, base, 1)
		oneVoter := Configuration{Servers: []Server{{Suffrage: Voter, ID: "n1", Address: "127.0.0.1:1"}}}
		sink, err := store.Create(1, 10, 3, oneVoter, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		tmpMeta := filepath.Join(base, snapshotsDirName, sink.ID()+".tmp", snapshotMetaFileName)
		atCreate, err := os.ReadFile(tmpMeta)
		if err != nil {
			t.Fatal(err)
		}
		const wantAtCreate = `{"Version":1,"ID":"3-10-1795434449549","Index":10,"Term":3,"Peers":"kasxMjcuMC4wLjE6MQ==",` +
			`"Configuration":{"Servers":[{"Suffrage":0,"ID":"n1","Address":"127.0.0.1:1"}]},"ConfigurationIndex":1,"Size":0,"CRC":null}` + "\n"
		if string(atCreate) != wantAtCreate {
			t.Fatalf("meta.json at Create:\n got %s\nwant %s", atCreate, wantAtCreate)
		}
		if _, err := io.WriteString(sink, "hello"); err != nil {
			t.Fatal(err)
		}
		if err := sink.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(base, snapshotsDirName, sink.ID(), snapshotMetaFileName))
		if err != nil {
			t.Fatal(err)
		}
		const want = `{"Version":1,"ID":"3-10-1795434449549","Index":10,"Term":3,"Peers":"kasxMjcuMC4wLjE6MQ==",` +
			`"Configuration":{"Servers":[{"Suffrage":0,"ID":"n1","Address":"127.0.0.1:1"}]},"ConfigurationIndex":1,"Size":5,"CRC":"mx7a5du5N7E="}` + "\n"
		if string(got) != want {
			t.Fatalf("meta.json:\n got %s\nwant %s", got, want)
		}
	})
}

func TestFileSnapshotStoreOrderAndRetention(t *testing.T) {
	type snap struct{ term, index uint64 }
	cases := []struct {
		name    string
		retain  int
		created []snap
		// listed are positions in created, newest first.
		listed []int
	}{
		{name: "retain one keeps the latest", retain: 1,
			created: []snap{{1, 10}, {1, 20}, {1, 30}, {1, 40}}, listed: []int{3}},
		{name: "term before index", retain: 3,
			created: []snap{{1, 50}, {2, 10}, {1, 60}, {3, 5}}, listed: []int{3, 1, 2}},
		{name: "same term and index ordered by ID", retain: 3,
			created: []snap{{2, 15}, {1, 10}, {2, 15}, {1, 20}}, listed: []int{2, 0, 3}},
		// Like the reference, retention follows the order, not the time of
		// creation: an older term's snapshot is reaped at once.
		{name: "older term reaped at once", retain: 1,
			created: []snap{{2, 5}, {1, 100}}, listed: []int{0}},
		{name: "fewer than retain", retain: 5,
			created: []snap{{1, 1}, {1, 2}}, listed: []int{1, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				base := t.TempDir()
				store, _ := openFileSnapTestStore(t, base, tc.retain)
				var ids []string
				for _, s := range tc.created {
					ids = append(ids, writeFileSnapshot(t, store, s.index, s.term, []byte("x")))
					time.Sleep(time.Millisecond) // distinct IDs
				}
				var want []string
				for _, i := range tc.listed {
					want = append(want, ids[i])
				}
				if got := listedIDs(t, store); !slices.Equal(got, want) {
					t.Fatalf("List = %v; want %v", got, want)
				}
				// Reaping left exactly the listed snapshots on disk.
				slices.Sort(want)
				if got := snapDirNames(t, base); !slices.Equal(got, want) {
					t.Fatalf("snapshots/ holds %v; want %v", got, want)
				}
			})
		})
	}
}

func TestFileSnapshotStoreReapSnapshots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := t.TempDir()
		wide, _ := openFileSnapTestStore(t, base, 3)
		if err := wide.ReapSnapshots(); err != nil {
			t.Fatalf("ReapSnapshots of an empty store = %v", err)
		}
		var newest string
		for i := uint64(1); i <= 3; i++ {
			newest = writeFileSnapshot(t, wide, i, 1, []byte("x"))
			time.Sleep(time.Millisecond)
		}
		narrow, logs := openFileSnapTestStore(t, base, 1)
		if got := len(snapDirNames(t, base)); got != 3 {
			t.Fatalf("opening a store reaped: %d snapshots left; want 3", got)
		}
		if err := narrow.ReapSnapshots(); err != nil {
			t.Fatal(err)
		}
		if got := snapDirNames(t, base); !slices.Equal(got, []string{newest}) {
			t.Fatalf("after ReapSnapshots, snapshots/ holds %v; want [%s]", got, newest)
		}
		if !strings.Contains(logs.String(), "reaping snapshot") {
			t.Fatalf("reaping was not logged:\n%s", logs)
		}
	})
}

func TestFileSnapshotSinkCancel(t *testing.T) {
	base := t.TempDir()
	store, _ := openFileSnapTestStore(t, base, 2)
	sink, err := store.Create(1, 5, 1, snapTestConfiguration, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write([]byte("partial")); err != nil {
		t.Fatal(err)
	}
	if err := sink.Cancel(); err != nil {
		t.Fatalf("Cancel = %v", err)
	}
	if names := snapDirNames(t, base); len(names) != 0 {
		t.Fatalf("Cancel left %v", names)
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
	if ids := listedIDs(t, store); len(ids) != 0 {
		t.Fatalf("List after Cancel = %v", ids)
	}
}

func TestFileSnapshotSinkCloseTwice(t *testing.T) {
	store, _ := openFileSnapTestStore(t, t.TempDir(), 2)
	sink, _ := store.Create(1, 5, 1, snapTestConfiguration, 1, nil)
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
	// The snapshot, empty, survived the Cancel.
	if meta, data := readStoredSnapshot(t, store, sink.ID()); meta.Size != 0 || data != "" {
		t.Fatalf("snapshot = %+v, %q; want an empty one", meta, data)
	}
}

func TestFileSnapshotSinkCloseFailureRemovesSnapshot(t *testing.T) {
	base := t.TempDir()
	store, _ := openFileSnapTestStore(t, base, 2)
	sink, _ := store.Create(1, 5, 1, snapTestConfiguration, 1, nil)
	_, _ = sink.Write([]byte("data"))
	// Pull the directory away: meta.json can no longer be written.
	if err := os.RemoveAll(filepath.Join(base, snapshotsDirName, sink.ID()+".tmp")); err != nil {
		t.Fatal(err)
	}
	err := sink.Close()
	if err == nil || !strings.HasPrefix(err.Error(), "finishing snapshot "+sink.ID()+": ") {
		t.Fatalf("Close = %v; want an error naming the snapshot", err)
	}
	if names := snapDirNames(t, base); len(names) != 0 {
		t.Fatalf("a failed Close left %v", names)
	}
}

func TestFileSnapshotStoreRemovesUnfinishedAtOpen(t *testing.T) {
	base := t.TempDir()
	store, _ := openFileSnapTestStore(t, base, 2)
	good := writeFileSnapshot(t, store, 1, 1, []byte("good"))
	// A snapshot that was being written when the process stopped.
	crashed, err := store.Create(1, 2, 1, snapTestConfiguration, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = crashed.Write([]byte("half"))
	root := filepath.Join(base, snapshotsDirName)
	if err := os.MkdirAll(filepath.Join(root, "9-9-9.tmp", "nested"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Not ours: a file with the suffix and a directory without it.
	if err := os.WriteFile(filepath.Join(root, "notes.tmp"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "keep-me"), 0o755); err != nil {
		t.Fatal(err)
	}

	reopened, logs := openFileSnapTestStore(t, base, 2)
	want := []string{good, "keep-me", "notes.tmp"}
	slices.Sort(want)
	if got := snapDirNames(t, base); !slices.Equal(got, want) {
		t.Fatalf("after reopening, snapshots/ holds %v; want %v", got, want)
	}
	for _, dir := range []string{crashed.ID() + ".tmp", "9-9-9.tmp"} {
		if !strings.Contains(logs.String(), filepath.Join(root, dir)) {
			t.Errorf("removal of %s was not logged:\n%s", dir, logs)
		}
	}
	if ids := listedIDs(t, reopened); !slices.Equal(ids, []string{good}) {
		t.Fatalf("List = %v; want [%s]", ids, good)
	}
}

// snapDamage is one way of spoiling a snapshot directory.
type snapDamage struct {
	name   string
	damage func(t *testing.T, dir string)
	// wantErr is part of the error Open returns (after the snapshot ID).
	wantErr string
	is      error
}

// editSnapMeta rewrites dir/meta.json after applying edit to its keys.
func editSnapMeta(edit func(m map[string]interface{})) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		t.Helper()
		path := filepath.Join(dir, snapshotMetaFileName)
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]interface{}
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		if raw, err = json.Marshal(m); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func writeSnapFile(name, content string) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func removeSnapFile(name string) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		t.Helper()
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// snapDamages are applied to a snapshot whose state.bin is "new state".
var snapDamages = []snapDamage{
	{name: "bad CRC", damage: writeSnapFile(snapshotStateFile, "new stage"), wantErr: "CRC mismatch", is: errCRCMismatch},
	{name: "truncated state.bin", damage: writeSnapFile(snapshotStateFile, "new"),
		wantErr: "state.bin holds 3 bytes but meta.json records 9: truncated or overwritten"},
	{name: "missing state.bin", damage: removeSnapFile(snapshotStateFile),
		wantErr: "missing or unreadable state.bin", is: fs.ErrNotExist},
	{name: "missing meta.json", damage: removeSnapFile(snapshotMetaFileName),
		wantErr: "missing or unreadable meta.json", is: fs.ErrNotExist},
	{name: "garbled meta.json", damage: writeSnapFile(snapshotMetaFileName, `{"Version":1,"ID":"2-`),
		wantErr: "garbled meta.json: unexpected EOF"},
	{name: "empty meta.json", damage: writeSnapFile(snapshotMetaFileName, ""), wantErr: "garbled meta.json: EOF"},
	{name: "meta.json not an object", damage: writeSnapFile(snapshotMetaFileName, `[1,2]`),
		wantErr: "garbled meta.json: json: cannot unmarshal array"},
	{name: "data after meta.json", damage: func(t *testing.T, dir string) {
		path := filepath.Join(dir, snapshotMetaFileName)
		raw, _ := os.ReadFile(path)
		_ = os.WriteFile(path, append(raw, "{}"...), 0o644)
	}, wantErr: "garbled meta.json: unexpected data after the JSON object"},
	{name: "no CRC", damage: editSnapMeta(func(m map[string]interface{}) { m["CRC"] = nil }),
		wantErr: "meta.json has no CRC: the snapshot was never finished"},
	{name: "short CRC", damage: editSnapMeta(func(m map[string]interface{}) { m["CRC"] = "AAAA" }),
		wantErr: "meta.json has a 3-byte CRC, want 8"},
	{name: "unknown version", damage: editSnapMeta(func(m map[string]interface{}) { m["Version"] = 2 }),
		wantErr: "unsupported snapshot version 2"},
	{name: "negative size", damage: editSnapMeta(func(m map[string]interface{}) { m["Size"] = -1 }),
		wantErr: "meta.json records a negative size -1"},
	{name: "other snapshot's meta.json", damage: editSnapMeta(func(m map[string]interface{}) { m["ID"] = "2-20-1" }),
		wantErr: `meta.json names snapshot "2-20-1" but is in directory`},
}

// TestFileSnapshotStoreSkipsDamagedSnapshots damages the newer of two
// snapshots and checks that List falls back to the older one, that Open
// explains what is wrong, and that a later snapshot reaps the damaged one.
func TestFileSnapshotStoreSkipsDamagedSnapshots(t *testing.T) {
	for _, tc := range snapDamages {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				base := t.TempDir()
				store, _ := openFileSnapTestStore(t, base, 2)
				older := writeFileSnapshot(t, store, 5, 1, []byte("old state"))
				time.Sleep(time.Millisecond)
				newer := writeFileSnapshot(t, store, 10, 1, []byte("new state"))
				tc.damage(t, filepath.Join(base, snapshotsDirName, newer))

				// As after a restart: a fresh store over the same directory.
				store, logs := openFileSnapTestStore(t, base, 2)
				if ids := listedIDs(t, store); !slices.Equal(ids, []string{older}) {
					t.Fatalf("List = %v; want only the older snapshot %s", ids, older)
				}
				// hclog quotes the error value.
				if log := strings.ReplaceAll(logs.String(), `\"`, `"`); !strings.Contains(log, "skipping unusable snapshot") ||
					!strings.Contains(log, newer) || !strings.Contains(log, tc.wantErr) {
					t.Fatalf("the damaged snapshot was not logged clearly:\n%s", log)
				}
				_, _, err := store.Open(newer)
				wantPrefix := "opening snapshot " + newer + ": "
				if err == nil || !strings.HasPrefix(err.Error(), wantPrefix) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Open of the damaged snapshot = %v; want %q followed by %q", err, wantPrefix, tc.wantErr)
				}
				if tc.is != nil && !errors.Is(err, tc.is) {
					t.Fatalf("Open error %v does not match %v", err, tc.is)
				}
				if _, data := readStoredSnapshot(t, store, older); data != "old state" {
					t.Fatalf("older snapshot holds %q", data)
				}

				// Two newer good snapshots push both old ones out.
				time.Sleep(time.Millisecond)
				a := writeFileSnapshot(t, store, 20, 1, []byte("a"))
				time.Sleep(time.Millisecond)
				b := writeFileSnapshot(t, store, 30, 1, []byte("b"))
				if got := snapDirNames(t, base); !slices.Equal(got, []string{a, b}) {
					t.Fatalf("after two new snapshots, snapshots/ holds %v; want [%s %s]", got, a, b)
				}
			})
		})
	}
}

// TestFileSnapshotStoreKeepsNewerDamagedSnapshot checks that reaping never
// counts a damaged snapshot towards retain, and leaves a damaged snapshot
// that is newer than the kept ones for an operator to look at.
func TestFileSnapshotStoreKeepsNewerDamagedSnapshot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := t.TempDir()
		store, _ := openFileSnapTestStore(t, base, 2)
		older := writeFileSnapshot(t, store, 5, 1, []byte("old state"))
		time.Sleep(time.Millisecond)
		newer := writeFileSnapshot(t, store, 10, 1, []byte("new state"))
		writeSnapFile(snapshotStateFile, "new stage")(t, filepath.Join(base, snapshotsDirName, newer))

		narrow, _ := openFileSnapTestStore(t, base, 1)
		if err := narrow.ReapSnapshots(); err != nil {
			t.Fatal(err)
		}
		want := []string{older, newer}
		slices.Sort(want)
		if got := snapDirNames(t, base); !slices.Equal(got, want) {
			t.Fatalf("snapshots/ holds %v; want %v", got, want)
		}
		if ids := listedIDs(t, narrow); !slices.Equal(ids, []string{older}) {
			t.Fatalf("List = %v; want [%s]", ids, older)
		}
	})
}

// TestFileSnapshotStoreListRecheckChangedState shows what List remembers:
// a state.bin whose size or modification time changed is read again, and
// Open always reads it.
func TestFileSnapshotStoreListRecheckChangedState(t *testing.T) {
	base := t.TempDir()
	store, _ := openFileSnapTestStore(t, base, 2)
	id := writeFileSnapshot(t, store, 10, 1, []byte("new state"))
	state := filepath.Join(base, snapshotsDirName, id, snapshotStateFile)
	info, err := os.Stat(state)
	if err != nil {
		t.Fatal(err)
	}

	// Same size, same modification time: List trusts its earlier check,
	// Open does not.
	writeSnapFile(snapshotStateFile, "new stage")(t, filepath.Dir(state))
	if err := os.Chtimes(state, info.ModTime(), info.ModTime()); err != nil {
		t.Fatal(err)
	}
	if ids := listedIDs(t, store); !slices.Equal(ids, []string{id}) {
		t.Fatalf("List = %v; want [%s]", ids, id)
	}
	if _, _, err := store.Open(id); !errors.Is(err, errCRCMismatch) {
		t.Fatalf("Open = %v; want a CRC mismatch", err)
	}

	// A meta.json whose size disagrees is caught even when state.bin is
	// unchanged since the last check.
	editSnapMeta(func(m map[string]interface{}) { m["Size"] = 4 })(t, filepath.Dir(state))
	if ids := listedIDs(t, store); len(ids) != 0 {
		t.Fatalf("List = %v; want the snapshot with a wrong size skipped", ids)
	}
	editSnapMeta(func(m map[string]interface{}) { m["Size"] = 9 })(t, filepath.Dir(state))

	// A new modification time makes List read the file again.
	later := info.ModTime().Add(time.Second)
	if err := os.Chtimes(state, later, later); err != nil {
		t.Fatal(err)
	}
	if ids := listedIDs(t, store); len(ids) != 0 {
		t.Fatalf("List = %v; want the damaged snapshot skipped", ids)
	}
}

func TestFileSnapshotStoreOpenRejectsBadIDs(t *testing.T) {
	base := t.TempDir()
	store, _ := openFileSnapTestStore(t, base, 2)
	writeFileSnapshot(t, store, 1, 1, []byte("x"))
	for _, id := range []string{"", ".", "..", "../snapshots", "a/b", `a\b`} {
		if _, _, err := store.Open(id); err == nil || !strings.Contains(err.Error(), "not a snapshot ID") {
			t.Errorf("Open(%q) = %v; want \"not a snapshot ID\"", id, err)
		}
	}
	_, _, err := store.Open("7-7-7")
	if err == nil || !strings.HasPrefix(err.Error(), "opening snapshot 7-7-7: missing or unreadable meta.json") ||
		!errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open of an unknown ID = %v", err)
	}
}

func TestNewFileSnapshotStoreErrors(t *testing.T) {
	_, err := NewFileSnapshotStore(t.TempDir(), 0, io.Discard)
	if err == nil || err.Error() != "must retain at least one snapshot" {
		t.Fatalf("retain 0: %v; want \"must retain at least one snapshot\"", err)
	}

	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = NewFileSnapshotStore(file, 1, io.Discard)
	if err == nil || !strings.HasPrefix(err.Error(), "snapshot path not accessible: ") {
		t.Fatalf("base is a file: %v; want \"snapshot path not accessible: ...\"", err)
	}

	// A directory in the way of the test file fails the permission test
	// even for root.
	base := t.TempDir()
	if err := os.MkdirAll(filepath.Join(base, snapshotsDirName, snapshotPermTestFile), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = NewFileSnapshotStore(base, 1, io.Discard)
	if err == nil || !strings.HasPrefix(err.Error(), "permissions test failed: ") {
		t.Fatalf("permission test blocked: %v; want \"permissions test failed: ...\"", err)
	}
}

func TestFileSnapshotStoreCreateErrors(t *testing.T) {
	store, _ := openFileSnapTestStore(t, t.TempDir(), 1)
	for _, v := range []SnapshotVersion{0, 2} {
		_, err := store.Create(v, 1, 1, snapTestConfiguration, 1, nil)
		if want := fmt.Sprintf("unsupported snapshot version %d", v); err == nil || err.Error() != want {
			t.Errorf("Create(version %d) = %v; want %q", v, err, want)
		}
	}
}

func TestFileSnapshotStoreLogger(t *testing.T) {
	base := t.TempDir()
	store, logs := openFileSnapTestStore(t, base, 1)
	writeFileSnapshot(t, store, 1, 1, nil)
	if !strings.Contains(logs.String(), "snapshot: creating new snapshot: path=") {
		t.Fatalf("log lines are not named \"snapshot\":\n%s", logs)
	}
	// A nil logger gets a default one.
	if _, err := NewFileSnapshotStoreWithLogger(base, 1, nil); err != nil {
		t.Fatal(err)
	}
}

// TestFileSnapshotStoreConcurrentUse lists and opens snapshots while new
// ones are written and old ones reaped. A snapshot may vanish between List
// and Open; anything else is a failure.
func TestFileSnapshotStoreConcurrentUse(t *testing.T) {
	store, err := NewFileSnapshotStoreWithLogger(t.TempDir(), 2, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	readSnapshotsWhileWriting(t, store, 2, 40)
}

// copySnapshotFixture copies the regular files and directories under src to dst.
func copySnapshotFixture(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestFileSnapshotStoreReadsReferenceSnapshots opens the snapshots that
// hashicorp/raft v1.8.0 wrote in testdata/reference-snapshots (see its
// README).
func TestFileSnapshotStoreReadsReferenceSnapshots(t *testing.T) {
	base := t.TempDir()
	copySnapshotFixture(t, filepath.Join("testdata", "reference-snapshots"), base)
	store, logs := openFileSnapTestStore(t, base, 2)

	cfg1 := Configuration{Servers: []Server{{Suffrage: Voter, ID: "n1", Address: "127.0.0.1:8301"}}}
	cfg2 := Configuration{Servers: []Server{
		{Suffrage: Voter, ID: "n1", Address: "127.0.0.1:8301"},
		{Suffrage: Voter, ID: "n2", Address: "127.0.0.1:8302"},
		{Suffrage: Nonvoter, ID: "n3", Address: "127.0.0.1:8303"},
	}}
	data2 := make([]byte, 4096)
	for i := range data2 {
		data2[i] = byte(i % 256)
	}
	want := []struct {
		meta SnapshotMeta
		data []byte
	}{
		{SnapshotMeta{Version: 1, ID: "2-12-1795440423986", Index: 12, Term: 2, Peers: snapshotPeers(cfg2, nil),
			Configuration: cfg2, ConfigurationIndex: 11, Size: 4096}, data2},
		{SnapshotMeta{Version: 1, ID: "1-5-1795440423979", Index: 5, Term: 1, Peers: snapshotPeers(cfg1, nil),
			Configuration: cfg1, ConfigurationIndex: 1, Size: 23}, []byte("reference snapshot one\n")},
	}
	list, err := store.List()
	if err != nil || len(list) != len(want) {
		t.Fatalf("List = %+v, %v; want %d snapshots\n%s", list, err, len(want), logs)
	}
	for i, w := range want {
		if !reflect.DeepEqual(*list[i], w.meta) {
			t.Errorf("List[%d] = %+v; want %+v", i, *list[i], w.meta)
		}
		meta, data := readStoredSnapshot(t, store, w.meta.ID)
		if !reflect.DeepEqual(*meta, w.meta) || data != string(w.data) {
			t.Errorf("Open(%s) = %+v and %d bytes; want %+v and the reference's bytes", w.meta.ID, *meta, len(data), w.meta)
		}
	}
}

// fuzzSnapID is the directory FuzzSnapshotMeta puts its meta.json in, and
// fuzzSnapState the state.bin beside it.
const (
	fuzzSnapID    = "3-10-1795434449549"
	fuzzSnapState = "hello"
)

// FuzzSnapshotMeta feeds arbitrary bytes as a meta.json through List and
// Open. Neither may panic, and they must agree: a snapshot is listed if
// and only if it opens, with the same metadata and the real bytes.
func FuzzSnapshotMeta(f *testing.F) {
	valid := `{"Version":1,"ID":"3-10-1795434449549","Index":10,"Term":3,"Peers":"kasxMjcuMC4wLjE6MQ==",` +
		`"Configuration":{"Servers":[{"Suffrage":0,"ID":"n1","Address":"127.0.0.1:1"}]},"ConfigurationIndex":1,"Size":5,"CRC":"mx7a5du5N7E="}` + "\n"
	for _, seed := range []string{
		valid,
		strings.Replace(valid, `"Version":1`, `"Version":0`, 1),
		strings.Replace(valid, `"CRC":"mx7a5du5N7E="`, `"CRC":null`, 1),
		strings.Replace(valid, `"Size":5`, `"Size":-5`, 1),
		valid[:40],
		"", "{}", "null", "[]", `"x"`, "{\"Configuration\":{\"Servers\":[{\"Suffrage\":1e400}]}}",
	} {
		f.Add([]byte(seed))
	}
	// One store per fuzzing process; each input replaces meta.json. The
	// state.bin never changes, so what List remembers stays true.
	base := f.TempDir()
	dir := filepath.Join(base, snapshotsDirName, fuzzSnapID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, snapshotStateFile), []byte(fuzzSnapState), 0o644); err != nil {
		f.Fatal(err)
	}
	store, err := NewFileSnapshotStoreWithLogger(base, 2, hclog.NewNullLogger())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, meta []byte) {
		if err := os.WriteFile(filepath.Join(dir, snapshotMetaFileName), meta, 0o644); err != nil {
			t.Fatal(err)
		}
		list, err := store.List()
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		opened, rc, openErr := store.Open(fuzzSnapID)
		if (len(list) == 1) != (openErr == nil) || len(list) > 1 {
			t.Fatalf("List returned %d snapshots but Open said %v", len(list), openErr)
		}
		if openErr != nil {
			if string(meta) == valid {
				t.Fatalf("the valid meta.json was refused: %v", openErr)
			}
			if !strings.HasPrefix(openErr.Error(), "opening snapshot "+fuzzSnapID+": ") {
				t.Fatalf("Open error does not name the snapshot: %v", openErr)
			}
			return
		}
		defer rc.Close()
		data, err := io.ReadAll(rc)
		if err != nil || string(data) != fuzzSnapState {
			t.Fatalf("Open read %q, %v; want %q", data, err, fuzzSnapState)
		}
		if !reflect.DeepEqual(list[0], opened) || opened.ID != fuzzSnapID || opened.Size != int64(len(fuzzSnapState)) {
			t.Fatalf("List says %+v, Open says %+v", list[0], opened)
		}
	})
}

// FuzzSnapshotState opens a store directory holding two finished
// snapshots whose newer one's state.bin was replaced by arbitrary bytes, as
// a node restarting on a damaged disk would. Unless the bytes are the ones
// written, the newer snapshot must be refused by List, Open, openWritten
// and openToSend alike (the last one before the final bytes leave it), the
// older one must stay usable, and whatever opens must read back exactly
// what was written.
func FuzzSnapshotState(f *testing.F) {
	written := snapPatternBytes(300)
	template := f.TempDir()
	store, err := NewFileSnapshotStoreWithLogger(template, 2, hclog.NewNullLogger())
	if err != nil {
		f.Fatal(err)
	}
	older := writeFileSnapshot(f, store, 5, 1, []byte("older"))
	newer := writeFileSnapshot(f, store, 10, 2, written)
	flipped := slices.Clone(written)
	flipped[len(flipped)-1] ^= 1
	for _, seed := range [][]byte{written, flipped, written[:299], append(slices.Clone(written), 0), nil} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, state []byte) {
		base := t.TempDir()
		copySnapshotFixture(t, template, base)
		if err := os.WriteFile(filepath.Join(base, snapshotsDirName, newer, snapshotStateFile), state, 0o644); err != nil {
			t.Fatal(err)
		}
		// A store opened on the directory: nothing verified yet.
		store, err := NewFileSnapshotStoreWithLogger(base, 2, hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		intact := bytes.Equal(state, written)
		wantIDs := []string{older}
		if intact {
			wantIDs = []string{newer, older}
		}
		if got := listedIDs(t, store); !slices.Equal(got, wantIDs) {
			t.Fatalf("List = %v, want %v", got, wantIDs)
		}
		checkRefusal := func(how string, err error) {
			t.Helper()
			if !strings.HasPrefix(err.Error(), "opening snapshot "+newer+": ") {
				t.Fatalf("%s: the error does not name the snapshot: %v", how, err)
			}
			if len(state) == len(written) && !errors.Is(err, errCRCMismatch) {
				t.Fatalf("%s: same size, other bytes: %v, want a CRC mismatch", how, err)
			}
		}
		for how, open := range map[string]func(string) (*SnapshotMeta, io.ReadCloser, error){
			"Open": store.Open, "openWritten": store.openWritten,
		} {
			meta, rc, err := open(newer)
			if err != nil {
				if intact {
					t.Fatalf("%s refused the intact snapshot: %v", how, err)
				}
				checkRefusal(how, err)
				continue
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if !intact || err != nil || !bytes.Equal(got, written) || meta.Size != int64(len(written)) {
				t.Fatalf("%s of a state.bin of %d bytes (intact %v) read %d bytes, %v", how, len(state), intact, len(got), err)
			}
		}
		meta, rc, err := store.openToSend(newer)
		if err != nil {
			if intact {
				t.Fatalf("openToSend refused the intact snapshot: %v", err)
			}
			checkRefusal("openToSend", err)
		} else {
			got, err := io.ReadAll(rc)
			rc.Close()
			switch {
			case meta.Size != int64(len(written)):
				t.Fatalf("openToSend: meta size %d", meta.Size)
			case intact && (err != nil || !bytes.Equal(got, written)):
				t.Fatalf("openToSend of the intact snapshot read %d bytes, %v", len(got), err)
			case !intact && (!errors.Is(err, errCRCMismatch) || len(got) >= len(written)):
				t.Fatalf("openToSend of a damaged state.bin read %d of %d bytes, %v; want a CRC mismatch short of the end",
					len(got), len(written), err)
			}
		}
		_, rc, err = store.Open(older)
		if err != nil {
			t.Fatalf("the older snapshot no longer opens: %v", err)
		}
		rc.Close()
	})
}

// A snapshot larger than several writeback chunks, written in pieces that
// straddle the buffer and chunk boundaries, reads back whole with a
// matching CRC.
func TestFileSnapshotStoreLargeSnapshotAcrossWritebackChunks(t *testing.T) {
	base := t.TempDir()
	store, _ := openFileSnapTestStore(t, base, 2)
	data := snapPatternBytes(2*snapshotWritebackChunk + 12345)
	sink, err := store.Create(1, 10, 3, snapTestConfiguration, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	for chunk := range slices.Chunk(data, 3*snapshotBufferSize/2+7) {
		if n, err := sink.Write(chunk); n != len(chunk) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	meta, rc, err := store.Open(sink.ID())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || meta.Size != int64(len(data)) || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes (meta size %d, %v); want the %d bytes written", len(got), meta.Size, err, len(data))
	}
}

func TestFileSnapshotStoreOpenWrittenSkipsOnlyUnchangedFiles(t *testing.T) {
	base := t.TempDir()
	store, _ := openFileSnapTestStore(t, base, 2)
	data := snapPatternBytes(3*snapshotBufferSize + 7)
	id := writeFileSnapshot(t, store, 10, 1, data)
	state := filepath.Join(base, snapshotsDirName, id, snapshotStateFile)
	info, err := os.Stat(state)
	if err != nil {
		t.Fatal(err)
	}
	readAll := func(rc io.ReadCloser) []byte {
		t.Helper()
		defer rc.Close()
		got, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	meta, rc, err := openWrittenSnapshot(store, id)
	if err != nil {
		t.Fatalf("openWrittenSnapshot: %v", err)
	}
	if meta.ID != id || meta.Size != int64(len(data)) || !bytes.Equal(readAll(rc), data) {
		t.Fatalf("openWrittenSnapshot gave %+v and other bytes than written", meta)
	}

	// Damage with the size and modification time the sink recorded: the
	// CRC pass is skipped (what makes it cheap), while Open still checks.
	damaged := slices.Clone(data)
	damaged[len(damaged)/2] ^= 0xff
	if err := os.WriteFile(state, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(state, info.ModTime(), info.ModTime()); err != nil {
		t.Fatal(err)
	}
	if _, rc, err := openWrittenSnapshot(store, id); err != nil {
		t.Fatalf("openWrittenSnapshot of an unchanged stamp = %v; want the check skipped", err)
	} else {
		rc.Close()
	}
	if _, _, err := store.Open(id); !errors.Is(err, errCRCMismatch) {
		t.Fatalf("Open = %v; want a CRC mismatch", err)
	}

	// A new modification time, or a store that did not write the
	// snapshot, reads and checks the file in full.
	later := info.ModTime().Add(time.Second)
	if err := os.Chtimes(state, later, later); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openWrittenSnapshot(store, id); !errors.Is(err, errCRCMismatch) {
		t.Fatalf("openWrittenSnapshot after a change = %v; want a CRC mismatch", err)
	}
	if err := os.Chtimes(state, info.ModTime(), info.ModTime()); err != nil {
		t.Fatal(err)
	}
	other, _ := openFileSnapTestStore(t, base, 2)
	if _, _, err := openWrittenSnapshot(other, id); !errors.Is(err, errCRCMismatch) {
		t.Fatalf("openWrittenSnapshot on another store = %v; want a CRC mismatch", err)
	}

	// A truncated file is caught by its size alone.
	if err := os.WriteFile(state, data[:10], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(state, info.ModTime(), info.ModTime()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openWrittenSnapshot(store, id); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("openWrittenSnapshot of a truncated file = %v; want a size error", err)
	}
}

func TestFileSnapshotStoreOpenToSendHoldsBackDamagedEnd(t *testing.T) {
	base := t.TempDir()
	store, _ := openFileSnapTestStore(t, base, 2)
	for _, size := range []int{1, 100, 3*snapshotBufferSize + 7} {
		data := snapPatternBytes(size)
		id := writeFileSnapshot(t, store, uint64(size), 1, data)
		state := filepath.Join(base, snapshotsDirName, id, snapshotStateFile)

		meta, rc, err := openSnapshotToSend(store, id)
		if err != nil {
			t.Fatalf("size %d: openSnapshotToSend: %v", size, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || meta.Size != int64(size) || !bytes.Equal(got, data) {
			t.Fatalf("size %d: read %d bytes, err %v, meta size %d; want the snapshot whole", size, len(got), err, meta.Size)
		}

		// The same size with one byte changed, at the start or the end:
		// the reader fails before the last bytes leave it.
		for _, at := range []int{0, size - 1} {
			damaged := slices.Clone(data)
			damaged[at] ^= 0xff
			if err := os.WriteFile(state, damaged, 0o644); err != nil {
				t.Fatal(err)
			}
			_, rc, err := openSnapshotToSend(store, id)
			if err != nil {
				t.Fatalf("size %d: openSnapshotToSend: %v", size, err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if !errors.Is(err, errCRCMismatch) || len(got) >= size {
				t.Fatalf("size %d, byte %d damaged: read %d bytes, err %v; want a CRC mismatch short of the end", size, at, len(got), err)
			}
		}

		// A file of the wrong size is refused before anything is read.
		if err := os.WriteFile(state, append(slices.Clone(data), 0), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := openSnapshotToSend(store, id); err == nil || !strings.Contains(err.Error(), "truncated or overwritten") {
			t.Fatalf("size %d: openSnapshotToSend of a longer file = %v; want a size error", size, err)
		}
	}
}

func TestFileSnapshotSinkMixedWriteSizes(t *testing.T) {
	base := t.TempDir()
	store, _ := openFileSnapTestStore(t, base, 2)
	var want []byte
	sink, err := store.Create(1, 5, 1, snapTestConfiguration, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Chunks of the buffer's size and more go straight to the file when
	// nothing is buffered, through the buffer otherwise.
	for i, n := range []int{snapshotBufferSize, 100, snapshotBufferSize, snapshotBufferSize + 3, 5, snapshotBufferSize - 105, snapshotBufferSize, 1} {
		chunk := bytes.Repeat([]byte{byte(i + 1)}, n)
		if w, err := sink.Write(chunk); err != nil || w != n {
			t.Fatalf("write %d of %d bytes = %d, %v", i, n, w, err)
		}
		want = append(want, chunk...)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	meta, rc, err := store.Open(sink.ID())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || meta.Size != int64(len(want)) || !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes (err %v, meta size %d); want the %d written, in order", len(got), err, meta.Size, len(want))
	}
}

func TestCopyInChunks(t *testing.T) {
	for _, n := range []int{0, 1, installChunk - 1, installChunk, installChunk + 1, 3*installChunk + 5} {
		src := snapPatternBytes(n)
		var dst bytes.Buffer
		got, err := copyInChunks(&dst, bytes.NewReader(src))
		if err != nil || got != int64(n) || !bytes.Equal(dst.Bytes(), src) {
			t.Fatalf("%d bytes: copied %d, err %v", n, got, err)
		}
	}
	broken := errors.New("connection reset")
	r := io.MultiReader(bytes.NewReader(make([]byte, 10)), iotestErrReader{broken})
	if n, err := copyInChunks(io.Discard, r); !errors.Is(err, broken) || n != 10 {
		t.Fatalf("reader failing after 10 bytes: copied %d, err %v; want the 10 bytes and the read error", n, err)
	}
	if _, err := copyInChunks(failingWriter{broken}, bytes.NewReader(make([]byte, 10))); !errors.Is(err, broken) {
		t.Fatalf("failing writer: err %v; want its error", err)
	}
}

// TestCopyInChunksStopsReading checks that copyInChunks, which reads
// ahead on a goroutine of its own, has stopped reading its source when it
// returns, also when the writer fails: the caller drains the source next,
// and two readers of a connection would interleave its bytes.
func TestCopyInChunksStopsReading(t *testing.T) {
	for round := 0; round < 20; round++ {
		src := &watchedReader{r: bytes.NewReader(make([]byte, 3*installChunk))}
		_, err := copyInChunks(failingWriter{errors.New("disk full")}, src)
		src.returned.Store(true)
		if err == nil {
			t.Fatal("failing writer: no error")
		}
		if src.lateRead.Load() {
			t.Fatal("the source was read after copyInChunks returned")
		}
		if _, err := io.Copy(io.Discard, src); err != nil {
			t.Fatal(err)
		}
	}
}

// watchedReader records a Read that starts once returned is set.
type watchedReader struct {
	r                  io.Reader
	returned, lateRead atomic.Bool
}

func (w *watchedReader) Read(p []byte) (int, error) {
	if w.returned.Load() {
		w.lateRead.Store(true)
	}
	return w.r.Read(p)
}

type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }
