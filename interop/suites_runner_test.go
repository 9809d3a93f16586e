package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The runner of other people's test suites. Nothing of theirs is kept in
// this repository: at test time a suite's files are copied from the Go
// module cache into a module made in a temporary directory, their imports
// of the reference are rewritten to ours, `go test -c` builds a test binary
// of each package there (once per process: suites_build_test.go), and every
// run of a suite runs those binaries as subprocesses, side by side, their
// output turned into events by test2json as go test would. The result of
// each of their tests becomes a subtest here.
//
// The temporary module starts from this module's go.mod requirements and
// go.sum, replaces github.com/quorumkit/raft with the repository root, and
// adds what the suite needs. With GOFLAGS=-mod=mod the go command resolves
// anything missing through the module proxy (only the gRPC suite needs
// modules this module does not already have).

// suitesModule is the module path of every temporary module.
const suitesModule = "suites.test"

// foreignCopy copies files of one module version into a package directory
// of the temporary module.
type foreignCopy struct {
	// Module and Version name the source, e.g. github.com/hashicorp/raft-boltdb/v2
	// at v2.3.0. The version is always explicit: some modules' versions
	// are served by the proxy without being listed.
	Module, Version string
	// Files are path.Match patterns, relative to the module root, of the
	// files to copy; a file is copied to the same relative path under Dir.
	Files []string
	// Dir is the destination, relative to the temporary module's root.
	Dir string
	// Imports rewrites import paths (exact matches) in the copied Go files.
	Imports map[string]string
	// Drop removes top-level functions by name from the copied Go files,
	// with the reason; imports left unused are removed with them. Each
	// name must exist in the copied files.
	Drop map[string]string
}

// foreignSuite is one temporary module and the packages to test in it.
type foreignSuite struct {
	// Requires are extra "module version" requirements.
	Requires []string
	// Copies are the files taken from module versions.
	Copies []foreignCopy
	// Generated are files written by this repository's tests, by path
	// relative to the module root.
	Generated map[string][]byte
	// Packages are the patterns passed to go test, e.g. "./raftboltdb".
	Packages []string
	// BuildFlags are extra flags of go test -c, e.g. "-vet=off"; -race is
	// added when this binary was built with it.
	BuildFlags []string
	// RunFlags are extra flags of every test binary, in the binary's own
	// spelling, e.g. "-test.bench=.".
	RunFlags []string
	// BuildTimeout bounds the build of the test binaries; RunTimeout
	// bounds one run of them (they run side by side).
	BuildTimeout, RunTimeout time.Duration
}

// suiteModule is a temporary module built from a foreignSuite.
type suiteModule struct {
	dir     string
	modDirs map[string]string // "module@version" -> its directory in the module cache
	// tests lists, per package directory (relative), the top-level Test
	// functions found in its copied and generated _test.go files.
	tests map[string][]string
}

// suiteRepoRoot is the root of this repository (interop's parent).
func suiteRepoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s: %v", root, err)
	}
	return root
}

