package wal

import (
	"fmt"
	"os"
	"testing"
)

// The kill test needs a second process: it re-executes this test binary
// with childEnv set, and TestMain then runs the child's role instead of
// the tests.
const (
	childEnv     = "WAL_TEST_CHILD"
	childDirEnv  = "WAL_TEST_DIR"
	childSeedEnv = "WAL_TEST_SEED"
	childLogEnv  = "WAL_TEST_LOG"
	childTermEnv = "WAL_TEST_TERM"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		var err error
		switch role {
		case "writer":
			err = childWriter(os.Getenv(childDirEnv), os.Getenv(childSeedEnv), os.Getenv(childTermEnv), os.Getenv(childLogEnv))
		default:
			err = fmt.Errorf("unknown child role %q", role)
		}
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
