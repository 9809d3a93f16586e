//go:build !race

package interop

// suiteRaceEnabled says that this test binary was built with -race; the
// suites it runs are then built with -race too.
const suiteRaceEnabled = false