// suiteGoEnv is the environment of every go command the runner starts.
func suiteGoEnv() []string {
	env := []string{"GOFLAGS=-mod=mod -buildvcs=false", "GOWORK=off", "GOTOOLCHAIN=local"}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOFLAGS", "GOWORK", "GOTOOLCHAIN":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// suiteGo runs a go command in dir and returns its standard output; a
// failure carries its standard error.
func suiteGo(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = suiteGoEnv()
	suiteOwnProcessGroup(cmd)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out, nil
}

// newSuiteModule writes the temporary module of s in dir.
func newSuiteModule(t *testing.T, ctx context.Context, s foreignSuite, dir string) *suiteModule {
	t.Helper()
	root := suiteRepoRoot(t)
	m := &suiteModule{dir: dir, modDirs: map[string]string{}, tests: map[string][]string{}}

	// go.mod: this module's requirements, ours replaced by the repository.
	out, err := suiteGo(ctx, ".", "mod", "edit", "-json")
	if err != nil {
		t.Fatal(err)
	}
	var own struct {
		Go      string
		Require []struct{ Path, Version string }
	}
	if err := json.Unmarshal(out, &own); err != nil {
		t.Fatalf("interop's go.mod: %v", err)
	}
	var mod strings.Builder
	fmt.Fprintf(&mod, "module %s\n\ngo %s\n\nrequire (\n", suitesModule, own.Go)
	var order []string
	versions := map[string]string{}
	require := func(p, v string) {
		if _, ok := versions[p]; !ok {
			order = append(order, p)
		}
		versions[p] = v
	}
	for _, r := range own.Require {
		require(r.Path, r.Version)
	}
	for _, r := range s.Requires {
		p, v, _ := strings.Cut(r, " ")
		require(p, v)
	}
	for _, c := range s.Copies {
		require(c.Module, c.Version)
	}
	for _, p := range order {
		fmt.Fprintf(&mod, "\t%s %s\n", p, versions[p])
	}
	fmt.Fprintf(&mod, ")\n\nreplace github.com/quorumkit/raft => %s\n", strconv.Quote(root))
	m.write(t, "go.mod", []byte(mod.String()))
	sum, err := os.ReadFile("go.sum")
	if err != nil {
		t.Fatal(err)
	}
	m.write(t, "go.sum", sum)

	for _, c := range s.Copies {
		m.copyFrom(t, ctx, c)
	}
	names := make([]string, 0, len(s.Generated))
	for name := range s.Generated {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		m.write(t, name, s.Generated[name])
		if strings.HasSuffix(name, "_test.go") {
			m.noteTests(t, name, s.Generated[name])
		}
	}
	return m
}

func (m *suiteModule) write(t *testing.T, rel string, data []byte) {
	t.Helper()
	p := filepath.Join(m.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// noteTests records the top-level Test functions of a _test.go file.
func (m *suiteModule) noteTests(t *testing.T, rel string, src []byte) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), rel, src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	dir := path.Dir(rel)
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && suiteIsTest(fn) {
			m.tests[dir] = append(m.tests[dir], fn.Name.Name)
		}
	}
	sort.Strings(m.tests[dir])
}

// suiteIsTest says whether fn is a test function go test would run.
func suiteIsTest(fn *ast.FuncDecl) bool {
	name := fn.Name.Name
	if !strings.HasPrefix(name, "Test") || name == "TestMain" {
		return false
	}
	if rest := name[len("Test"):]; rest != "" {
		if r := rest[0]; r >= 'a' && r <= 'z' {
			return false
		}
	}
	params := fn.Type.Params.List
	if len(params) != 1 {
		return false
	}
	star, ok := params[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "T"
}

// copyFrom copies c's files, rewritten, into the module.
func (m *suiteModule) copyFrom(t *testing.T, ctx context.Context, c foreignCopy) {
	t.Helper()
	key := c.Module + "@" + c.Version
	src, ok := m.modDirs[key]
	if !ok {
		out, err := suiteGo(ctx, m.dir, "mod", "download", "-json", key)
		if err != nil {
			t.Fatalf("fetching %s (through the module proxy unless cached): %v", key, err)
		}
		var info struct{ Dir, Error string }
		if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
			t.Fatalf("go mod download %s: %v %s", key, err, info.Error)
		}
		src = info.Dir
		m.modDirs[key] = src
	}
	dropped := map[string]bool{}
	copied := 0
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !suiteMatchAny(c.Files, rel) {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		dest := path.Join(c.Dir, rel)
		if strings.HasSuffix(rel, ".go") {
			data, err = suiteRewrite(dest, data, c.Imports, c.Drop, dropped)
			if err != nil {
				return err
			}
			if strings.HasSuffix(rel, "_test.go") {
				m.noteTests(t, dest, data)
			}
		}
		m.write(t, dest, data)
		copied++
		return nil
	})
	if err != nil {
		t.Fatalf("copying %s: %v", key, err)
	}
	if copied == 0 {
		t.Fatalf("copying %s: no file matches %q", key, c.Files)
	}
	for name := range c.Drop {
		if !dropped[name] {
			t.Fatalf("copying %s: %s, to be dropped, is in none of the copied files", key, name)
		}
	}
}

func suiteMatchAny(patterns []string, rel string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, rel); ok {
			return true
		}
	}
	return false
}

