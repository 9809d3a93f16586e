package interop

import (
	"testing"
	"time"
)

// raft-boltdb v2.3.0's own tests, run against our raftboltdb package.
//
// Their test files belong to their package (they read unexported names),
// so they are copied into a package of the same name in a temporary
// module, beside a small file written here (suiteBoltShim) that gives them
// those names on top of ours. Their benchmarks import the reference's
// bench package: it is copied too, rewritten to ours, and each benchmark
// runs once as a smoke test.

// suiteBoltDrop lists the tests of theirs that are not run, with why.
var suiteBoltDrop = map[string]string{
	// MigrateToV2 copies a file of the older github.com/boltdb/bolt format
	// into a v2 store. raftboltdb does not provide it (raftboltdb/doc.go):
	// it would make every user of ours depend on that unmaintained package
	// for a one-time step that raft-boltdb's own MigrateToV2 already does;
	// our store opens the file it produces.
	"TestBoltStore_MigrateToV2": "MigrateToV2 is not part of raftboltdb (raftboltdb/doc.go)",
}

// suiteBoltShim supplies the names their tests take from their own
// package: our BoltStore (with the path field they read), Options,
// ErrKeyNotFound,
// NewBoltStore, New, and the file mode and bucket names of the format.
const suiteBoltShim = `// Code written for the interop tests of github.com/quorumkit/raft: the
// names raft-boltdb's tests expect from their package, on top of ours.

package raftboltdb

import ours "github.com/quorumkit/raft/raftboltdb"

// BoltStore is our store, with the path its tests read.
type BoltStore struct {
	*ours.BoltStore
	path string
}

// Options are our options.
type Options = ours.Options

// ErrKeyNotFound is our error for a missing stable key.
var ErrKeyNotFound = ours.ErrKeyNotFound

// NewBoltStore opens our store at path.
func NewBoltStore(path string) (*BoltStore, error) {
	return New(Options{Path: path})
}

// New opens our store with options; its error is ours, unchanged.
func New(options Options) (*BoltStore, error) {
	s, err := ours.New(options)
	if err != nil {
		return nil, err
	}
	return &BoltStore{BoltStore: s, path: options.Path}, nil
}

// The file mode of a new file and the bucket names of the format.
const (
	dbFileMode = 0o600
	dbLogs     = "logs"
	dbConf     = "conf"
)
`

// suiteBoltSuite is raft-boltdb v2.3.0's suite against ours.
func suiteBoltSuite() foreignSuite {
	ours := map[string]string{
		"github.com/hashicorp/raft":       "github.com/quorumkit/raft",
		"github.com/hashicorp/raft/bench": suitesModule + "/bench",
	}
	return foreignSuite{
		Copies: []foreignCopy{
			{
				Module:  "github.com/hashicorp/raft-boltdb/v2",
				Version: "v2.3.0",
				Files:   []string{"*_test.go"},
				Dir:     "raftboltdb",
				Imports: ours,
				Drop:    suiteBoltDrop,
			},
			{
				Module:  "github.com/hashicorp/raft",
				Version: "v1.8.0",
				Files:   []string{"bench/*.go"},
				Dir:     ".",
				Imports: ours,
			},
		},
		Generated: map[string][]byte{"raftboltdb/shim.go": []byte(suiteBoltShim)},
		Packages:  []string{"./raftboltdb"},
		// Each benchmark runs once, as a smoke test.
		RunFlags:     []string{"-test.bench=.", "-test.benchtime=1x"},
		BuildTimeout: 5 * time.Minute,
		RunTimeout:   3 * time.Minute,
	}
}

// TestSuitesRaftBoltDB runs every test of raft-boltdb v2.3.0 but those in
// suiteBoltDrop against our raftboltdb, and each of its benchmarks once;
// all must pass.
func TestSuitesRaftBoltDB(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs another module's tests (-short)")
	}
	for name, why := range suiteBoltDrop {
		t.Logf("not run: %s: %s", name, why)
	}
	runForeignSuite(t, "raftboltdb", suiteBoltSuite())
}
