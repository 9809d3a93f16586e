package raftboltdb

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// The open-time checker. bbolt trusts its file: it reads pages straight
// from a memory map, follows page ids without bounds checks and descends
// the tree recursively. On a damaged file that means a fault (a page past
// the end of the file), a panic (a page of the wrong type), or unbounded
// recursion and an unrecoverable stack overflow (a branch page that points
// at itself or at an ancestor). So before bbolt sees a file, checkFile
// reads it with plain reads, never through a memory map, and proves that
// bbolt can walk it safely:
//
//   - the file is long enough for the high-water mark in its meta page, so
//     no page bbolt may touch lies past the end of the file;
//   - every page reachable from the meta page (branch, leaf, nested and
//     inline bucket pages) has an id in [2, high-water mark), names itself
//     in its header, has the type its parent expects, holds its elements
//     and their keys and values inside its own span, and is reached only
//     once (a visited set over all pages, which rules out cycles), no
//     deeper than maxTreeDepth;
//   - the freelist page is well formed and lists only pages that are in
//     range, not in use by the tree and not listed twice.
//
// It reads the first page of each page's span (and the rest of an element
// array that runs past it), never the overflow pages that hold large
// values, with one read call per page; BenchmarkCheckFile measures it. It
// does not check key order or value contents (a bad value comes back as an
// error from the read that decodes it).

// maxTreeDepth bounds the descent, counting both tree levels and bucket
// nesting. A raft store is two levels of buckets over trees a handful of
// levels deep; the bound only has to be finite and generous.
const maxTreeDepth = 64

// fileState is what checkFile proved about a file: New compares it with
// what bbolt opened, to be sure both looked at the same meta page.
type fileState struct {
	pageSize int
	txid     uint64
	pgid     uint64
}

// checkFile checks the bolt file at path as described above. It returns
// (nil, nil) when there is nothing to check: the file does not exist or is
// empty and bbolt is going to create it. Every problem it finds is returned
// wrapped around ErrCorrupt; I/O errors are returned as they are, with
// context. lock, unless nil, is called on the opened file before it is read
// (to wait for other processes to let go of it) and its error returned.
func checkFile(path string, readOnly bool, lock func(*os.File) error) (*fileState, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // bbolt creates it, or reports it missing when read-only
	}
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	defer f.Close()
	if lock != nil {
		if err := lock(f); err != nil {
			return nil, err
		}
	}
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	size := info.Size()
	if size == 0 {
		if readOnly {
			return nil, corruptf("the file is empty (a read-only open cannot create a store)")
		}
		return nil, nil // bbolt writes the initial pages
	}
	c := &checker{f: f, size: size}
	return c.run()
}

// CheckFile runs New's open-time check on the bolt file at path, for code
// that opens bolt files of its own (the WAL's wal-meta.db, wal/metadb): an
// error wrapping ErrCorrupt means bbolt could crash, loop or read out of
// bounds on the file, so it must not be used. A missing or empty file
// passes. It takes no lock: the caller holds bbolt's lock on the file, or
// knows that no process writes it.
func CheckFile(path string) error {
	_, err := checkFile(path, false, nil)
	return err
}

// checker holds the state of one checkFile call.
type checker struct {
	f        *os.File
	size     int64
	pageSize uint64
	pgid     uint64   // high-water mark of the chosen meta
	seen     []uint64 // bitset over page ids: pages already claimed
	buf      []byte

	// onPage, when set (by tests), is told about every tree page visited.
	onPage func(id uint64, flags uint16, depth int)
}

