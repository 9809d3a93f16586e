package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary run as raftkv itself, so that the tests
// below start real server processes without building the command first.
func TestMain(m *testing.M) {
	if os.Getenv("RAFTKV_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// proc is a raftkv serve process.
type proc struct {
	cmd      *exec.Cmd
	stderr   *syncBuffer
	raftAddr string
	httpAddr string
	exited   chan error
}

// startProc runs raftkv serve with args and waits for the line that says
// it serves (printed once it has joined, when -join is given).
func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	cmd := raftkvCommand(append([]string{"serve", "-heartbeat", "300ms"}, args...)...)
	p := &proc{cmd: cmd, stderr: &syncBuffer{}, exited: make(chan error, 1)}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("raftkv serve %v: no start line (%v); stderr:\n%s", args, err, p.stderr)
	}
	// "raftkv ID: raft on ADDR, HTTP on ADDR"
	if _, err := fmt.Sscanf(strings.ReplaceAll(line, ",", ""), "raftkv %s raft on %s HTTP on %s", new(string), &p.raftAddr, &p.httpAddr); err != nil {
		t.Fatalf("start line %q: %v", line, err)
	}
	return p
}

// state asks the process for its raft state.
func (p *proc) state() string {
	resp, err := client.Get("http://" + p.httpAddr + "/status")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var st statusAnswer
	json.NewDecoder(resp.Body).Decode(&st)
	return st.State
}

// terminate sends SIGTERM and waits for the process to exit.
func (p *proc) terminate(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		p.exited <- err // for the cleanup
		if err != nil {
			t.Fatalf("raftkv exited with %v after SIGTERM; stderr:\n%s", err, p.stderr)
		}
	case <-time.After(settle):
		t.Fatalf("raftkv did not exit after SIGTERM; stderr:\n%s", p.stderr)
	}
}

// SIGTERM on the leader's process hands leadership over and exits
// cleanly; the process restarts on its data directory (its stores were
// closed) and catches up.
func TestProcess_SIGTERMOnTheLeaderHandsOver(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	p1 := startProc(t, "-id", "p1", "-raft", "127.0.0.1:0", "-http", "127.0.0.1:0", "-data", dirs[0], "-bootstrap", "-secret", "k")
	eventually(t, "first write", func() error { return put(p1.httpAddr, "k", "1") })
	procs := []*proc{p1}
	for i, id := range []string{"p2", "p3"} {
		procs = append(procs, startProc(t, "-id", id, "-raft", "127.0.0.1:0", "-http", "127.0.0.1:0", "-data", dirs[i+1], "-join", p1.httpAddr, "-secret", "k"))
	}
	var leader int
	eventually(t, "a leader", func() error {
		for i, p := range procs {
			if p.state() == "Leader" {
				leader = i
				return nil
			}
		}
		return fmt.Errorf("no leader")
	})
	old := procs[leader]
	old.terminate(t)
	if l := old.stderr.String(); !strings.Contains(l, "handed leadership over before shutting down") {
		t.Fatalf("the leader exited without handing leadership over:\n%s", l)
	}
	var rest []*proc
	for _, p := range procs {
		if p != old {
			rest = append(rest, p)
		}
	}
	eventually(t, "write after the hand-off", func() error { return put(rest[0].httpAddr, "k", "2") })
	// A follower's SIGTERM is clean too. (Only what it logs once told to
	// stop counts: on a loaded machine it may have led for a moment
	// while the old leader was gone, and logged failures to reach it.)
	logged := len(rest[1].stderr.String())
	rest[1].terminate(t)
	if l := rest[1].stderr.String()[logged:]; strings.Contains(l, "[ERROR]") {
		t.Errorf("a follower logged errors while stopping:\n%s", l)
	}

	back := startProc(t, "-id", fmt.Sprint("p", leader+1), "-raft", old.raftAddr, "-http", old.httpAddr, "-data", dirs[leader], "-secret", "k")
	eventually(t, "the restarted leader catches up", func() error {
		resp, err := client.Get("http://" + back.httpAddr + "/kv/k?consistency=stale")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var b strings.Builder
		bufio.NewReader(resp.Body).WriteTo(&b)
		if resp.StatusCode != http.StatusOK || b.String() != "2" {
			return fmt.Errorf("%d %q", resp.StatusCode, b.String())
		}
		return nil
	})
}
