package raft

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestReadPeersJSON(t *testing.T) {
	cases := []struct {
		name    string
		content string
		want    Configuration
		// wantErr is the exact error, or with a leading "~" a part of it.
		wantErr string
	}{
		{
			name:    "addresses become voters named by address",
			content: `["127.0.0.1:8300", "127.0.0.2:8300"]` + "\n",
			want: Configuration{Servers: []Server{
				{Suffrage: Voter, ID: "127.0.0.1:8300", Address: "127.0.0.1:8300"},
				{Suffrage: Voter, ID: "127.0.0.2:8300", Address: "127.0.0.2:8300"},
			}},
		},
		{name: "empty array", content: `[]`, wantErr: "need at least one voter in configuration: {[]}"},
		{name: "null", content: `null`, wantErr: "need at least one voter in configuration: {[]}"},
		{name: "duplicate address", content: `["a:1","a:1"]`, wantErr: "found duplicate ID in configuration: a:1"},
		{name: "empty address", content: `[""]`, wantErr: "empty ID in configuration: {[{Voter  }]}"},
		{name: "empty file", content: "", wantErr: "~: the file is empty"},
		{name: "syntax error", content: "[\n  \"a:1\",\n  oops\n]", wantErr: "~: line 3, column 3: invalid character 'o'"},
		{name: "wrong type", content: `[1]`, wantErr: "~: line 1, column 2: json: cannot unmarshal number"},
		{name: "cut short", content: `["a:1"`, wantErr: "~: the file ends inside a JSON value"},
		{name: "trailing data", content: `["a:1"] ["b:1"]`, wantErr: "~: unexpected data after the JSON value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writePeersFile(t, tc.content)
			got, err := ReadPeersJSON(path)
			checkPeersResult(t, path, got, err, tc.want, tc.wantErr)
		})
	}
}

func TestReadConfigJSON(t *testing.T) {
	cases := []struct {
		name    string
		content string
		want    Configuration
		wantErr string
	}{
		{
			name: "voters and non-voters",
			content: `[
  {"id": "n1", "address": "127.0.0.1:8300", "non_voter": false},
  {"id": "n2", "address": "127.0.0.2:8300"},
  {"id": "n3", "address": "127.0.0.3:8300", "non_voter": true, "comment": "ignored"}
]`,
			want: Configuration{Servers: []Server{
				{Suffrage: Voter, ID: "n1", Address: "127.0.0.1:8300"},
				{Suffrage: Voter, ID: "n2", Address: "127.0.0.2:8300"},
				{Suffrage: Nonvoter, ID: "n3", Address: "127.0.0.3:8300"},
			}},
		},
		{name: "no voter", content: `[{"id":"n1","address":"a:1","non_voter":true}]`,
			wantErr: "need at least one voter in configuration: {[{Nonvoter n1 a:1}]}"},
		{name: "missing id", content: `[{"address":"a:1"}]`, wantErr: "empty ID in configuration: {[{Voter  a:1}]}"},
		{name: "missing address", content: `[{"id":"n1"}]`, wantErr: "empty address in configuration: {Voter n1 }"},
		{name: "duplicate id", content: `[{"id":"n1","address":"a:1"},{"id":"n1","address":"a:2"}]`,
			wantErr: "found duplicate ID in configuration: n1"},
		{name: "duplicate address", content: `[{"id":"n1","address":"a:1"},{"id":"n2","address":"a:1"}]`,
			wantErr: "found duplicate address in configuration: a:1"},
		{name: "legacy format", content: `["a:1"]`, wantErr: "~: line 1, column 6: json: cannot unmarshal string"},
		{name: "wrong field type", content: `[{"id":"n1","address":"a:1","non_voter":"yes"}]`,
			wantErr: "~json: cannot unmarshal string into Go struct field"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writePeersFile(t, tc.content)
			got, err := ReadConfigJSON(path)
			checkPeersResult(t, path, got, err, tc.want, tc.wantErr)
		})
	}
}

func TestReadPeersJSONMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peers.json")
	for name, read := range map[string]func(string) (Configuration, error){
		"ReadPeersJSON": ReadPeersJSON, "ReadConfigJSON": ReadConfigJSON,
	} {
		_, err := read(path)
		if !os.IsNotExist(err) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s of a missing file = %v; want a not-exist error naming the path", name, err)
		}
	}
}

func writePeersFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "peers.json")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkPeersResult compares a reader's result with the expected
// configuration or error. Parse errors must name the file.
func checkPeersResult(t *testing.T, path string, got Configuration, err error, want Configuration, wantErr string) {
	t.Helper()
	switch {
	case wantErr == "":
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v, %v; want %+v", got, err, want)
		}
	case err == nil:
		t.Fatalf("got %+v; want error %q", got, wantErr)
	case strings.HasPrefix(wantErr, "~"):
		if !strings.Contains(err.Error(), wantErr[1:]) || !strings.Contains(err.Error(), path) {
			t.Fatalf("error %q; want it to name %s and contain %q", err, path, wantErr[1:])
		}
	case err.Error() != wantErr:
		t.Fatalf("error %q; want %q", err, wantErr)
	}
}

// FuzzReadPeersJSON reads arbitrary bytes as a peers.json in both formats.
// Neither reader may panic; what one accepts must be a usable
// configuration, and for ReadConfigJSON, writing it back in the same
// format and reading that again must give the same configuration.
func FuzzReadPeersJSON(f *testing.F) {
	for _, seed := range []string{
		`["127.0.0.1:8300", "127.0.0.2:8300"]`,
		`[{"id":"n1","address":"127.0.0.1:8300"},{"id":"n2","address":"127.0.0.2:8300","non_voter":true}]`,
		`[{"id":"n1","address":"a:1","non_voter":true}]`, `[{"id":"n1","address":"a:1","extra":[1,{}]}]`,
		`["a:1","a:1"]`, `[""]`, `null`, `[]`, "[\n  \"a:1\",\n  oops\n]", `["a:1"] x`, `["a:1"`,
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "peers.json")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := ReadPeersJSON(path); err == nil {
			if err := checkConfiguration(got); err != nil {
				t.Fatalf("ReadPeersJSON accepted an unusable configuration: %v", err)
			}
			for _, s := range got.Servers {
				if s.Suffrage != Voter || string(s.ID) != string(s.Address) {
					t.Fatalf("ReadPeersJSON made %+v, want a voter named by its address", s)
				}
			}
		}
		got, err := ReadConfigJSON(path)
		if err != nil {
			return
		}
		if err := checkConfiguration(got); err != nil {
			t.Fatalf("ReadConfigJSON accepted an unusable configuration: %v", err)
		}
		var out []peersJSONServer
		for _, s := range got.Servers {
			out = append(out, peersJSONServer{ID: s.ID, Address: s.Address, NonVoter: s.Suffrage != Voter})
		}
		b, err := json.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		again, err := ReadConfigJSON(path)
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("reading back %s: %+v, %v; want %+v", b, again, err, got)
		}
	})
}
