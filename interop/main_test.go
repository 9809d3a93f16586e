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

// TestMain raises the default of -parallel to interopParallel, runs the
// tests and then removes the builds of other people's suites
// (suites_build_test.go).
func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		if err := flag.Set("test.parallel", strconv.Itoa(interopParallel)); err != nil {
			fmt.Fprintf(os.Stderr, "setting -test.parallel: %v\n", err)
			os.Exit(2)
		}
	}
	code := m.Run()
	suiteRemoveBuilds()
	os.Exit(code)
}
