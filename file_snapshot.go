package raft

// The file snapshot store keeps each snapshot in a directory of its own,
// in the layout hashicorp/raft uses (file_snapshot_test.go compares a meta.json
// it wrote byte for byte), so that either library
// can read what the other wrote:
//
//	<base>/snapshots/<term>-<index>-<msec>/meta.json   metadata + CRC, JSON
//	<base>/snapshots/<term>-<index>-<msec>/state.bin   the FSM's bytes
//
// Writing. Create makes "<id>.tmp" and writes a first meta.json (Size 0, no
// CRC). The sink buffers the FSM's bytes into state.bin and hashes them on
// the way (CRC-64, ECMA polynomial, computed by snapshot_crc.go). Close
// flushes and fsyncs state.bin, rewrites and fsyncs meta.json with the
// size and CRC, fsyncs the directory, renames it to "<id>" and fsyncs
// the parent, so that a crash leaves either a finished snapshot or a
// ".tmp" directory, never a finished-looking one with missing bytes. It
// then reaps old snapshots.
//
// Reading. A snapshot is usable when its meta.json parses and names the
// directory it is in, its version is one we read (0 or 1), state.bin has
// exactly the recorded size and its CRC matches. List returns the newest
// `retain` usable snapshots and logs, then skips, the others, so that raft
// falls back to an older good snapshot instead of failing on a damaged
// one. Open checks the same things, reading state.bin once to verify the
// CRC before handing out a reader from its start.
//
// Because raft lists snapshots often (each time it sends one to a
// follower), List remembers which snapshots it verified, keyed by the
// state.bin size and modification time and the recorded CRC, and reads a
// snapshot's bytes again only when one of those changed. Open always
// verifies. Raft restoring a snapshot it has just received goes through
// openWritten instead, which trusts the same record as List: the sink
// hashed those bytes as it wrote them. A leader sending a snapshot goes
// through openToSend, which checks the CRC as the bytes go out and holds
// back the last read until it matches.
//
// Differences from hashicorp/raft, all about damaged or unfinished data:
// leftover ".tmp" directories are removed when the store is opened (the
// reference only skips them), List skips snapshots with a wrong size or
// CRC (the reference only notices on Open), and reaping keeps `retain`
// usable snapshots rather than the newest `retain` directories.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc64"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Names and limits of the on-disk layout.
const (
	snapshotsDirName     = "snapshots"
	snapshotMetaFileName = "meta.json"
	snapshotStateFile    = "state.bin"
	snapshotTmpSuffix    = ".tmp"
	snapshotPermTestFile = "permTest"

	// snapshotBufferSize is the buffer of the sink, of Open's reader and
	// of the CRC check: large enough that a snapshot of many MiB costs few
	// system calls.
	snapshotBufferSize = 1 << 20

	// snapshotWriteSlice is the most the sink hands the kernel in one
	// write. Larger writes let the kernel fill the page cache with large
	// folios, which it takes from large free blocks; on a virtual machine
	// those are often memory the host has reclaimed, and every first
	// touch of it stalls. Measured on the 2-core test machine, writing
	// 64 MiB received from the leader took 140-150 ms in writes of 1 MiB
	// and 32-39 ms in writes of 64 KiB (the sidebyside snapshot mode).
	snapshotWriteSlice = 64 << 10

	// snapshotWritebackChunk is how much the sink writes before it asks
	// the kernel to start putting it on disk (see startWriteback).
	snapshotWritebackChunk = 8 << 20

	// maxSnapshotMetaBytes bounds how much of a meta.json is read. Real
	// ones are a few hundred bytes per server; anything near this is
	// damage, not metadata.
	maxSnapshotMetaBytes = 16 << 20
)

// snapshotCRCTable is the CRC-64 table of the snapshot checksum.
var snapshotCRCTable = crc64.MakeTable(crc64.ECMA)

// errCRCMismatch is the reason given for a state.bin whose checksum is not
// the one recorded in meta.json; its text is the reference's.
var errCRCMismatch = errors.New("CRC mismatch")

