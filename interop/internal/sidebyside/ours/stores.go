package ours

import (
	"fmt"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	qraft "github.com/quorumkit/raft"
	"github.com/quorumkit/raft/raftboltdb"
	"github.com/quorumkit/raft/wal"
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
// The "wal" comparison pits our wal package against the reference's
// raft-wal v0.4.0.
var storeKinds = map[string]storeKind{
	"bolt": {label: "raftboltdb", disk: true, open: openBolt},
	"wal":  {label: "wal", disk: true, open: openWAL},
	"mem":  {label: "InmemStore", open: openMem},
}

func openBolt(dir string) (stores, error) {
	s, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
	if err != nil {
		return stores{}, fmt.Errorf("opening raftboltdb: %w", err)
	}
	return stores{log: s, stable: s, close: s.Close}, nil
}

// openWAL opens our wal package on dir; its Close also closes the meta
// store it opened.
func openWAL(dir string) (stores, error) {
	w, err := wal.Open(dir, wal.WithLogger(hclog.NewNullLogger()))
	if err != nil {
		return stores{}, fmt.Errorf("opening wal: %w", err)
	}
	return stores{log: w, stable: w, close: w.Close}, nil
}

func openMem(string) (stores, error) {
	s := qraft.NewInmemStore()
	return stores{log: s, stable: s, close: func() error { return nil }}, nil
}
