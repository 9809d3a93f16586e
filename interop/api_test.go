package interop

import (
	"bytes"
	"fmt"
	"go/importer"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"

	_ "github.com/hashicorp/raft"
	_ "github.com/quorumkit/raft"
)

const (
	refPath = "github.com/hashicorp/raft"
	ourPath = "github.com/quorumkit/raft"
)

// optionalNames are exported by the reference but are not part of our
// contract: the reference's test helpers, which it itself calls
// unstable.
var optionalNames = map[string]bool{
	"MakeCluster": true, "MakeClusterNoBootstrap": true, "MakeClusterCustom": true,
	"MakeClusterCustomWithErr": true, "MakeClusterOpts": true, "FileSnapTest": true,
	"MockFSM": true, "MockFSMConfigStore": true, "MockSnapshot": true,
	"MockMonotonicLogStore": true,
}

// pendingNames are parts of the contract whose issues are still open; each
// entry disappears when its issue lands.
var pendingNames = map[string]bool{}

// exportPackages is the one importer of these tests. It reads the export
// data the compiler wrote for each package (and its dependencies) into the
// build cache, which go list -export names; building this test binary put
// it there. Export data holds every exported name with its type, constant
// value, fields and methods, which is all these tests compare, and reading
// it takes a moment where type-checking the four libraries and their
// dependencies from source took a minute on a loaded machine. Packages are
// kept by path, so each is read once per process however many tests and
// -count runs ask for it.
var exportPackages struct {
	sync.Mutex
	importer types.Importer
	files    map[string]string // import path -> export data file
	byPath   map[string]*types.Package
}

// exportFile returns the export data file of path, asking go list for it
// and those of its dependencies the first time. It is called with
// exportPackages locked.
func exportFile(path string) (string, error) {
	if f, ok := exportPackages.files[path]; ok {
		return f, nil
	}
	args := []string{"list", "-export", "-deps", "-f", "{{.ImportPath}}\t{{.Export}}"}
	if suiteRaceEnabled {
		args = append(args, "-race") // the flags this binary was built with: the build cache has that export data
	}
	// One go list for all the packages the tests compare: each run of the
	// go command takes seconds on a loaded machine.
	args = append(args, path)
	for _, p := range apiPackages() {
		if _, ok := exportPackages.files[p]; !ok && p != path {
			args = append(args, p)
		}
	}
	var stderr bytes.Buffer
	cmd := exec.Command("go", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		p, f, _ := strings.Cut(line, "\t")
		if f != "" {
			exportPackages.files[p] = f
		}
	}
	f, ok := exportPackages.files[path]
	if !ok {
		return "", fmt.Errorf("go list -export names no export data for %s", path)
	}
	return f, nil
}

// apiPackages are the packages whose APIs the tests compare.
func apiPackages() []string {
	paths := []string{refPath, ourPath, refBoltPath, ourBoltPath}
	for _, sub := range walAPISubpackages {
		paths = append(paths, walRefPath+sub, walOurPath+sub)
	}
	return paths
}

// importExport returns the package at path, read from its export data,
// once per process.
func importExport(path string) (*types.Package, error) {
	exportPackages.Lock()
	defer exportPackages.Unlock()
	if pkg, ok := exportPackages.byPath[path]; ok {
		return pkg, nil
	}
	if exportPackages.importer == nil {
		exportPackages.files = make(map[string]string)
		exportPackages.byPath = make(map[string]*types.Package)
		exportPackages.importer = importer.ForCompiler(token.NewFileSet(), "gc", func(p string) (io.ReadCloser, error) {
			f, err := exportFile(p)
			if err != nil {
				return nil, err
			}
			return os.Open(f)
		})
	}
	pkg, err := exportPackages.importer.Import(path)
	if err != nil {
		return nil, err
	}
	exportPackages.byPath[path] = pkg
	return pkg, nil
}

// loadAPI imports a package from its export data and describes every exported
// object, method and field as "name: signature", with package qualifiers
// reduced to the package name so the two libraries compare equal.
func loadAPI(t *testing.T, path string) map[string]string {
	t.Helper()
	pkg, err := importExport(path)
	if err != nil {
		t.Fatalf("importing %s: %v", path, err)
	}
	qual := func(p *types.Package) string { return p.Name() }
	api := make(map[string]string)
	for _, name := range pkg.Scope().Names() {
		obj := pkg.Scope().Lookup(name)
		if !obj.Exported() {
			continue
		}
		switch o := obj.(type) {
		case *types.Const:
			api[name] = "const " + types.TypeString(o.Type(), qual) + " = " + o.Val().ExactString()
		case *types.Var:
			api[name] = "var " + types.TypeString(o.Type(), qual)
		case *types.Func:
			api[name] = types.TypeString(o.Type(), qual)
		case *types.TypeName:
			api[name] = "type " + typeKind(o.Type().Underlying())
			describeType(api, name, o.Type(), qual)
		}
	}
	return api
}

func typeKind(t types.Type) string {
	switch u := t.(type) {
	case *types.Struct:
		return "struct"
	case *types.Interface:
		return "interface"
	default:
		return types.TypeString(u, func(p *types.Package) string { return p.Name() })
	}
}

// describeType adds the exported fields (in order) and the method sets of
// a named type, and of its pointer.
func describeType(api map[string]string, name string, t types.Type, qual types.Qualifier) {
	if st, ok := t.Underlying().(*types.Struct); ok {
		var fields []string
		for i := 0; i < st.NumFields(); i++ {
			f := st.Field(i)
			if !f.Exported() {
				continue
			}
			fields = append(fields, f.Name()+" "+types.TypeString(f.Type(), qual))
		}
		api[name+" fields"] = strings.Join(fields, "; ")
	}
	if it, ok := t.Underlying().(*types.Interface); ok {
		for i := 0; i < it.NumMethods(); i++ {
			m := it.Method(i)
			api[name+"."+m.Name()] = types.TypeString(m.Type(), qual)
		}
		return
	}
	ms := types.NewMethodSet(types.NewPointer(t))
	for i := 0; i < ms.Len(); i++ {
		m := ms.At(i).Obj()
		if !m.Exported() {
			continue
		}
		api[name+"."+m.Name()] = types.TypeString(m.Type(), qual)
	}
}

// TestExportedAPIMatchesReference checks that every exported name of
// hashicorp/raft v1.8.0 exists here with the same signature, so that a
// program compiles after changing only its import path.
func TestExportedAPIMatchesReference(t *testing.T) {
	ref := loadAPI(t, refPath)
	ours := loadAPI(t, ourPath)
	var keys []string
	for k := range ref {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	checked := 0
	for _, k := range keys {
		base := strings.SplitN(strings.SplitN(k, ".", 2)[0], " ", 2)[0]
		if optionalNames[base] || pendingNames[base] {
			continue
		}
		got, ok := ours[k]
		switch {
		case !ok:
			t.Errorf("missing %s: reference has %s", k, ref[k])
		case strings.HasSuffix(k, " fields") && strings.HasPrefix(got, ref[k]):
			// Fields appended after the reference's keep composite
			// literals and field access compiling.
		case got != ref[k]:
			t.Errorf("%s differs:\n  reference: %s\n  ours:      %s", k, ref[k], got)
		}
		checked++
	}
	for k := range pendingNames {
		if _, ok := ours[k]; ok {
			t.Errorf("%s exists now; remove it from pendingNames", k)
		}
	}
	t.Logf("%d exported names, fields and methods checked", checked)
}
