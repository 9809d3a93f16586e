package main

import (
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/quorumkit/raft"
	"github.com/quorumkit/raft/raftboltdb"
	"github.com/quorumkit/raft/wal"
)

// logStore runs the floor on one of QuorumKit Raft's own stores, opened as
// sidebyside opens them for ours (interop/internal/sidebyside/ours),
// given each batch as the raft.Log entries a library would store. Set
// beside the floor on the bare store (bolt, wal) and a library on the same
// store, it tells the store's share of the gap from the library's.
type logStore struct {
	s       raft.LogStore
	closeFn func() error
	logs    []raft.Log
	ptrs    []*raft.Log
}

func openRaftBoltDB(dir string) (*logStore, error) {
	b, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
	if err != nil {
		return nil, err
	}
	return &logStore{s: b, closeFn: b.Close}, nil
}

func openWALStore(dir string) (*logStore, error) {
	w, err := wal.Open(dir, wal.WithLogger(hclog.NewNullLogger()))
	if err != nil {
		return nil, err
	}
	return &logStore{s: w, closeFn: w.Close}, nil
}

func (l *logStore) close() error { return l.closeFn() }

func (l *logStore) append(first uint64, cmds [][]byte) error {
	if cap(l.logs) < len(cmds) {
		l.logs = make([]raft.Log, 0, 2*len(cmds))
	}
	l.logs, l.ptrs = l.logs[:len(cmds)], l.ptrs[:0]
	now := time.Now()
	for i, c := range cmds {
		l.logs[i] = raft.Log{Index: first + uint64(i), Term: 1, Type: raft.LogCommand, Data: c, AppendedAt: now}
		l.ptrs = append(l.ptrs, &l.logs[i])
	}
	return l.s.StoreLogs(l.ptrs)
}
