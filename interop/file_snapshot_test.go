package interop

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	hraft "github.com/hashicorp/raft"
	qraft "github.com/quorumkit/raft"
)

// snapCase is one snapshot both libraries write with the same inputs.
type snapCase struct {
	name               string
	index, term        uint64
	servers            []qraft.Server
	configurationIndex uint64
	data               []byte
}

var snapCases = []snapCase{
	{
		name: "one voter", index: 10, term: 3, configurationIndex: 1, data: []byte("hello"),
		servers: []qraft.Server{{Suffrage: qraft.Voter, ID: "n1", Address: "127.0.0.1:1"}},
	},
	{
		name: "mixed suffrage", index: 1000, term: 7, configurationIndex: 990, data: bytes.Repeat([]byte("0123456789"), 50000),
		servers: []qraft.Server{
			{Suffrage: qraft.Voter, ID: "n1", Address: "10.0.0.1:8300"},
			{Suffrage: qraft.Nonvoter, ID: "n2", Address: "10.0.0.2:8300"},
			{Suffrage: qraft.Staging, ID: "n3", Address: "10.0.0.3:8300"},
			{Suffrage: qraft.Voter, ID: "n4", Address: "10.0.0.4:8300"},
		},
	},
	{
		// encoding/json escapes <, > and & by default; both must.
		name: "characters JSON escapes", index: 5, term: 1, configurationIndex: 5, data: nil,
		servers: []qraft.Server{{Suffrage: qraft.Voter, ID: "<a&b>", Address: "[::1]:8300\u2028\"x\""}},
	},
	{name: "no configuration", index: 2, term: 1, configurationIndex: 0, data: []byte{0}},
	{name: "empty server list", index: 3, term: 1, configurationIndex: 0, data: []byte{1}, servers: []qraft.Server{}},
}

// refConfiguration converts a configuration to the reference's type,
// keeping a nil server list nil.
func refConfiguration(servers []qraft.Server) hraft.Configuration {
	var c hraft.Configuration
	if servers != nil {
		c.Servers = []hraft.Server{}
	}
	for _, s := range servers {
		c.Servers = append(c.Servers, hraft.Server{
			Suffrage: hraft.ServerSuffrage(s.Suffrage), ID: hraft.ServerID(s.ID), Address: hraft.ServerAddress(s.Address),
		})
	}
	return c
}

// ourConfiguration converts a configuration from the reference's type.
func ourConfiguration(c hraft.Configuration) qraft.Configuration {
	var out qraft.Configuration
	if c.Servers != nil {
		out.Servers = []qraft.Server{}
	}
	for _, s := range c.Servers {
		out.Servers = append(out.Servers, qraft.Server{
			Suffrage: qraft.ServerSuffrage(s.Suffrage), ID: qraft.ServerID(s.ID), Address: qraft.ServerAddress(s.Address),
		})
	}
	return out
}

// refTransport encodes legacy peers for the reference's Create: its
// in-memory transport encodes a peer as its address, as our stores do
// without a transport.
func refTransport() hraft.Transport {
	_, trans := hraft.NewInmemTransport("127.0.0.1:9999")
	return trans
}