// FileSnapshotStore keeps snapshots in a directory, in the same layout as
// hashicorp/raft's store of the same name. It keeps the newest `retain`
// usable snapshots and deletes older ones whenever a new one is closed. It
// is safe for concurrent use, but only one store may use a directory at a
// time.
type FileSnapshotStore struct {
	// path is <base>/snapshots.
	path   string
	retain int
	logger hclog.Logger

	verifiedMu sync.Mutex
	// verified maps a snapshot ID to the state of its files when List
	// last found its CRC right. Guarded by verifiedMu.
	verified map[string]snapshotStamp
}

// snapshotStamp identifies the contents of a snapshot's state.bin without
// reading it: if none of these changed, neither did the verdict.
type snapshotStamp struct {
	size    int64
	modTime int64 // Unix nanoseconds
	crc     string
}

// fileSnapshotMeta is the content of meta.json: the metadata with its
// fields at the top level, then the checksum of state.bin. The field order
// is the file's key order.
type fileSnapshotMeta struct {
	SnapshotMeta
	// CRC is the 8-byte big-endian CRC-64 (ECMA) of state.bin; nil until
	// the snapshot is finished.
	CRC []byte
}

var (
	_ SnapshotStore = (*FileSnapshotStore)(nil)
	_ SnapshotSink  = (*FileSnapshotSink)(nil)
)

// NewFileSnapshotStore opens a snapshot store in base/snapshots, creating
// it if needed, and logs to logOutput (os.Stderr when nil) under the name
// "snapshot". See NewFileSnapshotStoreWithLogger.
func NewFileSnapshotStore(base string, retain int, logOutput io.Writer) (*FileSnapshotStore, error) {
	if logOutput == nil {
		logOutput = os.Stderr
	}
	return NewFileSnapshotStoreWithLogger(base, retain, hclog.New(&hclog.LoggerOptions{
		Name:   "snapshot",
		Output: logOutput,
		Level:  hclog.DefaultLevel,
	}))
}

// NewFileSnapshotStoreWithLogger opens a snapshot store in base/snapshots,
// creating it if needed. The store keeps the newest retain usable
// snapshots. A nil logger gets a default one named "snapshot".
//
// It fails with "must retain at least one snapshot" when retain < 1, with
// "snapshot path not accessible: ..." when the directory cannot be made,
// and with "permissions test failed: ..." when a file cannot be created in
// it. Unfinished snapshots left by an earlier run (".tmp" directories) are
// removed, each with a log line.
func NewFileSnapshotStoreWithLogger(base string, retain int, logger hclog.Logger) (*FileSnapshotStore, error) {
	if retain < 1 {
		return nil, errors.New("must retain at least one snapshot")
	}
	if logger == nil {
		logger = hclog.New(&hclog.LoggerOptions{
			Name:   "snapshot",
			Output: hclog.DefaultOutput,
			Level:  hclog.DefaultLevel,
		})
	}
	path := filepath.Join(base, snapshotsDirName)
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("snapshot path not accessible: %w", err)
	}
	f := &FileSnapshotStore{
		path:     path,
		retain:   retain,
		logger:   logger,
		verified: make(map[string]snapshotStamp),
	}
	if err := f.testPermissions(); err != nil {
		return nil, fmt.Errorf("permissions test failed: %w", err)
	}
	if err := f.removeUnfinished(); err != nil {
		return nil, err
	}
	return f, nil
}

// testPermissions creates and removes a file in the store's directory.
func (f *FileSnapshotStore) testPermissions() error {
	name := filepath.Join(f.path, snapshotPermTestFile)
	fh, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := fh.Close(); err != nil {
		return err
	}
	return os.Remove(name)
}

// removeUnfinished deletes the ".tmp" directories of snapshots that were
// being written when an earlier process stopped. They can never be
// finished. A directory that cannot be removed is logged and left; it is
// ignored by List anyway.
func (f *FileSnapshotStore) removeUnfinished() error {
	entries, err := os.ReadDir(f.path)
	if err != nil {
		return fmt.Errorf("scanning snapshot directory: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasSuffix(e.Name(), snapshotTmpSuffix) {
			continue
		}
		dir := filepath.Join(f.path, e.Name())
		if err := os.RemoveAll(dir); err != nil {
			f.logger.Error("failed to remove unfinished snapshot", "path", dir, "error", err)
			continue
		}
		f.logger.Warn("removed unfinished snapshot left by an earlier run", "path", dir)
	}
	return nil
}

