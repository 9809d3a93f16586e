package reference

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// storeKind is one kind of log and stable store the reference can run on.
type storeKind struct {
	label string
	// disk stores get a LogCache in front, as users run them.
	disk bool
	open func(dir string) (stores, error)
}

// stores is one node's opened log and stable store.
type stores struct {
	log    hraft.LogStore
	stable hraft.StableStore
	close  func() error
}

// storeKinds are the reference's stores, by the kind names the command
// line uses.
var storeKinds = map[string]storeKind{
	"bolt": {label: "raft-boltdb v2.3.0", disk: true, open: openBolt},
	"wal":  {label: "raft-wal v0.4.0", disk: true, open: openWAL},
	"mem":  {label: "InmemStore", open: openMem},
}

func openBolt(dir string) (stores, error) {
	s, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
	if err != nil {
		return stores{}, fmt.Errorf("opening raft-boltdb: %w", err)
	}
	return stores{log: s, stable: s, close: s.Close}, nil
}

// openWAL opens raft-wal with a meta store of its own, because the WAL's
// Close leaves its default meta store open; closing it here releases the
// file and its lock.
func openWAL(dir string) (stores, error) {
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(dir, wal.WithMetaStore(meta), wal.WithLogger(hclog.NewNullLogger()))
	if err != nil {
		meta.Close()
		return stores{}, fmt.Errorf("opening raft-wal: %w", err)
	}
	return stores{log: w, stable: w, close: func() error {
		return errors.Join(w.Close(), meta.Close())
	}}, nil
}

func openMem(string) (stores, error) {
	s := hraft.NewInmemStore()
	return stores{log: s, stable: s, close: func() error { return nil }}, nil
}