func writeOurSnapshot(t *testing.T, store *qraft.FileSnapshotStore, c snapCase) string {
	t.Helper()
	sink, err := store.Create(1, c.index, c.term, qraft.Configuration{Servers: c.servers}, c.configurationIndex, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write(c.data); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	return sink.ID()
}

func writeRefSnapshot(t *testing.T, store *hraft.FileSnapshotStore, c snapCase) string {
	t.Helper()
	sink, err := store.Create(1, c.index, c.term, refConfiguration(c.servers), c.configurationIndex, refTransport())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write(c.data); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	return sink.ID()
}

// sameMeta compares metadata across the two libraries, field by field.
func sameMeta(ours *qraft.SnapshotMeta, ref *hraft.SnapshotMeta) bool {
	return int(ours.Version) == int(ref.Version) && ours.ID == ref.ID && ours.Index == ref.Index &&
		ours.Term == ref.Term && bytes.Equal(ours.Peers, ref.Peers) &&
		reflect.DeepEqual(ours.Configuration, ourConfiguration(ref.Configuration)) &&
		ours.ConfigurationIndex == ref.ConfigurationIndex && ours.Size == ref.Size
}

// TestFileSnapshotOursReadByReference writes snapshots with our store and
// lists and opens them with the reference's.
func TestFileSnapshotOursReadByReference(t *testing.T) {
	base := t.TempDir()
	ours, err := qraft.NewFileSnapshotStore(base, len(snapCases), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ids := make(map[string]snapCase)
	for _, c := range snapCases {
		ids[writeOurSnapshot(t, ours, c)] = c
	}
	ourList, err := ours.List()
	if err != nil {
		t.Fatal(err)
	}

	ref, err := hraft.NewFileSnapshotStore(base, len(snapCases), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	refList, err := ref.List()
	if err != nil || len(refList) != len(snapCases) {
		t.Fatalf("reference List = %d snapshots, %v; want %d", len(refList), err, len(snapCases))
	}
	for i, meta := range refList {
		if !sameMeta(ourList[i], meta) {
			t.Errorf("snapshot %d: reference lists %+v; ours lists %+v", i, meta, ourList[i])
		}
		c := ids[meta.ID]
		opened, rc, err := ref.Open(meta.ID)
		if err != nil {
			t.Fatalf("reference Open(%s): %v", meta.ID, err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(data, c.data) || !reflect.DeepEqual(opened, meta) {
			t.Errorf("%s: reference read %d bytes (%v) and %+v; want %d bytes and %+v", c.name, len(data), err, opened, len(c.data), meta)
		}
	}
}

// TestFileSnapshotReferenceReadByOurs writes snapshots with the reference's
// store and lists and opens them with ours.
func TestFileSnapshotReferenceReadByOurs(t *testing.T) {
	base := t.TempDir()
	ref, err := hraft.NewFileSnapshotStore(base, len(snapCases), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ids := make(map[string]snapCase)
	for _, c := range snapCases {
		ids[writeRefSnapshot(t, ref, c)] = c
	}
	refList, err := ref.List()
	if err != nil {
		t.Fatal(err)
	}

	ours, err := qraft.NewFileSnapshotStore(base, len(snapCases), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ourList, err := ours.List()
	if err != nil || len(ourList) != len(snapCases) {
		t.Fatalf("our List = %d snapshots, %v; want %d", len(ourList), err, len(snapCases))
	}
	for i, meta := range ourList {
		if !sameMeta(meta, refList[i]) {
			t.Errorf("snapshot %d: ours lists %+v; reference lists %+v", i, meta, refList[i])
		}
		c := ids[meta.ID]
		opened, rc, err := ours.Open(meta.ID)
		if err != nil {
			t.Fatalf("our Open(%s): %v", meta.ID, err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(data, c.data) || !reflect.DeepEqual(opened, meta) {
			t.Errorf("%s: we read %d bytes (%v) and %+v; want %d bytes and %+v", c.name, len(data), err, opened, len(c.data), meta)
		}
	}
}

// TestFileSnapshotFilesMatchReference writes the same snapshot with both
// libraries and compares meta.json and state.bin byte for byte. IDs end in
// the creation time, so each ID is replaced by a placeholder first.
func TestFileSnapshotFilesMatchReference(t *testing.T) {
	for _, c := range snapCases {
		t.Run(c.name, func(t *testing.T) {
			ourBase, refBase := t.TempDir(), t.TempDir()
			ours, err := qraft.NewFileSnapshotStore(ourBase, 1, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := hraft.NewFileSnapshotStore(refBase, 1, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			ourID := writeOurSnapshot(t, ours, c)
			refID := writeRefSnapshot(t, ref, c)
			for _, name := range []string{"meta.json", "state.bin"} {
				ourBytes := readNormalised(t, ourBase, ourID, name)
				refBytes := readNormalised(t, refBase, refID, name)
				if !bytes.Equal(ourBytes, refBytes) {
					t.Errorf("%s differs:\n ours: %.300q\n  ref: %.300q", name, ourBytes, refBytes)
				}
			}
		})
	}
}

// readNormalised reads a snapshot file and replaces the snapshot's ID in
// it with "<id>".
func readNormalised(t *testing.T, base, id, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(base, "snapshots", id, name))
	if err != nil {
		t.Fatal(err)
	}
	if name != "meta.json" {
		return data
	}
	quoted := `"ID":"` + id + `"`
	if strings.Count(string(data), quoted) != 1 {
		t.Fatalf("%s does not record the ID %s once: %s", name, id, data)
	}
	return bytes.Replace(data, []byte(quoted), []byte(`"ID":"<id>"`), 1)
}