// Create starts a new snapshot of the state up to index and term, in a
// directory named "<id>.tmp" until the sink is closed. Only version 1 can
// be created ("unsupported snapshot version N" otherwise). trans is used
// only to encode the legacy Peers field; when it is nil each voter's
// address is used as is.
func (f *FileSnapshotStore) Create(version SnapshotVersion, index, term uint64,
	configuration Configuration, configurationIndex uint64, trans Transport) (SnapshotSink, error) {
	if version != 1 {
		return nil, fmt.Errorf("unsupported snapshot version %d", version)
	}
	id := newSnapshotID(term, index, time.Now())
	dir := filepath.Join(f.path, id+snapshotTmpSuffix)
	f.logger.Info("creating new snapshot", "path", dir)

	// Mkdir, not MkdirAll: two snapshots must never share a directory.
	if err := os.Mkdir(dir, 0o755); err != nil {
		f.logger.Error("failed to make snapshot directory", "error", err)
		return nil, fmt.Errorf("creating snapshot %s: %w", id, err)
	}
	sink, err := f.newSink(dir, fileSnapshotMeta{SnapshotMeta: SnapshotMeta{
		Version:            version,
		ID:                 id,
		Index:              index,
		Term:               term,
		Peers:              snapshotPeers(configuration, trans),
		Configuration:      cloneSnapshotConfiguration(configuration),
		ConfigurationIndex: configurationIndex,
	}})
	if err != nil {
		f.logger.Error("failed to start snapshot", "id", id, "error", err)
		if rmErr := os.RemoveAll(dir); rmErr != nil {
			f.logger.Error("failed to remove unfinished snapshot", "path", dir, "error", rmErr)
		}
		return nil, fmt.Errorf("creating snapshot %s: %w", id, err)
	}
	return sink, nil
}

// newSink writes the first meta.json in dir and opens state.bin.
func (f *FileSnapshotStore) newSink(dir string, meta fileSnapshotMeta) (*FileSnapshotSink, error) {
	if err := writeSnapshotMeta(dir, &meta, false); err != nil {
		return nil, err
	}
	state, err := os.Create(filepath.Join(dir, snapshotStateFile))
	if err != nil {
		return nil, err
	}
	sum := newSnapshotHash()
	w := &stateWriter{file: state, hash: sum}
	return &FileSnapshotSink{
		store:  f,
		dir:    dir,
		meta:   meta,
		state:  state,
		hash:   sum,
		direct: w,
		buf:    bufio.NewWriterSize(w, snapshotBufferSize),
	}, nil
}

// stateWriter writes a sink's bytes to state.bin and its hash, and has the
// kernel start writing them to disk every snapshotWritebackChunk bytes.
type stateWriter struct {
	file *os.File
	hash hash.Hash64
	// written counts the bytes written; kicked is where the last
	// writeback request ended.
	written, kicked int64
}

func (w *stateWriter) Write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		n, err := w.file.Write(p[:min(len(p), snapshotWriteSlice)])
		w.hash.Write(p[:n])
		w.written += int64(n)
		total += n
		p = p[n:]
		if w.written-w.kicked >= snapshotWritebackChunk {
			startWriteback(w.file, w.kicked, w.written-w.kicked)
			w.kicked = w.written
		}
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// List returns the newest usable snapshots, at most retain of them, newest
// first: ordered by term, then index, then ID, all descending. Snapshots
// that cannot be used (damaged or missing metadata, a state.bin of the
// wrong size or checksum, an unknown version) are logged and left out.
// It returns nil when there is none, and an error only when the directory
// cannot be read.
func (f *FileSnapshotStore) List() ([]*SnapshotMeta, error) {
	usable, _, err := f.survey()
	if err != nil {
		f.logger.Error("failed to list snapshots", "error", err)
		return nil, err
	}
	var out []*SnapshotMeta
	for _, m := range usable {
		out = append(out, &m.SnapshotMeta)
	}
	return out, nil
}

// snapshotCandidate is a directory that may hold a finished snapshot.
type snapshotCandidate struct {
	name        string
	term, index uint64
	// meta is the parsed meta.json, nil when metaErr is set.
	meta    *fileSnapshotMeta
	metaErr error
}