func (c *checker) run() (*fileState, error) {
	ps, err := c.findPageSize()
	if err != nil {
		return nil, err
	}
	c.pageSize = ps
	m, err := c.chooseMeta()
	if err != nil {
		return nil, err
	}
	if uint64(m.pageSize) != c.pageSize {
		return nil, corruptf("the meta page in use gives page size %d, the file uses %d", m.pageSize, c.pageSize)
	}
	if m.pgid > uint64(c.size)/c.pageSize {
		return nil, corruptf("the file is truncated: it is %d bytes, its meta page says %d pages of %d bytes", c.size, m.pgid, c.pageSize)
	}
	if m.pgid < 3 {
		return nil, corruptf("the meta page says the file has only %d pages", m.pgid)
	}
	if m.root < 2 || m.root >= m.pgid {
		return nil, corruptf("the root bucket page %d is outside the file's pages 2..%d", m.root, m.pgid-1)
	}
	if m.freelist != noFreelist && (m.freelist < 2 || m.freelist >= m.pgid) {
		return nil, corruptf("the freelist page %d is outside the file's pages 2..%d", m.freelist, m.pgid-1)
	}
	c.pgid = m.pgid
	c.seen = make([]uint64, (m.pgid+63)/64)
	if err := c.walkPage(m.root, 0); err != nil {
		return nil, err
	}
	if err := c.checkFreelist(m.freelist); err != nil {
		return nil, err
	}
	return &fileState{pageSize: int(c.pageSize), txid: m.txid, pgid: m.pgid}, nil
}

// findPageSize finds the page size the way bbolt does when it opens a
// file, so that both read the same pages: from the first meta page if it is
// valid, else from the first valid meta page found at 1 KiB, 2 KiB, ...
// 16 MiB.
func (c *checker) findPageSize() (uint64, error) {
	var buf [4096]byte
	var why string
	if c.size >= int64(len(buf)) {
		if _, err := c.f.ReadAt(buf[:], 0); err != nil {
			return 0, fmt.Errorf("check: %w", err)
		}
		m := parseMeta(buf[:])
		var ok bool
		if ok, why = m.valid(); ok {
			return c.checkPageSize(m.pageSize)
		}
	}
	for i := 0; i <= 14; i++ {
		pos := int64(1024) << i
		if pos >= c.size-1024 {
			break
		}
		clear(buf[:])
		if _, err := c.f.ReadAt(buf[:], pos); err != nil && err != io.EOF {
			return 0, fmt.Errorf("check: %w", err)
		}
		if m := parseMeta(buf[:]); m.magic == boltMagic {
			if ok, _ := m.valid(); ok {
				return c.checkPageSize(m.pageSize)
			}
		}
	}
	if why == "" || why == "bad magic" {
		return 0, corruptf("not a bolt database: no meta page found (the file is %d bytes)", c.size)
	}
	return 0, corruptf("no valid meta page: the first one has a %s and no second one was found", why)
}

func (c *checker) checkPageSize(ps uint32) (uint64, error) {
	if ps < minPageSize || ps > maxPageSize {
		return 0, corruptf("page size %d is outside %d..%d", ps, minPageSize, maxPageSize)
	}
	return uint64(ps), nil
}

// chooseMeta reads both meta pages and picks the one bbolt uses: the valid
// one with the higher transaction id.
func (c *checker) chooseMeta() (meta, error) {
	var metas [2]meta
	var whys [2]string
	for i := range metas {
		b, err := c.read(uint64(i)*c.pageSize, pageHeaderSize+metaSize)
		if err != nil {
			return meta{}, err
		}
		metas[i] = parseMeta(b)
		_, whys[i] = metas[i].valid()
	}
	a, b := 0, 1
	if metas[1].txid > metas[0].txid {
		a, b = 1, 0
	}
	switch {
	case whys[a] == "":
		return metas[a], nil
	case whys[b] == "":
		return metas[b], nil
	}
	return meta{}, corruptf("both meta pages are invalid (%s; %s)", whys[0], whys[1])
}

