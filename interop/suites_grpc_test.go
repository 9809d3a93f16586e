package interop

import (
	"os"
	"testing"
	"time"
)

// A cluster over a third-party transport, github.com/Jille/raft-grpc-transport
// v1.6.1, on both libraries. Its package imports github.com/hashicorp/raft,
// so for ours it is copied from the module cache with that import rewritten.
// The cluster test itself (testdata/suites/grpccluster/cluster_test.go) is
// written against the reference's API and runs twice in one temporary
// module: as written, on the reference (the control), and rewritten to our
// raft and raftboltdb packages. The transport's own tests run on both too.
//
// The gRPC modules live only in that temporary module: adding them to
// interop's go.mod would make every interop build resolve them, for one
// test. The go command fetches them through the module proxy on the first
// run (GOFLAGS=-mod=mod) and the module and build caches serve later runs.

// suiteGRPCTransport is the transport's module; the proxy serves v1.6.1
// without listing it, so the version is always named.
const (
	suiteGRPCTransport        = "github.com/Jille/raft-grpc-transport"
	suiteGRPCTransportVersion = "v1.6.1"
)

// suiteGRPCSuite is the temporary module: the transport copied twice
// (transport/ on ours, transportref/ on the reference) with its tests, and
// the cluster test in ours/ and ref/.
func suiteGRPCSuite(t *testing.T) foreignSuite {
	t.Helper()
	cluster, err := os.ReadFile("testdata/suites/grpccluster/cluster_test.go")
	if err != nil {
		t.Fatal(err)
	}
	ours := map[string]string{
		"github.com/hashicorp/raft":           "github.com/quorumkit/raft",
		"github.com/hashicorp/raft-boltdb/v2": "github.com/quorumkit/raft/raftboltdb",
		suiteGRPCTransport:                    suitesModule + "/transport",
	}
	ref := map[string]string{suiteGRPCTransport: suitesModule + "/transportref"}
	rewrite := func(imports map[string]string) []byte {
		src, err := suiteRewrite("cluster_test.go", cluster, imports, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	copyTransport := func(dir string, imports map[string]string) foreignCopy {
		return foreignCopy{
			Module:  suiteGRPCTransport,
			Version: suiteGRPCTransportVersion,
			// The package and its tests; its proto package is not copied
			// (it does not import raft) but used from the module itself.
			Files:   []string{"*.go"},
			Dir:     dir,
			Imports: imports,
		}
	}
	return foreignSuite{
		Requires: []string{"google.golang.org/grpc v1.40.0"},
		Copies: []foreignCopy{
			copyTransport("transport", ours),
			copyTransport("transportref", ref),
		},
		Generated: map[string][]byte{
			"ours/cluster_test.go": rewrite(ours),
			"ref/cluster_test.go":  rewrite(ref),
		},
		Packages: []string{"./transport", "./transportref", "./ours", "./ref"},
		// The first build compiles gRPC and may fetch it.
		BuildTimeout: 8 * time.Minute,
		RunTimeout:   3 * time.Minute,
	}
}

// TestSuitesGRPCCluster runs the cluster test and the transport's own tests
// on both libraries; all must pass.
func TestSuitesGRPCCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gRPC and runs a cluster in another module (-short)")
	}
	runForeignSuite(t, "grpc", suiteGRPCSuite(t))
}