// suiteRewrite rewrites the imports of a Go file and removes the top-level
// functions named in drop (noting each one removed in dropped), then the
// imports nothing uses any more.
func suiteRewrite(name string, src []byte, imports map[string]string, drop map[string]string, dropped map[string]bool) ([]byte, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	if len(drop) > 0 {
		kept := f.Decls[:0]
		inDropped := map[string]bool{}
		for _, d := range f.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil {
				if _, ok := drop[fn.Name.Name]; ok {
					dropped[fn.Name.Name] = true
					suiteSelectorNames(fn, inDropped)
					continue
				}
			}
			kept = append(kept, d)
		}
		f.Decls = kept
		// Comments inside removed functions would otherwise be printed
		// elsewhere.
		var comments []*ast.CommentGroup
		for _, cg := range f.Comments {
			if suiteInDecls(f.Decls, cg.Pos()) || cg.Pos() < f.Package {
				comments = append(comments, cg)
			}
		}
		f.Comments = comments
		suiteDropUnusedImports(f, inDropped)
	}
	for _, imp := range f.Imports {
		p, err := strconv.Unquote(imp.Path.Value)
		if err != nil {
			return nil, err
		}
		if to, ok := imports[p]; ok {
			imp.Path.Value = strconv.Quote(to)
		}
	}
	var buf bytes.Buffer
	if err := format.Node(&buf, fset, f); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func suiteInDecls(decls []ast.Decl, pos token.Pos) bool {
	for _, d := range decls {
		start := d.Pos()
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Doc != nil {
			start = fn.Doc.Pos()
		}
		if gd, ok := d.(*ast.GenDecl); ok && gd.Doc != nil {
			start = gd.Doc.Pos()
		}
		if pos >= start && pos < d.End() {
			return true
		}
	}
	return false
}

// suiteSelectorNames adds to names the identifiers that qualify a
// selector in n (package names among them).
func suiteSelectorNames(n ast.Node, names map[string]bool) {
	ast.Inspect(n, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok {
				names[id.Name] = true
			}
		}
		return true
	})
}

// suiteDropUnusedImports removes the imports that only the removed
// functions used: those named in removed and in no selector of f.
func suiteDropUnusedImports(f *ast.File, removed map[string]bool) {
	used := map[string]bool{}
	suiteSelectorNames(f, used)
	keep := func(imp *ast.ImportSpec) bool {
		p, _ := strconv.Unquote(imp.Path.Value)
		name := path.Base(p)
		if imp.Name != nil {
			name = imp.Name.Name
		} else if strings.HasPrefix(name, "v") && len(name) > 1 && name[1] >= '0' && name[1] <= '9' {
			// A major-version suffix: the package is named by the element before it.
			name = path.Base(path.Dir(p))
		}
		return !removed[name] || used[name]
	}
	var imports []*ast.ImportSpec
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.IMPORT {
			continue
		}
		specs := gd.Specs[:0]
		for _, s := range gd.Specs {
			if imp := s.(*ast.ImportSpec); keep(imp) {
				specs = append(specs, s)
				imports = append(imports, imp)
			}
		}
		gd.Specs = specs
	}
	f.Imports = imports
}

// suiteResult is the outcome of one test in a run.
type suiteResult struct {
	Action  string // pass, fail or skip
	Elapsed float64
	Output  strings.Builder
}

// suiteRun is what one go test run reported.
type suiteRun struct {
	// results maps "package directory relative to the module"/TestName to
	// its result (subtests included, by their full names).
	results map[string]*suiteResult
	// packages maps each package directory to its own outcome (pass, fail,
	// skip), and other holds the output not attributed to a test (build
	// errors, panics outside tests).
	packages map[string]string
	other    strings.Builder
	err      error
}

