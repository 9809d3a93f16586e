package interop

import (
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// raft-wal v0.4.0's own tests, run against our wal package and its
// sub-packages.
//
// Their test files belong to their packages (wal, segment, metadb...) and
// read names those packages define. Each package's test files are copied
// into a package of the same name in a temporary module, beside a file
// written here (suiteWALShims) that defines those names on top of ours:
// aliases of our exported names and, for the few internals they reach (the
// option type, the file behind a segment reader or writer, the sizes of
// the format), small equivalents written against our exported API and the
// format's facts. Their imports of raft, raft-wal/types and raft-wal/metrics
// go to ours, and armon/go-metrics to hashicorp/go-metrics (the one our
// metrics package reports to).

// suiteWALModule and suiteWALVersion name the reference.
const (
	suiteWALModule  = "github.com/hashicorp/raft-wal"
	suiteWALVersion = "v0.4.0"
)

// suiteWALPackages are the package directories (relative to the module
// root, "" for the root) whose tests are run.
var suiteWALPackages = []string{"", "segment", "metrics", "fs", "metadb", "migrate"}

// suiteWALDrop lists, by package directory, their top-level tests that
// are not run, with why.
var suiteWALDrop = map[string]map[string]string{
	"": {
		// Not a test: it sets the WAL's unexported fields; the shim's
		// version gives the same stubs through WithMetaStore and
		// WithSegmentFiler.
		"stubStorage": "replaced by the shim (it sets unexported fields; the shim uses WithMetaStore and WithSegmentFiler)",
	},
	"segment": {
		"TestFileHeaderCodec":     "tests unexported functions of raft-wal's segment package (writeFileHeader, readFileHeader, validateFileHeader)",
		"TestFileHeaderCodecFuzz": "tests unexported functions of raft-wal's segment package (writeFileHeader, readFileHeader, validateFileHeader)",
		"TestFrameCodecFuzz":      "tests unexported functions of raft-wal's segment package (writeFrame, readFrameHeader, padLen)",
		"TestPadLen":              "tests an unexported function of raft-wal's segment package (padLen)",
		"TestWriteIndexFrame":     "tests unexported functions of raft-wal's segment package (writeIndexFrame, indexFrameSize)",
	},
}

// suiteWALRaceDrop lists the tests that are not run under -race, by
// package directory, with why.
var suiteWALRaceDrop = map[string]map[string]string{
	"segment": {
		// Measured on the 2-core machine: raft-wal v0.4.0's own run of
		// this test under -race wrote 6,881 of the 9,362 entries in the
		// 30 s; ours passes it without -race in about 1.3 s.
		"TestConcurrentReadersAndWriter": "a wall-clock bound (30 s) on a run whose in-memory file copies itself on every write; under -race raft-wal v0.4.0 itself fails it here",
	},
}

// suiteWALDropped returns suiteWALDrop, with suiteWALRaceDrop under -race.
func suiteWALDropped() map[string]map[string]string {
	out := map[string]map[string]string{}
	add := func(from map[string]map[string]string) {
		for dir, names := range from {
			if out[dir] == nil {
				out[dir] = map[string]string{}
			}
			for name, why := range names {
				out[dir][name] = why
			}
		}
	}
	add(suiteWALDrop)
	if suiteRaceEnabled {
		add(suiteWALRaceDrop)
	}
	return out
}

// suiteWALSkip lists their subtests that are not run, by top-level test
// and subtest name (as go test prints it), with why. (One -skip pattern
// skips them all: ^(tests)$/^(subtests)$, so a name listed under one test
// would be skipped under another too; no such name exists in their files.)
var suiteWALSkip = map[string]map[string]string{
	"TestWALOpen": {
		"invalid_custom_codec": "ours accepts WithCodec(&BinaryCodec{}), which raft-wal refuses as a reserved ID (a difference listed in wal/doc.go)",
	},
	"TestListEdgeCases": {
		"single_tail":        "ours refuses segment file names other than the ones both libraries write (20 decimal digits, '-', 16 hex digits); the test lists a hand-made 11-digit name",
		"other_random_files": "ours refuses segment file names other than the ones both libraries write (20 decimal digits, '-', 16 hex digits); the test lists a hand-made 11-digit name",
	},
	"TestRecovery": {
		"bad_segment_header_BaseIndex,_valid_commit": "ours refuses this file too, with ErrCorrupt, but says the first batch fails its checksum (ours checks every batch's CRC, and the header is part of the first batch) where the test wants raft-wal's header-mismatch text",
	},
}

// suiteWALSkipPattern is the go test -skip pattern of suiteWALSkip.
func suiteWALSkipPattern() string {
	var tests, subs []string
	for test, names := range suiteWALSkip {
		tests = append(tests, regexp.QuoteMeta(test))
		for name := range names {
			subs = append(subs, regexp.QuoteMeta(name))
		}
	}
	sort.Strings(tests)
	sort.Strings(subs)
	return "^(" + strings.Join(tests, "|") + ")$/^(" + strings.Join(subs, "|") + ")$"
}

// suiteWALShims are the files written beside theirs, by package directory.
var suiteWALShims = map[string]string{
	"":        suiteWALRootShim,
	"segment": suiteWALSegmentShim,
	"metrics": suiteWALMetricsShim,
	"fs":      suiteWALFSShim,
	"metadb":  suiteWALMetaDBShim,
	"migrate": suiteWALMigrateShim,
}

const suiteWALShimHeader = `// Code written for the interop tests of github.com/quorumkit/raft: the
// names raft-wal's tests of this package expect from it, on top of ours.

`

const suiteWALMetricsShim = suiteWALShimHeader + `package metrics

import ours "github.com/quorumkit/raft/wal/metrics"

type (
	Definitions = ours.Definitions
	Descriptor  = ours.Descriptor
	Summary     = ours.Summary
)

var (
	NewAtomicCollector    = ours.NewAtomicCollector
	NewGoMetricsCollector = ours.NewGoMetricsCollector
)
`

const suiteWALFSShim = suiteWALShimHeader + `package fs

import ours "github.com/quorumkit/raft/wal/fs"

var New = ours.New
`

const suiteWALMetaDBShim = suiteWALShimHeader + `package metadb

import ours "github.com/quorumkit/raft/wal/metadb"

type BoltMetaDB = ours.BoltMetaDB

var ErrUnintialized = ours.ErrUnintialized
`

const suiteWALMigrateShim = suiteWALShimHeader + `package migrate

import ours "github.com/quorumkit/raft/wal/migrate"

var (
	CopyLogs   = ours.CopyLogs
	CopyStable = ours.CopyStable
)
`

// suiteWALSegmentShim gives their segment tests our Filer, wrapped so that
// the Reader and Writer it returns carry the file they read or write (the
// rf and wf fields the tests reach for), and the format's sizes.
const suiteWALSegmentShim = suiteWALShimHeader + `package segment

import (
	"sync"

	ours "github.com/quorumkit/raft/wal/segment"
	"github.com/quorumkit/raft/wal/types"
)

// The sizes of the format: file header, frame header, the smallest read
// buffer.
const (
	fileHeaderLen  = 32
	frameHeaderLen = 8
	minBufSize     = 64 * 1024
)

// encodedFrameSize is the space a frame of n bytes takes: header, data,
// padding to 8 bytes.
func encodedFrameSize(n int) int {
	return frameHeaderLen + (n+7)/8*8
}

var FileName = ours.FileName

// Filer is our filer over a VFS that remembers the file last handed out
// under each name.
type Filer struct {
	*ours.Filer
	vfs *recordingVFS
}

// NewFiler returns our filer over vfs.
func NewFiler(dir string, vfs types.VFS) *Filer {
	rec := &recordingVFS{VFS: vfs, files: map[string]any{}}
	return &Filer{Filer: ours.NewFiler(dir, rec), vfs: rec}
}

// Writer is our writer and its file.
type Writer struct {
	types.SegmentWriter
	wf types.WritableFile
}

// Reader is our reader and its file.
type Reader struct {
	types.SegmentReader
	rf types.ReadableFile
}

func (f *Filer) Create(info types.SegmentInfo) (types.SegmentWriter, error) {
	w, err := f.Filer.Create(info)
	if err != nil {
		return nil, err
	}
	wf, _ := f.vfs.file(FileName(info)).(types.WritableFile)
	return &Writer{SegmentWriter: w, wf: wf}, nil
}

func (f *Filer) RecoverTail(info types.SegmentInfo) (types.SegmentWriter, error) {
	w, err := f.Filer.RecoverTail(info)
	if err != nil {
		return nil, err
	}
	wf, _ := f.vfs.file(FileName(info)).(types.WritableFile)
	return &Writer{SegmentWriter: w, wf: wf}, nil
}

func (f *Filer) Open(info types.SegmentInfo) (types.SegmentReader, error) {
	r, err := f.Filer.Open(info)
	if err != nil {
		return nil, err
	}
	rf, _ := f.vfs.file(FileName(info)).(types.ReadableFile)
	return &Reader{SegmentReader: r, rf: rf}, nil
}

// recordingVFS remembers the file it last returned for each name.
type recordingVFS struct {
	types.VFS
	mu    sync.Mutex
	files map[string]any
}

func (v *recordingVFS) note(name string, f any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.files[name] = f
}

func (v *recordingVFS) file(name string) any {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.files[name]
}

func (v *recordingVFS) Create(dir, name string, size uint64) (types.WritableFile, error) {
	f, err := v.VFS.Create(dir, name, size)
	if err == nil {
		v.note(name, f)
	}
	return f, err
}

func (v *recordingVFS) OpenWriter(dir, name string) (types.WritableFile, error) {
	f, err := v.VFS.OpenWriter(dir, name)
	if err == nil {
		v.note(name, f)
	}
	return f, err
}

func (v *recordingVFS) OpenReader(dir, name string) (types.ReadableFile, error) {
	f, err := v.VFS.OpenReader(dir, name)
	if err == nil {
		v.note(name, f)
	}
	return f, err
}
`

const suiteWALRootShim = `// Code written for the interop tests of github.com/quorumkit/raft: the
// names raft-wal's root package tests expect from their package, on top
// of ours.

package wal

import (
	ours "github.com/quorumkit/raft/wal"
	"github.com/quorumkit/raft/wal/metrics"
	"github.com/quorumkit/raft/wal/types"
)

type (
	WAL         = ours.WAL
	BinaryCodec = ours.BinaryCodec
	Codec       = ours.Codec
)

const CodecBinaryV1 = ours.CodecBinaryV1

var (
	ErrNotFound       = ours.ErrNotFound
	ErrCorrupt        = ours.ErrCorrupt
	ErrSealed         = ours.ErrSealed
	ErrClosed         = ours.ErrClosed
	MetricDefinitions = ours.MetricDefinitions
)

// walOpt holds options of ours (of our unexported option type, hence
// held as any).
type walOpt func() []any

// ourOpts converts opts to a list of our option type, whose type proto
// gives.
func ourOpts[T any](proto T, opts []walOpt) []T {
	var out []T
	for _, o := range opts {
		for _, v := range o() {
			out = append(out, v.(T))
		}
	}
	return out
}

// Open opens our WAL with opts.
func Open(dir string, opts ...walOpt) (*WAL, error) {
	return ours.Open(dir, ourOpts(ours.WithLogger(nil), opts)...)
}

func WithCodec(c Codec) walOpt {
	return func() []any { return []any{ours.WithCodec(c)} }
}

func WithMetricsCollector(c metrics.Collector) walOpt {
	return func() []any { return []any{ours.WithMetricsCollector(c)} }
}

// stubStorage makes ts both the meta store and the segment filer, through
// our exported options.
func stubStorage(ts *testStorage) walOpt {
	var meta types.MetaStore = ts
	var filer types.SegmentFiler = ts
	return func() []any { return []any{ours.WithMetaStore(meta), ours.WithSegmentFiler(filer)} }
}
`

func suiteWALDir(dir string) string {
	if dir == "" {
		return "wal"
	}
	return "wal/" + dir
}

// suiteWALSuite is raft-wal v0.4.0's suite against ours.
func suiteWALSuite() foreignSuite {
	imports := map[string]string{
		"github.com/hashicorp/raft":             "github.com/quorumkit/raft",
		"github.com/hashicorp/raft-wal/types":   "github.com/quorumkit/raft/wal/types",
		"github.com/hashicorp/raft-wal/metrics": "github.com/quorumkit/raft/wal/metrics",
		"github.com/armon/go-metrics":           "github.com/hashicorp/go-metrics",
	}
	s := foreignSuite{
		Requires: []string{
			"github.com/stretchr/testify v1.11.1",
			"github.com/google/gofuzz v1.2.0",
			"github.com/benbjohnson/immutable v0.4.0",
		},
		Generated: map[string][]byte{},
		// Their files predate the printf check go vet now makes on Logf.
		BuildFlags:   []string{"-vet=off"},
		RunFlags:     []string{"-test.skip=" + suiteWALSkipPattern()},
		BuildTimeout: 5 * time.Minute,
		RunTimeout:   3 * time.Minute,
	}
	dropped := suiteWALDropped()
	for _, dir := range suiteWALPackages {
		files := "*_test.go"
		if dir != "" {
			files = dir + "/*_test.go"
		}
		s.Copies = append(s.Copies, foreignCopy{
			Module:  suiteWALModule,
			Version: suiteWALVersion,
			Files:   []string{files},
			Dir:     "wal",
			Imports: imports,
			Drop:    dropped[dir],
		})
		s.Packages = append(s.Packages, "./"+suiteWALDir(dir))
		if src, ok := suiteWALShims[dir]; ok {
			s.Generated[suiteWALDir(dir)+"/shim.go"] = []byte(src)
		}
	}
	return s
}

// TestSuitesRaftWAL runs raft-wal v0.4.0's tests, but those in
// suiteWALDrop and suiteWALSkip, against our wal packages; all must pass.
func TestSuitesRaftWAL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs another module's tests (-short)")
	}
	var dropped []string
	for dir, names := range suiteWALDropped() {
		for name, why := range names {
			if !strings.HasPrefix(name, "Test") {
				t.Logf("replaced: %s/%s: %s", suiteWALDir(dir), name, why)
				continue
			}
			dropped = append(dropped, suiteWALDir(dir)+"/"+name+": "+why)
		}
	}
	for test, names := range suiteWALSkip {
		for name, why := range names {
			dropped = append(dropped, test+"/"+name+" (subtest): "+why)
		}
	}
	sort.Strings(dropped)
	for _, line := range dropped {
		t.Logf("not run: %s", line)
	}
	runForeignSuite(t, "raftwal", suiteWALSuite())
}
