package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test binaries of other people's suites are built once per process
// and run by every test that asks for them, so that each -count pass runs
// every one of their tests again without building them again. A build
// depends only on the sources, which do not change while this process
// runs; results are never kept: every pass runs the binaries anew.

// suiteBuilds holds the suites built so far in this process, by name, in
// directories under dir, which TestMain removes on the way out.
var suiteBuilds struct {
	sync.Mutex
	dir       string
	test2json string // the go tool that turns a binary's output into events
	byName    map[string]*suiteBuild
}

// suiteBuild is a suite's temporary module and its test binaries.
type suiteBuild struct {
	m *suiteModule
	// bins maps each package directory (relative to the module, "." for
	// its root) to its test binary.
	bins map[string]string
	// order lists the package directories in s.Packages' order.
	order []string
}

// suiteRemoveBuilds removes every suite built by this process; TestMain
// calls it once the tests are done.
func suiteRemoveBuilds() {
	suiteBuilds.Lock()
	defer suiteBuilds.Unlock()
	if suiteBuilds.dir != "" {
		if err := os.RemoveAll(suiteBuilds.dir); err != nil {
			fmt.Fprintf(os.Stderr, "removing the suites' builds: %v\n", err)
		}
	}
}

// suitePackageDir turns a package pattern of foreignSuite.Packages ("./wal")
// into its directory relative to the module ("wal"; "." for the root).
func suitePackageDir(pattern string) string {
	return path.Clean(strings.TrimPrefix(pattern, "./"))
}

// buildForeignSuite returns the build of the suite called name, writing
// the temporary module and building its test binaries the first time it
// is asked for in this process. A failed build is not kept: the next
// test to ask tries again.
func buildForeignSuite(t *testing.T, ctx context.Context, name string, s foreignSuite) *suiteBuild {
	t.Helper()
	suiteBuilds.Lock()
	defer suiteBuilds.Unlock()
	if b, ok := suiteBuilds.byName[name]; ok {
		return b
	}
	if suiteBuilds.dir == "" {
		dir, err := os.MkdirTemp("", "interop-suites-")
		if err != nil {
			t.Fatal(err)
		}
		suiteBuilds.dir = dir
		suiteBuilds.byName = map[string]*suiteBuild{}
	}
	dir, err := os.MkdirTemp(suiteBuilds.dir, name+"-")
	if err != nil {
		t.Fatal(err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, suiteTimeLeft(t, s.BuildTimeout))
	defer cancel()
	start := time.Now()
	if suiteBuilds.test2json == "" {
		bin := filepath.Join(suiteBuilds.dir, "test2json")
		if _, err := suiteGo(ctx, ".", "build", "-o", bin, "cmd/test2json"); err != nil {
			t.Fatal(err)
		}
		suiteBuilds.test2json = bin
	}
	m := newSuiteModule(t, ctx, s, filepath.Join(dir, "module"))
	b := &suiteBuild{m: m, bins: map[string]string{}}
	// One package at a time: with -mod=mod the go command may update the
	// module's go.mod and go.sum, which two commands must not do at once.
	for i, p := range s.Packages {
		rel := suitePackageDir(p)
		bin := filepath.Join(dir, fmt.Sprintf("%d.test", i))
		args := []string{"test", "-c", "-o", bin}
		if suiteRaceEnabled {
			args = append(args, "-race")
		}
		args = append(args, s.BuildFlags...)
		args = append(args, p)
		if _, err := suiteGo(ctx, m.dir, args...); err != nil {
			t.Fatalf("building the tests of %s: %v", p, err)
		}
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("building the tests of %s: no test binary: %v", p, err)
		}
		b.bins[rel] = bin
		b.order = append(b.order, rel)
	}
	t.Logf("built the suite's %d test binaries in %v (once per process)", len(b.order), time.Since(start).Round(time.Millisecond))
	suiteBuilds.byName[name] = b
	ok = true
	return b
}

// suiteTimeLeft returns want, or less if go test's -timeout comes sooner
// (keeping 30 s to report); it fails the test if less than 20 s is left.
func suiteTimeLeft(t *testing.T, want time.Duration) time.Duration {
	t.Helper()
	if dl, ok := t.Deadline(); ok {
		if left := time.Until(dl) - 30*time.Second; left < want {
			want = left
		}
	}
	if want < 20*time.Second {
		t.Fatalf("%v left before go test's -timeout: too little to build or run another module's tests; raise -timeout", want)
	}
	return want
}

// run runs every test binary of the suite at once, each in its package's
// directory as go test would, and gathers their events.
func (b *suiteBuild) run(t *testing.T, ctx context.Context, s foreignSuite) *suiteRun {
	t.Helper()
	timeout := suiteTimeLeft(t, s.RunTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	runs := make([]*suiteRun, len(b.order))
	var wg sync.WaitGroup
	for i, rel := range b.order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runs[i] = b.runPackage(ctx, rel, timeout, s.RunFlags)
		}()
	}
	wg.Wait()
	all := &suiteRun{results: map[string]*suiteResult{}, packages: map[string]string{}}
	var errs []error
	for i, r := range runs {
		for k, v := range r.results {
			all.results[k] = v
		}
		for k, v := range r.packages {
			all.packages[k] = v
		}
		if r.other.Len() > 0 {
			fmt.Fprintf(&all.other, "[package %s]\n%s", b.order[i], r.other.String())
		}
		if r.err != nil {
			errs = append(errs, fmt.Errorf("package %s: %w", b.order[i], r.err))
		}
	}
	if ctx.Err() != nil {
		errs = append(errs, fmt.Errorf("the suite's tests did not finish within %v: %w", timeout, ctx.Err()))
	}
	all.err = errors.Join(errs...)
	return all
}

// runPackage runs the test binary of the package directory rel through
// test2json and parses its events.
func (b *suiteBuild) runPackage(ctx context.Context, rel string, timeout time.Duration, flags []string) *suiteRun {
	importPath := suitesModule
	if rel != "." {
		importPath += "/" + rel
	}
	// The binary times out (and prints every goroutine) before its
	// context kills it.
	args := []string{"-p", importPath, b.bins[rel],
		"-test.v=test2json", "-test.paniconexit0", "-test.count=1",
		"-test.timeout=" + (timeout * 3 / 4).Round(time.Second).String()}
	args = append(args, flags...)
	cmd := exec.CommandContext(ctx, suiteBuilds.test2json, args...)
	cmd.Dir = filepath.Join(b.m.dir, filepath.FromSlash(rel))
	cmd.Env = suiteGoEnv()
	suiteOwnProcessGroup(cmd)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return &suiteRun{results: map[string]*suiteResult{}, packages: map[string]string{}, err: err}
	}
	if err := cmd.Start(); err != nil {
		return &suiteRun{results: map[string]*suiteResult{}, packages: map[string]string{}, err: err}
	}
	r := b.m.parse(stdout)
	r.err = cmd.Wait()
	r.other.Write(stderr.Bytes())
	return r
}
