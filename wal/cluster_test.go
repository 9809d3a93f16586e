package wal

import (
	"testing"

	"github.com/quorumkit/raft/internal/storetest"
)

// TestClusterOnWAL runs a 3-node cluster on WAL directories with small
// segments while clients write: the leader is stopped and restarted on
// its directory (in this process: Close releases the files), then every
// node is stopped with writes in flight and the cluster restarted. Every
// acknowledged write must be applied once, in the same order everywhere
// (internal/storetest).
func TestClusterOnWAL(t *testing.T) {
	storetest.RunClusterRestart(t, storetest.ClusterRestart{
		Prefix:        "wal",
		RestartLeader: true,
		Open: func(dir string, bootstrap bool) (storetest.Store, error) {
			opts := []walOpt{WithLogger(quietLogger())}
			if !bootstrap {
				opts = append(opts, WithSegmentSize(8192))
			}
			w, err := Open(dir, opts...)
			if err != nil {
				return nil, err
			}
			return w, nil
		},
	})
}
