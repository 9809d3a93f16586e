package interop

import (
	"go/importer"
	"go/token"
	"go/types"
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

// sourcePackages is the one source importer of these tests. It keeps every
// package it type-checked, dependencies included, so that each package is
// type-checked once per process (a minute's work on a loaded machine for
// the four packages), however many tests and -count runs ask for it. The
// importer still runs the go command to locate a package it already
// holds, so the packages asked for are also kept here by path: a second
// -count run of the raft-wal comparison, which asks for fourteen, cost
// about nine seconds on the loaded machine without this.
var sourcePackages struct {
	sync.Mutex
	importer types.Importer
	byPath   map[string]*types.Package
}

// importSource type-checks a package from source, once per process.
func importSource(path string) (*types.Package, error) {
	sourcePackages.Lock()
	defer sourcePackages.Unlock()
	if pkg, ok := sourcePackages.byPath[path]; ok {
		return pkg, nil
	}
	if sourcePackages.importer == nil {
		sourcePackages.importer = importer.ForCompiler(token.NewFileSet(), "source", nil)
		sourcePackages.byPath = make(map[string]*types.Package)
	}
	pkg, err := sourcePackages.importer.Import(path)
	if err != nil {
		return nil, err
	}
	sourcePackages.byPath[path] = pkg
	return pkg, nil
}

// loadAPI imports a package from source and describes every exported
// object, method and field as "name: signature", with package qualifiers
// reduced to the package name so the two libraries compare equal.
func loadAPI(t *testing.T, path string) map[string]string {
	t.Helper()
	pkg, err := importSource(path)
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