// parse reads test2json events until the end of rd.
func (m *suiteModule) parse(rd io.Reader) *suiteRun {
	r := &suiteRun{results: map[string]*suiteResult{}, packages: map[string]string{}}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var ev struct {
			Action, Package, ImportPath, Test, Output string
			Elapsed                                   float64
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			r.other.Write(sc.Bytes())
			r.other.WriteByte('\n')
			continue
		}
		pkg := strings.TrimPrefix(strings.TrimPrefix(ev.Package, suitesModule), "/")
		if ev.Package == suitesModule {
			pkg = "."
		}
		if ev.Test == "" {
			switch ev.Action {
			case "output", "build-output":
				r.other.WriteString(ev.Output)
			case "pass", "fail", "skip":
				r.packages[pkg] = ev.Action
			}
			continue
		}
		key := pkg + "/" + ev.Test
		res := r.results[key]
		if res == nil {
			res = &suiteResult{}
			r.results[key] = res
		}
		switch ev.Action {
		case "output":
			res.Output.WriteString(ev.Output)
		case "pass", "fail", "skip":
			res.Action, res.Elapsed = ev.Action, ev.Elapsed
		}
	}
	return r
}

// report makes each top-level test of each package a subtest of t that
// passes or fails as it did, fails every test found in the files that did
// not pass (a skip included: their tests must run), and returns the counts.
func (m *suiteModule) report(t *testing.T, r *suiteRun) (passed, failed int) {
	t.Helper()
	dirs := make([]string, 0, len(m.tests))
	for dir := range m.tests {
		dirs = append(dirs, dir)
	}
	sort.Strings(dirs)
	for _, dir := range dirs {
		for _, name := range m.tests[dir] {
			res := r.results[dir+"/"+name]
			ok := res != nil && res.Action == "pass"
			if ok {
				passed++
			} else {
				failed++
			}
			t.Run(dir+"/"+name, func(t *testing.T) {
				switch {
				case res == nil:
					t.Errorf("did not run (package %s: %q)", dir, r.packages[dir])
				case res.Action != "pass":
					t.Errorf("%s after %.2fs:\n%s%s", suiteOr(res.Action, "did not finish"), res.Elapsed, res.Output.String(), r.failedSubtests(dir+"/"+name))
				default:
					t.Logf("passed in %.2fs%s", res.Elapsed, suiteLogLines(res.Output.String()))
				}
			})
		}
	}
	for _, dir := range dirs {
		if r.packages[dir] != "pass" {
			t.Errorf("package %s: %q, want pass", dir, suiteOr(r.packages[dir], "no result"))
		}
	}
	if r.err != nil {
		t.Errorf("go test: %v", r.err)
	}
	if t.Failed() {
		t.Logf("output of go test outside the tests:\n%s", suiteTail(r.other.String(), 200))
	}
	return passed, failed
}

// failedSubtests returns the output of the subtests of the test named by
// key (package directory/TestName) that did not pass, "" if none.
func (r *suiteRun) failedSubtests(key string) string {
	var keys []string
	for k, res := range r.results {
		if strings.HasPrefix(k, key+"/") && res.Action != "pass" && res.Action != "skip" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		res := r.results[k]
		fmt.Fprintf(&b, "subtest %s: %s:\n%s", k, suiteOr(res.Action, "did not finish"), res.Output.String())
	}
	return b.String()
}

// suiteLogLines returns what a passing test logged (without the lines go
// test adds around it), each line on a line of its own, or "" if nothing.
func suiteLogLines(out string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if strings.HasPrefix(line, "=== ") || strings.HasPrefix(line, "--- ") || strings.TrimSpace(line) == "" {
			continue
		}
		b.WriteString("\n")
		b.WriteString(line)
	}
	return b.String()
}

func suiteOr(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// suiteTail returns at most the last n lines of s.
func suiteTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[%d lines before]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// runForeignSuite builds s's test binaries (once per process: see
// suites_build_test.go), runs them, reports every test as a subtest and
// logs the counts. Every call runs every test of the suite anew.
func runForeignSuite(t *testing.T, name string, s foreignSuite) {
	t.Helper()
	ctx := context.Background()
	b := buildForeignSuite(t, ctx, name, s)
	// The build ran while serial tests ran (it is CPU-bound, and done
	// once); the run, mostly their tests' waiting, overlaps the other
	// parallel tests.
	parallelUnlessRace(t)
	start := time.Now()
	r := b.run(t, ctx, s)
	passed, failed := b.m.report(t, r)
	t.Logf("%d passed, %d failed, of %d tests in their files; their run took %v (the build, once per process, is not included)",
		passed, failed, passed+failed, time.Since(start).Round(time.Millisecond))
	if passed+failed == 0 {
		t.Errorf("no test found in the suite's files")
	}
}