// walkPage checks the tree page id and everything below it.
func (c *checker) walkPage(id uint64, depth int) error {
	if depth > maxTreeDepth {
		return corruptf("the tree is deeper than %d levels at page %d", maxTreeDepth, id)
	}
	if id < 2 || id >= c.pgid {
		return corruptf("a page points at page %d, outside the file's pages 2..%d", id, c.pgid-1)
	}
	b, err := c.read(id*c.pageSize, int(c.pageSize))
	if err != nil {
		return err
	}
	h := parsePageHeader(b)
	if h.id != id {
		return corruptf("page %d names itself page %d", id, h.id)
	}
	if uint64(h.overflow) >= c.pgid-id {
		return corruptf("page %d with %d overflow pages runs past the last page %d", id, h.overflow, c.pgid-1)
	}
	if err := c.claim(id, h.overflow); err != nil {
		return err
	}
	if c.onPage != nil {
		c.onPage(id, h.flags, depth)
	}
	span := (uint64(h.overflow) + 1) * c.pageSize
	switch h.flags {
	case branchPageFlag:
		return c.walkBranch(id, b, h.count, span, depth)
	case leafPageFlag:
		return c.walkLeaf(id, b, h.count, span, depth)
	default:
		return corruptf("page %d has type %#x where a branch or leaf page belongs", id, h.flags)
	}
}

// elements returns the element array of page id, checking that it fits in
// the page's span of span bytes. first holds the page's first bytes as
// already read; the rest is read only when the array is longer.
func (c *checker) elements(id uint64, first []byte, count uint16, span uint64) ([]byte, error) {
	end := pageHeaderSize + uint64(count)*elementSize
	if end > span {
		return nil, corruptf("page %d claims %d elements, more than fit in its %d bytes", id, count, span)
	}
	if end <= uint64(len(first)) {
		return first[pageHeaderSize:end], nil
	}
	b, err := c.read(id*c.pageSize, int(end))
	if err != nil {
		return nil, err
	}
	return b[pageHeaderSize:], nil
}

