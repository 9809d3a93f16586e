package raftboltdb

import (
	"path/filepath"
	"testing"

	"github.com/quorumkit/raft/internal/storetest"
	"go.etcd.io/bbolt"
)

// TestCluster_RestartOnBoltStoresKeepsEveryAcknowledgedWrite runs a 3-node
// cluster on BoltStore files, stops every node while clients write, and
// restarts the whole cluster on the same files: every write that was
// acknowledged must be there, once, in the same order on every node
// (internal/storetest).
func TestCluster_RestartOnBoltStoresKeepsEveryAcknowledgedWrite(t *testing.T) {
	storetest.RunClusterRestart(t, storetest.ClusterRestart{
		Prefix: "bolt",
		Open: func(dir string, bootstrap bool) (storetest.Store, error) {
			opts := Options{Path: filepath.Join(dir, "raft.db")}
			if !bootstrap {
				opts.BoltOptions = &bbolt.Options{Timeout: testTimeout}
			}
			s, err := New(opts)
			if err != nil {
				return nil, err
			}
			return s, nil
		},
	})
}
