package interop

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"testing"
)

// interopParallel is how many parallel tests run at once unless -parallel
// says otherwise. The parallel tests of this package spend most of their
// time waiting for elections, timeouts and other processes, not on a CPU,
// so the default (GOMAXPROCS, 2 on a small machine) would leave the
// machine idle while they wait one after another.
const interopParallel = 6

// parallelUnlessRace marks t as a parallel test, except in a binary built
// with -race: the race detector slows every node several times over, and
// the real-time tests that retry when the machine starves a leader ran out
// of retries with six of them at once (TestCrossLibSnapshotInstallBothWays,
// leadership lost in three rounds out of three). Under -race they run one
// at a time, as before, and time is not what -race runs are short of.
func parallelUnlessRace(t *testing.T) {
	t.Helper()
	if !suiteRaceEnabled {
		t.Parallel()
	}
}

// TestMain raises the default of -parallel to interopParallel (not under
// -race: see parallelUnlessRace), runs the tests and then removes the
// builds of other people's suites (suites_build_test.go).
func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit && !suiteRaceEnabled {
		if err := flag.Set("test.parallel", strconv.Itoa(interopParallel)); err != nil {
			fmt.Fprintf(os.Stderr, "setting -test.parallel: %v\n", err)
			os.Exit(2)
		}
	}
	code := m.Run()
	suiteRemoveBuilds()
	os.Exit(code)
}