// survey reads the store's directory and returns, newest first, up to
// retain usable snapshots, and the directory names that reaping removes:
// every snapshot, usable or not, that sorts after the last of those. A
// snapshot whose meta.json cannot be read is placed by the term and index
// in its directory name; directories whose names are not snapshot IDs and
// that hold no readable meta.json are not ours and are left alone.
func (f *FileSnapshotStore) survey() (usable []*fileSnapshotMeta, stale []string, err error) {
	entries, err := os.ReadDir(f.path)
	if err != nil {
		return nil, nil, fmt.Errorf("scanning snapshot directory: %w", err)
	}
	var candidates []snapshotCandidate
	for _, e := range entries {
		name := e.Name()
		// ".tmp" directories are snapshots being written right now.
		if !e.IsDir() || strings.HasSuffix(name, snapshotTmpSuffix) {
			continue
		}
		c := snapshotCandidate{name: name}
		c.meta, c.metaErr = readSnapshotMeta(filepath.Join(f.path, name), name)
		switch {
		case c.metaErr == nil:
			c.term, c.index = c.meta.Term, c.meta.Index
		default:
			var ok bool
			if c.term, c.index, ok = parseSnapshotID(name); !ok {
				f.logger.Warn("ignoring directory that is not a snapshot", "name", name, "error", c.metaErr)
				continue
			}
		}
		candidates = append(candidates, c)
	}
	slices.SortFunc(candidates, func(a, b snapshotCandidate) int {
		if a.term != b.term {
			return compareDesc(a.term, b.term)
		}
		if a.index != b.index {
			return compareDesc(a.index, b.index)
		}
		return strings.Compare(b.name, a.name)
	})

	seen := make(map[string]bool, len(candidates))
	for _, c := range candidates {
		seen[c.name] = true
		if len(usable) == f.retain {
			stale = append(stale, c.name)
			continue
		}
		err := c.metaErr
		if err == nil {
			err = f.checkState(c.meta)
		}
		if err != nil {
			f.logger.Error("skipping unusable snapshot", "id", c.name, "error", err)
			continue
		}
		usable = append(usable, c.meta)
	}
	f.forgetVerifiedExcept(seen)
	return usable, stale, nil
}

// compareDesc orders larger numbers first.
func compareDesc(a, b uint64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// parseSnapshotID splits an ID made by newSnapshotID.
func parseSnapshotID(id string) (term, index uint64, ok bool) {
	parts := strings.Split(id, "-")
	if len(parts) != 3 {
		return 0, 0, false
	}
	term, err1 := strconv.ParseUint(parts[0], 10, 64)
	index, err2 := strconv.ParseUint(parts[1], 10, 64)
	_, err3 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, false
	}
	return term, index, true
}

// checkState reports whether the state.bin of a snapshot has the size and
// CRC its metadata records, reading it only if it changed since it was
// last found right.
func (f *FileSnapshotStore) checkState(meta *fileSnapshotMeta) error {
	fh, info, err := openStateFile(filepath.Join(f.path, meta.ID), meta)
	if err != nil {
		return err
	}
	defer fh.Close()
	stamp := snapshotStamp{size: info.Size(), modTime: info.ModTime().UnixNano(), crc: string(meta.CRC)}
	if f.wasVerified(meta.ID, stamp) {
		return nil
	}
	if err := verifySnapshotState(fh, info.Size(), meta); err != nil {
		return err
	}
	f.rememberVerified(meta.ID, stamp)
	return nil
}

// verifySnapshotState checks that state, a state.bin of size bytes read
// from its start, has the size and CRC meta records. It streams the file
// and never holds it in memory.
func verifySnapshotState(state io.Reader, size int64, meta *fileSnapshotMeta) error {
	if err := checkSnapshotSize(size, meta); err != nil {
		return err
	}
	sum := newSnapshotHash()
	// Read through a large buffer: io.Copy from an *os.File would read
	// 32 KiB at a time.
	n, err := io.CopyBuffer(sum, struct{ io.Reader }{state}, make([]byte, snapshotBufferSize))
	if err != nil {
		return fmt.Errorf("reading %s: %w", snapshotStateFile, err)
	}
	if n != meta.Size {
		return fmt.Errorf("%s changed while being read: %d bytes read, meta.json records %d",
			snapshotStateFile, n, meta.Size)
	}
	if !bytes.Equal(sum.Sum(nil), meta.CRC) {
		return errCRCMismatch
	}
	return nil
}