func (c *checker) walkBranch(id uint64, first []byte, count uint16, span uint64, depth int) error {
	if count == 0 {
		return corruptf("branch page %d is empty", id)
	}
	elems, err := c.elements(id, first, count, span)
	if err != nil {
		return err
	}
	children := make([]uint64, count)
	for i := range children {
		off := uint64(pageHeaderSize + i*elementSize)
		e := parseBranchElement(elems[i*elementSize:])
		if off+uint64(e.pos)+uint64(e.ksize) > span {
			return corruptf("page %d element %d has its key outside the page", id, i)
		}
		children[i] = e.child
	}
	for _, child := range children {
		if err := c.walkPage(child, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func (c *checker) walkLeaf(id uint64, first []byte, count uint16, span uint64, depth int) error {
	elems, err := c.elements(id, first, count, span)
	if err != nil {
		return err
	}
	var buckets [][]byte
	for i := 0; i < int(count); i++ {
		off := uint64(pageHeaderSize + i*elementSize)
		e := parseLeafElement(elems[i*elementSize:])
		valueOff := off + uint64(e.pos) + uint64(e.ksize)
		if valueOff+uint64(e.vsize) > span {
			return corruptf("page %d element %d has its key or value outside the page", id, i)
		}
		if e.flags&bucketLeafFlag == 0 {
			continue
		}
		// bbolt inlines a bucket only when it fits in a quarter page.
		if uint64(e.vsize) > bucketHeaderSize+c.pageSize {
			return corruptf("page %d element %d is a bucket header of %d bytes, too long for one", id, i, e.vsize)
		}
		// Read into a buffer of its own: elems lives in c.buf.
		v := make([]byte, e.vsize)
		if _, err := c.f.ReadAt(v, int64(id*c.pageSize+valueOff)); err != nil {
			return fmt.Errorf("check: read a bucket header on page %d: %w", id, err)
		}
		buckets = append(buckets, v)
	}
	for _, v := range buckets {
		if err := c.walkBucket(v, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// walkBucket checks the bucket whose header (and inline page, if any) is v.
func (c *checker) walkBucket(v []byte, depth int) error {
	if len(v) < bucketHeaderSize {
		return corruptf("a bucket header is %d bytes long, want %d", len(v), bucketHeaderSize)
	}
	if root := byteOrder.Uint64(v[0:8]); root != 0 {
		return c.walkPage(root, depth)
	}
	// An inline bucket: a single leaf page stored in the value itself.
	page := v[bucketHeaderSize:]
	if len(page) < pageHeaderSize {
		return corruptf("an inline bucket is %d bytes, too short for a page", len(page))
	}
	h := parsePageHeader(page)
	if h.flags != leafPageFlag {
		return corruptf("an inline bucket has page type %#x, want a leaf", h.flags)
	}
	span := uint64(len(page))
	if pageHeaderSize+uint64(h.count)*elementSize > span {
		return corruptf("an inline bucket claims %d elements, more than fit in %d bytes", h.count, span)
	}
	for i := 0; i < int(h.count); i++ {
		off := uint64(pageHeaderSize + i*elementSize)
		e := parseLeafElement(page[off:])
		if off+uint64(e.pos)+uint64(e.ksize)+uint64(e.vsize) > span {
			return corruptf("an inline bucket's element %d lies outside it", i)
		}
		if e.flags&bucketLeafFlag != 0 {
			return corruptf("an inline bucket holds a nested bucket")
		}
	}
	return nil
}

// checkFreelist checks the freelist page id and the page ids it lists.
func (c *checker) checkFreelist(id uint64) error {
	if id == noFreelist {
		return nil // not stored: bbolt rebuilds it from the tree just checked
	}
	b, err := c.read(id*c.pageSize, pageHeaderSize+8)
	if err != nil {
		return err
	}
	h := parsePageHeader(b)
	switch {
	case h.id != id:
		return corruptf("freelist page %d names itself page %d", id, h.id)
	case h.flags != freelistPageFlag:
		return corruptf("freelist page %d has type %#x", id, h.flags)
	case uint64(h.overflow) >= c.pgid-id:
		return corruptf("freelist page %d with %d overflow pages runs past the last page %d", id, h.overflow, c.pgid-1)
	}
	if err := c.claim(id, h.overflow); err != nil {
		return err
	}
	span := (uint64(h.overflow) + 1) * c.pageSize
	start, count := uint64(pageHeaderSize), uint64(h.count)
	if h.count == freelistCountOverflow {
		start += 8
		count = byteOrder.Uint64(b[pageHeaderSize:])
	}
	if count > (span-start)/8 {
		return corruptf("freelist page %d claims %d ids, more than fit in its %d bytes", id, count, span)
	}
	ids, err := c.read(id*c.pageSize+start, int(count*8))
	if err != nil {
		return err
	}
	for i := uint64(0); i < count; i++ {
		free := byteOrder.Uint64(ids[i*8:])
		if free < 2 || free >= c.pgid {
			return corruptf("the freelist names page %d, outside the file's pages 2..%d", free, c.pgid-1)
		}
		if c.isSeen(free) {
			return corruptf("page %d is listed as free but is in use or listed twice", free)
		}
		c.mark(free)
	}
	return nil
}

// claim marks page id and its overflow pages as used by the tree, and
// fails if any of them already was: the tree then has a cycle, or two
// parents share a page.
func (c *checker) claim(id uint64, overflow uint32) error {
	for p := id; p <= id+uint64(overflow); p++ {
		if c.isSeen(p) {
			return corruptf("page %d is reached twice (a cycle, or a page shared by two parents)", p)
		}
		c.mark(p)
	}
	return nil
}

func (c *checker) isSeen(p uint64) bool { return c.seen[p/64]&(1<<(p%64)) != 0 }
func (c *checker) mark(p uint64)        { c.seen[p/64] |= 1 << (p % 64) }

// read returns n bytes at off. The slice is only valid until the next call.
func (c *checker) read(off uint64, n int) ([]byte, error) {
	if off > uint64(c.size) || uint64(n) > uint64(c.size)-off {
		return nil, corruptf("a read of %d bytes at offset %d runs past the end of the file (%d bytes)", n, off, c.size)
	}
	if cap(c.buf) < n {
		c.buf = make([]byte, n)
	}
	b := c.buf[:n]
	if _, err := c.f.ReadAt(b, int64(off)); err != nil {
		return nil, fmt.Errorf("check: read %d bytes at %d: %w", n, off, err)
	}
	return b, nil
}

// corruptf reports a problem with the file, wrapped around ErrCorrupt.
func corruptf(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrCorrupt)
}
