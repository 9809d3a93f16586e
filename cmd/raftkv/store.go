package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/quorumkit/raft"
	"github.com/quorumkit/raft/raftboltdb"
	"github.com/quorumkit/raft/wal"
)

// The kinds of log and stable store a raftkv data directory can hold.
const (
	storeWAL  = "wal"  // the wal package, in the directory wal/
	storeBolt = "bolt" // raftboltdb, in the file raft.db
)

// logStore is a log store that is also the stable store, as both kinds
// are.
type logStore interface {
	raft.LogStore
	raft.StableStore
	Close() error
}

// openStore opens the log and stable store of dataDir. A data directory
// that already holds a store keeps it, whatever want says: a server that
// ran on raftboltdb before wal became the default goes on with its
// raft.db rather than starting on an empty log. want ("wal" when empty,
// or "bolt") chooses the store of a new directory, and the one to use if
// the directory holds both. It returns the store and its kind.
func openStore(dataDir, want string, logger hclog.Logger) (logStore, string, error) {
	switch want {
	case "":
		want = storeWAL
	case storeWAL, storeBolt:
	default:
		return nil, "", fmt.Errorf("unknown store %q: want %s or %s", want, storeWAL, storeBolt)
	}
	boltPath := filepath.Join(dataDir, "raft.db")
	walDir := filepath.Join(dataDir, "wal")
	hasBolt, err := fileExists(boltPath)
	if err != nil {
		return nil, "", err
	}
	hasWAL, err := fileExists(filepath.Join(walDir, "wal-meta.db"))
	if err != nil {
		return nil, "", err
	}
	kind := want
	switch {
	case hasBolt && hasWAL:
		logger.Warn("the data directory holds both a raftboltdb file and a wal directory; using the one -store names",
			"store", want, "bolt", boltPath, "wal", walDir)
	case hasBolt && want == storeWAL:
		kind = storeBolt
		logger.Info("the data directory already holds a raftboltdb file: keeping raftboltdb (-store applies to new data directories; wal/migrate copies a raftboltdb store into a wal)",
			"path", boltPath)
	case hasWAL && want == storeBolt:
		kind = storeWAL
		logger.Info("the data directory already holds a wal: keeping it (-store applies to new data directories)",
			"path", walDir)
	}
	switch kind {
	case storeBolt:
		s, err := raftboltdb.NewBoltStore(boltPath)
		if err != nil {
			return nil, "", fmt.Errorf("opening the raftboltdb store %s: %w", boltPath, err)
		}
		return s, kind, nil
	default:
		if err := os.MkdirAll(walDir, 0o755); err != nil {
			return nil, "", fmt.Errorf("creating the wal directory: %w", err)
		}
		w, err := wal.Open(walDir, wal.WithLogger(logger.Named("wal")))
		if err != nil {
			return nil, "", fmt.Errorf("opening the wal %s: %w", walDir, err)
		}
		return w, kind, nil
	}
}

// fileExists reports whether path exists.
func fileExists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("looking for %s: %w", path, err)
}