// checkSnapshotSize reports a state.bin of size bytes that is not the size
// meta records.
func checkSnapshotSize(size int64, meta *fileSnapshotMeta) error {
	if size != meta.Size {
		return fmt.Errorf("%s holds %d bytes but meta.json records %d: truncated or overwritten",
			snapshotStateFile, size, meta.Size)
	}
	return nil
}

func (f *FileSnapshotStore) wasVerified(id string, stamp snapshotStamp) bool {
	f.verifiedMu.Lock()
	defer f.verifiedMu.Unlock()
	got, ok := f.verified[id]
	return ok && got == stamp
}

func (f *FileSnapshotStore) rememberVerified(id string, stamp snapshotStamp) {
	f.verifiedMu.Lock()
	defer f.verifiedMu.Unlock()
	f.verified[id] = stamp
}

// forgetVerifiedExcept drops what is remembered about snapshots that are
// gone from the directory.
func (f *FileSnapshotStore) forgetVerifiedExcept(present map[string]bool) {
	f.verifiedMu.Lock()
	defer f.verifiedMu.Unlock()
	for id := range f.verified {
		if !present[id] {
			delete(f.verified, id)
		}
	}
}

// Open returns the metadata of the snapshot with the given ID and a reader
// of its bytes, which the caller must close. Before returning, it reads
// state.bin once to check its size and CRC, so a damaged snapshot is
// reported here rather than half-way through a restore. Errors name the
// snapshot; a checksum failure reads "... CRC mismatch".
func (f *FileSnapshotStore) Open(id string) (*SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := f.open(id, false)
	if err != nil {
		return nil, nil, f.openFailed(id, err)
	}
	return meta, rc, nil
}

// openFailed logs a snapshot that could not be opened and returns err
// wrapped with its ID, as all the ways to open one report it.
func (f *FileSnapshotStore) openFailed(id string, err error) error {
	f.logger.Error("failed to open snapshot", "id", id, "error", err)
	return fmt.Errorf("opening snapshot %s: %w", id, err)
}

// open opens a snapshot after checking its state.bin. With trustStamp,
// the CRC pass is skipped when the store hashed every byte of the file
// (writing or checking it) and its size and modification time have not
// changed since.
func (f *FileSnapshotStore) open(id string, trustStamp bool) (*SnapshotMeta, io.ReadCloser, error) {
	meta, fh, info, err := f.openSnapshotFiles(id)
	if err != nil {
		return nil, nil, err
	}
	stamp := snapshotStamp{size: info.Size(), modTime: info.ModTime().UnixNano(), crc: string(meta.CRC)}
	if !trustStamp || !f.wasVerified(id, stamp) {
		err = verifySnapshotState(fh, info.Size(), meta)
		if err == nil {
			_, err = fh.Seek(0, io.SeekStart)
		}
		if err != nil {
			fh.Close()
			return nil, nil, err
		}
	}
	f.rememberVerified(id, stamp)
	return &meta.SnapshotMeta, &snapshotFileReader{
		Reader: bufio.NewReaderSize(fh, snapshotBufferSize),
		file:   fh,
	}, nil
}

// openWritten is Open for a snapshot this node has just finished writing
// through one of this store's sinks, such as one received from the leader,
// about to be restored. The sink hashed every byte on its way to
// state.bin, and Close recorded the CRC with the file's size and
// modification time; while those are unchanged, reading the file once
// more to check it would only read back the page cache the sink just
// filled, so that pass is skipped. A snapshot whose file changed is
// checked in full, as Open, which always checks, does.
func (f *FileSnapshotStore) openWritten(id string) (*SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := f.open(id, true)
	if err != nil {
		return nil, nil, f.openFailed(id, err)
	}
	return meta, rc, nil
}

// openToSend is Open for a snapshot about to be streamed to a follower.
// Instead of reading state.bin once to check its CRC and once more to send
// it, the returned reader checks the CRC as the bytes go out and holds
// back the read that would complete the file until the CRC matches: a
// damaged snapshot ends in an error a few bytes short of its Size, so the
// receiver never gets all of it. The size is checked before anything is
// read.
func (f *FileSnapshotStore) openToSend(id string) (*SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := f.openChecking(id)
	if err != nil {
		return nil, nil, f.openFailed(id, err)
	}
	return meta, rc, nil
}

