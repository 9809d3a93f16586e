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
		{"-modes", "throughput", "-stores", "mem,bolt", "-clients", "1", "-duration", "1s", "-warmup", "0s", "-reps", "1"},
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
