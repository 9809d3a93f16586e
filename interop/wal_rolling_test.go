package interop

import "testing"

// TestWALMigrationRolling is the rolling migration of
// migration_rolling_test.go with every node's log and stable store in a
// WAL directory instead of raft.db: a cluster of the reference on
// raft-wal v0.4.0 is converted one node at a time to ours on our wal
// package, on the same directories and addresses, under load, and one
// node back and forth; no acknowledged command is lost.
func TestWALMigrationRolling(t *testing.T) {
	parallelUnlessRace(t)
	set := migSettings
	set.walLogs = true
	runRollingMigration(t, set)
}