func (f *FileSnapshotStore) openChecking(id string) (*SnapshotMeta, io.ReadCloser, error) {
	meta, fh, _, err := f.openSnapshotFiles(id)
	if err != nil {
		return nil, nil, err
	}
	return &meta.SnapshotMeta, &checkingSnapshotReader{
		r:    bufio.NewReaderSize(fh, snapshotBufferSize),
		file: fh,
		id:   id,
		hash: newSnapshotHash(),
		left: meta.Size,
		want: meta.CRC,
	}, nil
}

// openSnapshotFiles checks that id names a snapshot directory, reads and
// checks its meta.json, and opens its state.bin, whose size must be the
// one meta.json records. The caller closes the returned file.
func (f *FileSnapshotStore) openSnapshotFiles(id string) (*fileSnapshotMeta, *os.File, os.FileInfo, error) {
	if !validSnapshotDirName(id) {
		return nil, nil, nil, errors.New("not a snapshot ID")
	}
	dir := filepath.Join(f.path, id)
	meta, err := readSnapshotMeta(dir, id)
	if err != nil {
		return nil, nil, nil, err
	}
	fh, info, err := openStateFile(dir, meta)
	if err != nil {
		return nil, nil, nil, err
	}
	return meta, fh, info, nil
}

// openStateFile opens the state.bin in dir, the directory of the snapshot
// meta describes, and checks that its size is the one meta records. On
// error nothing is left open; otherwise the caller closes the file.
func openStateFile(dir string, meta *fileSnapshotMeta) (*os.File, os.FileInfo, error) {
	fh, err := os.Open(filepath.Join(dir, snapshotStateFile))
	if err != nil {
		return nil, nil, fmt.Errorf("missing or unreadable %s: %w", snapshotStateFile, err)
	}
	info, err := fh.Stat()
	if err == nil {
		err = checkSnapshotSize(info.Size(), meta)
	}
	if err != nil {
		fh.Close()
		return nil, nil, err
	}
	return fh, info, nil
}

// checkingSnapshotReader reads a state.bin of a known size and CRC and
// fails, instead of returning the read that completes it, when the CRC of
// the whole does not match.
type checkingSnapshotReader struct {
	r    *bufio.Reader
	file *os.File
	id   string
	hash hash.Hash64
	left int64 // bytes not read yet
	want []byte
	err  error // sticky
}

func (c *checkingSnapshotReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.hash.Write(p[:n])
	c.left -= int64(n)
	switch {
	case c.left == 0 && !bytes.Equal(c.hash.Sum(nil), c.want):
		c.err = fmt.Errorf("snapshot %s: %w", c.id, errCRCMismatch)
		return 0, c.err
	case c.left == 0:
		return n, nil
	case err == io.EOF:
		c.err = fmt.Errorf("snapshot %s: %s ended %d bytes before the size meta.json records", c.id, snapshotStateFile, c.left)
		return n, c.err
	case err != nil:
		c.err = fmt.Errorf("snapshot %s: reading %s: %w", c.id, snapshotStateFile, err)
		return n, c.err
	}
	return n, nil
}

func (c *checkingSnapshotReader) Close() error {
	return c.file.Close()
}

// openSnapshotToSend opens a snapshot for a replicator to stream, through
// the store's openToSend when it has one (see FileSnapshotStore.openToSend),
// and through Open otherwise.
func openSnapshotToSend(store SnapshotStore, id string) (*SnapshotMeta, io.ReadCloser, error) {
	if s, ok := store.(interface {
		openToSend(id string) (*SnapshotMeta, io.ReadCloser, error)
	}); ok {
		return s.openToSend(id)
	}
	return store.Open(id)
}

// openWrittenSnapshot opens a snapshot that this node's own sink has just
// finished, through the store's openWritten when it has one (see
// FileSnapshotStore.openWritten), and through Open otherwise.
func openWrittenSnapshot(store SnapshotStore, id string) (*SnapshotMeta, io.ReadCloser, error) {
	if w, ok := store.(interface {
		openWritten(id string) (*SnapshotMeta, io.ReadCloser, error)
	}); ok {
		return w.openWritten(id)
	}
	return store.Open(id)
}

