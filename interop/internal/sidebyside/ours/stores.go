package ours

import (
	"fmt"
	"path/filepath"

	qraft "github.com/quorumkit/raft"
	"github.com/quorumkit/raft/raftboltdb"
)

// storeKind is one kind of log and stable store QuorumKit Raft can run on.
type storeKind struct {
	label string
	// disk stores get a LogCache in front, as users run them.
	disk bool
	open func(dir string) (stores, error)
}

// stores is one node's opened log and stable store.
type stores struct {
	log    qraft.LogStore
	stable qraft.StableStore
	close  func() error
}

// storeKinds are this library's stores, by the kind names the command
// line uses.
//
// HOOK for the wal store (github.com/quorumkit/raft/wal, being written):
// once it lands, import it and add
//
//	"wal": {label: "wal", disk: true, open: openWAL},
//
// with an openWAL beside openBolt that opens the WAL in dir and returns
// it as both stores and its Close as close. The "wal" comparison then
// pits it against raft-wal instead of against raftboltdb.
var storeKinds = map[string]storeKind{
	"bolt": {label: "raftboltdb", disk: true, open: openBolt},
	"mem":  {label: "InmemStore", open: openMem},
}

func openBolt(dir string) (stores, error) {
	s, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
	if err != nil {
		return stores{}, fmt.Errorf("opening raftboltdb: %w", err)
	}
	return stores{log: s, stable: s, close: s.Close}, nil
}

func openMem(string) (stores, error) {
	s := qraft.NewInmemStore()
	return stores{log: s, stable: s, close: func() error { return nil }}, nil
}
