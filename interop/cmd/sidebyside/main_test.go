package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTinyRun runs the command's whole path on tiny settings: every mode,
// both libraries, in memory and on bbolt files, one short run or kill of
// each. It checks that every measurement came back without an error and
// that the tables were written; it asserts no figure, since figures are
// for reading, not for tests.
func TestTinyRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dozen three-node clusters")
	}
	jsonPath := filepath.Join(t.TempDir(), "runs.jsonl")
	var stdout, stderr bytes.Buffer
	runs := [][]string{
		{"-modes", "throughput", "-stores", "mem,bolt", "-clients", "1", "-duration", "250ms", "-warmup", "0s", "-reps", "1"},
		{"-modes", "failover-graceful", "-stores", "bolt", "-kills", "1"},
		{"-modes", "failover-crash,snapshot", "-stores", "mem", "-kills", "1", "-reps", "1", "-snapshot-mib", "1"},
	}
	var lines []string
	for _, args := range runs {
		if err := run(append(args, "-json", jsonPath, "-quiet"), &stdout, &stderr); err != nil {
			t.Fatalf("run %q: %v\nstderr:\n%s", args, err, stderr.String())
		}
		b, err := os.ReadFile(jsonPath)
		if err != nil {
			t.Fatal(err)
		}
		s := bufio.NewScanner(bytes.NewReader(b))
		for s.Scan() {
			lines = append(lines, s.Text())
		}
	}
	// 2 stores + 1 + 2 modes, each run once per library.
	if want := 2 * (2 + 1 + 2); len(lines) != want {
		t.Errorf("%d JSON lines, want %d:\n%s", len(lines), want, strings.Join(lines, "\n"))
	}
	for _, l := range lines {
		var m struct {
			Mode, Library, Error string
			Leaked               int `json:"leaked_goroutines"`
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("bad JSON line %q: %v", l, err)
		}
		if m.Error != "" || m.Leaked != 0 {
			t.Errorf("%s %s: error %q, %d goroutines outlived the run", m.Mode, m.Library, m.Error, m.Leaked)
		}
	}
	for _, title := range []string{"Throughput and latency", "Graceful failover", "Crash failover", "Snapshot install"} {
		if !strings.Contains(stdout.String(), title) {
			t.Errorf("no %q table in the output:\n%s", title, stdout.String())
		}
	}
}

// TestTinyReadsRun runs the reads mode on tiny settings: a read variant
// both libraries have, one only ours has, and the two that wait for other
// work (follower ReadIndex, ReadLease), which must come back either
// measured or marked unsupported, never failed, and with no stale read.
func TestTinyReadsRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three-node clusters")
	}
	jsonPath := filepath.Join(t.TempDir(), "reads.jsonl")
	var stdout, stderr bytes.Buffer
	args := []string{"-modes", "reads", "-stores", "mem", "-readers", "3", "-reads", "log,readindex,follower,lease",
		"-write-rate", "200", "-duration", "250ms", "-warmup", "0s", "-reps", "1", "-json", jsonPath, "-quiet"}
	if err := run(args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		lines = append(lines, s.Text())
	}
	if want := 2 * 4; len(lines) != want {
		t.Fatalf("%d JSON lines, want %d:\n%s", len(lines), want, strings.Join(lines, "\n"))
	}
	for _, l := range lines {
		var m struct {
			Library, Read, Error, Unsupported string
			Ops                               uint64
			Stale                             uint64
			Leaked                            int `json:"leaked_goroutines"`
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("bad JSON line %q: %v", l, err)
		}
		refLacks := m.Library == "reference" && (m.Read == "readindex" || m.Read == "follower" || m.Read == "lease")
		pending := m.Library == "ours" && (m.Read == "follower" || m.Read == "lease")
		switch {
		case m.Error != "" || m.Leaked != 0 || m.Stale != 0:
			t.Errorf("%s %s: error %q, %d goroutines outlived the run, %d stale reads", m.Library, m.Read, m.Error, m.Leaked, m.Stale)
		case refLacks && m.Unsupported == "":
			t.Errorf("reference %s: not marked unsupported: %s", m.Read, l)
		case m.Unsupported == "" && m.Ops == 0:
			t.Errorf("%s %s: no reads measured: %s", m.Library, m.Read, l)
		case m.Unsupported != "" && !refLacks && !pending:
			t.Errorf("%s %s: unsupported: %s", m.Library, m.Read, m.Unsupported)
		}
	}
	if !strings.Contains(stdout.String(), "| InmemStore / InmemStore | 3 | readindex | n/a | n/a |") {
		t.Errorf("no reads table row for the reference's missing ReadIndex:\n%s", stdout.String())
	}
}

func TestReadsFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-modes", "reads", "-readers", "16,x"}, "-readers"},
		{[]string{"-modes", "reads", "-reads", "log,sideways"}, `unknown read variant "sideways"`},
		{[]string{"-modes", "reads", "-write-rate", "-5"}, "write rate"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(append(c.args, "-quiet"), &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("run %q = %v, want an error saying %q", c.args, err, c.want)
		}
	}
}