// validSnapshotDirName reports whether id can name a directory directly
// inside the store's, so that Open never leaves it.
func validSnapshotDirName(id string) bool {
	return id != "" && id != "." && id != ".." &&
		!strings.ContainsAny(id, `/\`) && filepath.Base(id) == id
}

// snapshotFileReader reads an opened state.bin through a buffer and closes
// the file.
type snapshotFileReader struct {
	*bufio.Reader
	file *os.File
}

func (r *snapshotFileReader) Close() error {
	return r.file.Close()
}

// readSnapshotMeta reads and checks the meta.json in dir, whose base name
// is name.
func readSnapshotMeta(dir, name string) (*fileSnapshotMeta, error) {
	fh, err := os.Open(filepath.Join(dir, snapshotMetaFileName))
	if err != nil {
		return nil, fmt.Errorf("missing or unreadable %s: %w", snapshotMetaFileName, err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxSnapshotMetaBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", snapshotMetaFileName, err)
	}
	if len(data) > maxSnapshotMetaBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", snapshotMetaFileName, maxSnapshotMetaBytes)
	}
	return parseSnapshotMeta(data, name)
}

// parseSnapshotMeta decodes a meta.json found in the directory name and
// checks that it describes a finished snapshot this store can read.
func parseSnapshotMeta(data []byte, name string) (*fileSnapshotMeta, error) {
	meta := &fileSnapshotMeta{}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(meta); err != nil {
		return nil, fmt.Errorf("garbled %s: %w", snapshotMetaFileName, err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("garbled %s: unexpected data after the JSON object", snapshotMetaFileName)
	}
	switch {
	case meta.Version < SnapshotVersionMin || meta.Version > SnapshotVersionMax:
		return nil, fmt.Errorf("unsupported snapshot version %d", meta.Version)
	case meta.ID != name:
		return nil, fmt.Errorf("%s names snapshot %q but is in directory %q", snapshotMetaFileName, meta.ID, name)
	case meta.Size < 0:
		return nil, fmt.Errorf("%s records a negative size %d", snapshotMetaFileName, meta.Size)
	case len(meta.CRC) == 0:
		return nil, fmt.Errorf("%s has no CRC: the snapshot was never finished", snapshotMetaFileName)
	case len(meta.CRC) != crc64.Size:
		return nil, fmt.Errorf("%s has a %d-byte CRC, want %d", snapshotMetaFileName, len(meta.CRC), crc64.Size)
	}
	return meta, nil
}

// writeSnapshotMeta writes meta as dir/meta.json, one line of JSON, and
// fsyncs it when durable. The first meta.json of a snapshot being written
// need not be durable: its directory is "<id>.tmp" until Close has
// rewritten meta.json and fsynced it, and a ".tmp" directory is never read.
func writeSnapshotMeta(dir string, meta *fileSnapshotMeta, durable bool) error {
	data, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", snapshotMetaFileName, err)
	}
	data = append(data, '\n')
	fh, err := os.Create(filepath.Join(dir, snapshotMetaFileName))
	if err != nil {
		return err
	}
	if _, err := fh.Write(data); err != nil {
		fh.Close()
		return err
	}
	if durable {
		if err := fh.Sync(); err != nil {
			fh.Close()
			return err
		}
	}
	return fh.Close()
}

// syncDir fsyncs a directory so that the entries created, removed or
// renamed in it are durable. Windows has no such call, nor needs it.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	fh, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := fh.Sync(); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

// ReapSnapshots deletes the snapshots beyond the newest retain usable
// ones, including damaged snapshots older than those. Damaged snapshots
// newer than the oldest kept one stay, for an operator to look at. It tries
// every deletion and returns the failures joined.
func (f *FileSnapshotStore) ReapSnapshots() error {
	_, stale, err := f.survey()
	if err != nil {
		f.logger.Error("failed to list snapshots to reap", "error", err)
		return err
	}
	var errs []error
	for _, name := range stale {
		dir := filepath.Join(f.path, name)
		f.logger.Info("reaping snapshot", "path", dir)
		if err := os.RemoveAll(dir); err != nil {
			f.logger.Error("failed to reap snapshot", "path", dir, "error", err)
			errs = append(errs, fmt.Errorf("reaping snapshot %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// FileSnapshotSink writes one snapshot of a FileSnapshotStore. Writes are
// buffered; Close makes the snapshot durable and visible, Cancel deletes
// it. It is safe for concurrent use, though raft writes from one goroutine.
type FileSnapshotSink struct {
	store *FileSnapshotStore
	// dir is the snapshot's directory while it is written: <id>.tmp.
	dir string

	mu sync.Mutex
	// The fields below are guarded by mu.

	meta  fileSnapshotMeta
	state *os.File
	// hash sums what reaches state, for the CRC.
	hash hash.Hash64
	// buf buffers writes to direct, which writes to state and hash.
	buf    *bufio.Writer
	direct *stateWriter
	// done is set by the first Close or Cancel; later writes fail and
	// later Close or Cancel calls do nothing.
	done bool
}

// ID returns the snapshot's ID, which Open takes once the sink is closed.
func (s *FileSnapshotSink) ID() string {
	return s.meta.ID
}

// Write appends b to the snapshot. It fails once the sink was closed or
// cancelled.
func (s *FileSnapshotSink) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return 0, errSinkDone
	}
	if len(b) >= s.buf.Size() && s.buf.Buffered() == 0 {
		// As large as the buffer: copying it there first would gain
		// nothing (the receiving goroutine writes in such chunks).
		return s.direct.Write(b)
	}
	return s.buf.Write(b)
}

// Close finishes the snapshot: it makes its bytes and metadata durable,
// moves it to its final name, and then deletes snapshots beyond the
// store's retain count. If finishing fails, the unfinished snapshot is
// deleted and the error returned. A failure to delete old snapshots is only
// logged, because the new snapshot is complete and usable by then; the
// next Close or ReapSnapshots tries again. Calling Close or Cancel again
// does nothing and returns nil.
func (s *FileSnapshotSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil
	}
	s.done = true
	if err := s.finishLocked(); err != nil {
		s.store.logger.Error("failed to finish snapshot", "id", s.meta.ID, "error", err)
		s.removeLocked()
		return fmt.Errorf("finishing snapshot %s: %w", s.meta.ID, err)
	}
	if err := s.store.ReapSnapshots(); err != nil {
		s.store.logger.Error("snapshot saved, but old snapshots could not all be removed",
			"id", s.meta.ID, "error", err)
	}
	return nil
}

// finishLocked makes the snapshot durable and renames its directory into
// place, in the order the design comment at the top of the file gives.
func (s *FileSnapshotSink) finishLocked() error {
	state := s.state
	s.state = nil
	err := s.buf.Flush()
	if err == nil {
		err = state.Sync()
	}
	var info os.FileInfo
	if err == nil {
		info, err = state.Stat()
	}
	if closeErr := state.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", snapshotStateFile, err)
	}
	s.meta.Size = info.Size()
	s.meta.CRC = s.hash.Sum(nil)
	if err := writeSnapshotMeta(s.dir, &s.meta, true); err != nil {
		return fmt.Errorf("writing %s: %w", snapshotMetaFileName, err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("syncing snapshot directory: %w", err)
	}
	final := strings.TrimSuffix(s.dir, snapshotTmpSuffix)
	if err := os.Rename(s.dir, final); err != nil {
		return fmt.Errorf("moving snapshot into place: %w", err)
	}
	s.dir = final
	if err := syncDir(s.store.path); err != nil {
		return fmt.Errorf("syncing snapshot directory: %w", err)
	}
	s.store.rememberVerified(s.meta.ID, snapshotStamp{
		size:    info.Size(),
		modTime: info.ModTime().UnixNano(),
		crc:     string(s.meta.CRC),
	})
	return nil
}

// Cancel throws the snapshot away and deletes its directory. Calling Close
// or Cancel again does nothing and returns nil.
func (s *FileSnapshotSink) Cancel() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil
	}
	s.done = true
	if err := s.removeLocked(); err != nil {
		return fmt.Errorf("cancelling snapshot %s: %w", s.meta.ID, err)
	}
	return nil
}

// removeLocked closes state.bin if it is open and deletes the snapshot's
// directory, logging a failure.
func (s *FileSnapshotSink) removeLocked() error {
	if s.state != nil {
		s.state.Close()
		s.state = nil
	}
	if err := os.RemoveAll(s.dir); err != nil {
		s.store.logger.Error("failed to remove unfinished snapshot", "path", s.dir, "error", err)
		return err
	}
	return nil
}
