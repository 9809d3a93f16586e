package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFloorRuns runs a short floor on every store and checks that every
// cell reports committed commands; it asserts no figure.
func TestFloorRuns(t *testing.T) {
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "out.jsonl")
	var out strings.Builder
	err := run([]string{"-stores", "wal,bolt,raftboltdb,walstore", "-clients", "1,4", "-duration", "500ms", "-warmup", "20ms",
		"-stages", "-dir", dir, "-json", jsonPath}, &out, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	rs := readResults(t, jsonPath)
	if len(rs) != 8 {
		t.Fatalf("%d results, want 8:\n%s", len(rs), out.String())
	}
	for _, r := range rs {
		if r.Mode != "floor" || r.Ops == 0 || r.P50Ms <= 0 {
			t.Errorf("result %+v: want a floor run with committed commands", r)
		}
	}
	if !strings.Contains(out.String(), "stages, bolt, 4 clients") {
		t.Errorf("no stage table for bolt at 4 clients in:\n%s", out.String())
	}
}

// TestLimitsRun runs the single-operation limits briefly.
func TestLimitsRun(t *testing.T) {
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "out.jsonl")
	var out strings.Builder
	if err := run([]string{"-limits", "-duration", "300ms", "-dir", dir, "-json", jsonPath}, &out, os.Stderr); err != nil {
		t.Fatal(err)
	}
	rs := readResults(t, jsonPath)
	if len(rs) != 6 {
		t.Fatalf("%d results, want 6 (three operations, alone and three at once):\n%s", len(rs), out.String())
	}
	for _, r := range rs {
		if r.Mode != "limit" || r.Ops == 0 {
			t.Errorf("result %+v: want a limit run with operations", r)
		}
	}
}

// TestFrameRoundTrip checks that a follower's decoding of the leader's
// frame gives back the commands.
func TestFrameRoundTrip(t *testing.T) {
	cmds := [][]byte{[]byte("a"), {}, []byte("three")}
	b := encodeFrame(nil, 7, cmds)
	if len(b) < frameHead {
		t.Fatalf("frame of %d bytes", len(b))
	}
	got := appendCommands(nil, b[frameHead:])
	if len(got) != len(cmds) {
		t.Fatalf("%d commands back, want %d", len(got), len(cmds))
	}
	for i := range cmds {
		if string(got[i]) != string(cmds[i]) {
			t.Errorf("command %d: %q, want %q", i, got[i], cmds[i])
		}
	}
}

func readResults(t *testing.T, path string) []result {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rs []result
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		rs = append(rs, r)
	}
	return rs
}

// TestRatios pairs the n-th floor run of a cell with the n-th run of each
// library and prints the medians of the per-run ratios.
func TestRatios(t *testing.T) {
	dir := t.TempDir()
	floor := filepath.Join(dir, "floor.jsonl")
	sbs := filepath.Join(dir, "sbs.jsonl")
	write := func(path string, lines ...string) {
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(floor,
		`{"mode":"floor","compare":"wal","library":"floor","clients":1,"ops_per_sec":1000,"p50_ms":1,"p99_ms":4,"cpu_us_per_op":100}`,
		`{"mode":"floor","compare":"wal","library":"floor","clients":1,"ops_per_sec":2000,"p50_ms":1,"p99_ms":4,"cpu_us_per_op":100}`)
	write(sbs,
		`{"mode":"throughput","compare":"wal","library":"reference","clients":1,"ops_per_sec":500,"p50_ms":2,"p99_ms":8,"cpu_us_per_op":200}`,
		`{"mode":"throughput","compare":"wal","library":"ours","clients":1,"ops_per_sec":800,"p50_ms":1,"p99_ms":4,"cpu_us_per_op":150}`,
		`{"mode":"throughput","compare":"wal","library":"reference","clients":1,"ops_per_sec":500,"p50_ms":2,"p99_ms":8,"cpu_us_per_op":200}`,
		`{"mode":"throughput","compare":"wal","library":"ours","clients":1,"ops_per_sec":1600,"p50_ms":1,"p99_ms":4,"cpu_us_per_op":150}`,
		`{"mode":"snapshot","compare":"wal","library":"ours"}`)
	var out strings.Builder
	if err := run([]string{"-ratios", floor + "," + sbs}, &out, os.Stderr); err != nil {
		t.Fatal(err)
	}
	// floor/ref 2 and 4, median 3; ours/floor 0.8 both; ours/ref 1.6 and 3.2, median 2.4.
	want := "| wal | 1 | 2 | 3.00 | 0.80 | 2.40 | 1.00 / 1.00 / 2.00 | 4.0 / 4.0 / 8.0 | 0.50 | 0.50 | 100 / 150 / 200 |"
	if !strings.Contains(out.String(), want) {
		t.Errorf("want the line\n%s\nin\n%s", want, out.String())
	}
}
