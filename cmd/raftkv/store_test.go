package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Which log store a data directory runs on: wal for a new one unless
// -store bolt, and the store it already holds otherwise, so that a server
// that ran on raftboltdb never restarts on an empty log.

// startStoreServer starts a one-server cluster on dir with the given
// -store and raft address, bootstrapping it if told to. Its logs go to log.
func startStoreServer(t *testing.T, dir, store, raftAddr string, bootstrap bool, log io.Writer) *server {
	t.Helper()
	s, err := startServer(serverConfig{
		id: "node1", raftAddr: raftAddr, httpAddr: "127.0.0.1:0", dataDir: dir, store: store,
		bootstrap: bootstrap, heartbeat: 300 * time.Millisecond, logOutput: log,
	})
	if err != nil {
		t.Fatalf("starting on %s with -store %q: %v", dir, store, err)
	}
	return s
}

func mustExist(t *testing.T, path string, want bool) {
	t.Helper()
	_, err := os.Stat(path)
	if got := err == nil; got != want {
		t.Fatalf("%s exists: %v; want %v (%v)", path, got, want, err)
	}
}

func TestServe_NewDataDirectoryRunsOnWALByDefault(t *testing.T) {
	dir := t.TempDir()
	s := startStoreServer(t, dir, "", "127.0.0.1:0", true, io.Discard)
	defer s.close()
	if s.storeKind != storeWAL {
		t.Fatalf("store kind %q; want %q", s.storeKind, storeWAL)
	}
	eventually(t, "write", func() error { return put(s.cfg.httpAddr, "k", "v") })
	mustExist(t, filepath.Join(dir, "wal", "wal-meta.db"), true)
	mustExist(t, filepath.Join(dir, "raft.db"), false)
}

func TestServe_StoreBoltRunsOnRaftboltdb(t *testing.T) {
	dir := t.TempDir()
	s := startStoreServer(t, dir, storeBolt, "127.0.0.1:0", true, io.Discard)
	defer s.close()
	if s.storeKind != storeBolt {
		t.Fatalf("store kind %q; want %q", s.storeKind, storeBolt)
	}
	eventually(t, "write", func() error { return put(s.cfg.httpAddr, "k", "v") })
	mustExist(t, filepath.Join(dir, "raft.db"), true)
	mustExist(t, filepath.Join(dir, "wal"), false)
}

func TestServe_RefusesAnUnknownStore(t *testing.T) {
	s, err := startServer(serverConfig{
		id: "node1", raftAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0", dataDir: t.TempDir(), store: "rocks",
		bootstrap: true, logOutput: io.Discard,
	})
	if err == nil {
		s.close()
		t.Fatal("started with -store rocks")
	}
	if !strings.Contains(err.Error(), `unknown store "rocks"`) {
		t.Fatalf("unexpected error: %v", err)
	}
}

// A data directory written on one store is restarted with the other one
// asked for (and without -bootstrap, which would hide a lost log): it keeps
// its store, says so in its log, and serves what it held.
func TestServe_ExistingDataDirectoryKeepsItsStore(t *testing.T) {
	for _, tc := range []struct{ first, then, logged string }{
		{first: storeBolt, then: storeWAL, logged: "already holds a raftboltdb file: keeping raftboltdb"},
		{first: storeBolt, then: "", logged: "already holds a raftboltdb file: keeping raftboltdb"},
		{first: storeWAL, then: storeBolt, logged: "already holds a wal: keeping it"},
	} {
		t.Run(fmt.Sprintf("%s_then_%q", tc.first, tc.then), func(t *testing.T) {
			dir := t.TempDir()
			s := startStoreServer(t, dir, tc.first, "127.0.0.1:0", true, io.Discard)
			eventually(t, "write", func() error { return put(s.cfg.httpAddr, "greeting", "hello") })
			// The one-server configuration holds this raft address; the
			// next incarnation listens on it again.
			raftAddr := string(s.trans.LocalAddr())
			s.close()

			var log bytes.Buffer
			s = startStoreServer(t, dir, tc.then, raftAddr, false, &log)
			stop := sync.OnceFunc(s.close)
			defer stop()
			if s.storeKind != tc.first {
				t.Fatalf("restarted with -store %q on %s: store kind %q; want %q", tc.then, tc.first, s.storeKind, tc.first)
			}
			eventually(t, "read after the restart", func() error {
				v, err := get(s.cfg.httpAddr, "greeting")
				if err == nil && v != "hello" {
					err = fmt.Errorf("read %q", v)
				}
				return err
			})
			stop()
			if !strings.Contains(log.String(), tc.logged) {
				t.Fatalf("the restart's log does not say %q:\n%s", tc.logged, log.String())
			}
		})
	}
}
