package interop

import (
	"fmt"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/quorumkit/raft/wal"
)

// TestWALMigrationRolling is the rolling migration of
// migration_rolling_test.go with every node's log and stable store in a
// raft-wal directory: a cluster of the reference on raft-wal v0.4.0 is
// converted one node at a time to ours on our wal package, on the same
// directories, under load, and one node back and forth; no acknowledged
// command is lost.
func TestWALMigrationRolling(t *testing.T) {
	set := xlibMigrationSettings
	set.walLogs = true
	runRollingMigration(t, set)
}

// xlibReadWALDir reads the log bounds and CurrentTerm of a closed WAL
// directory with our wal package (which reads either library's).
func xlibReadWALDir(dir string) (first, last, term uint64, err error) {
	w, err := wal.Open(dir, wal.WithLogger(hclog.NewNullLogger()))
	if err != nil {
		return 0, 0, 0, fmt.Errorf("opening %s: %w", dir, err)
	}
	defer w.Close()
	if first, err = w.FirstIndex(); err != nil {
		return 0, 0, 0, err
	}
	if last, err = w.LastIndex(); err != nil {
		return 0, 0, 0, err
	}
	term, err = w.GetUint64([]byte("CurrentTerm"))
	return first, last, term, err
}
