package raftboltdb

import (
	"encoding/binary"
	"hash/fnv"
)

// This file describes the bbolt file format as far as the open-time checker
// (check.go) needs it. bbolt keeps these structures in internal packages, so
// they are restated here from the format itself:
//
//	page header (16 bytes): id u64 | flags u16 | count u16 | overflow u32
//	meta (64 bytes, after a page header on pages 0 and 1):
//	    magic u32 | version u32 | pageSize u32 | flags u32 |
//	    root bucket (root u64, sequence u64) | freelist u64 |
//	    pgid u64 (high-water mark: pages in use are below it) | txid u64 |
//	    checksum u64 (FNV-1a 64 of the 56 bytes before it)
//	branch element (16 bytes): pos u32 | ksize u32 | child pgid u64
//	leaf element (16 bytes):   flags u32 | pos u32 | ksize u32 | vsize u32
//	bucket value: root pgid u64 | sequence u64 [| inline leaf page if root == 0]
//
// Element pos is counted from the start of the element itself; the key
// follows at pos and, for leaves, the value right after the key. A page and
// its overflow pages form one contiguous span of (overflow+1)*pageSize bytes.
// bbolt writes integers in the host's byte order.

// byteOrder is the byte order of bbolt's integers: the host's.
var byteOrder = binary.NativeEndian

const (
	boltMagic   = 0xED0CDAED
	boltVersion = 2

	pageHeaderSize   = 16
	metaSize         = 64
	metaChecksummed  = 56 // bytes of the meta covered by its checksum
	elementSize      = 16 // branch and leaf elements have the same size
	bucketHeaderSize = 16

	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	metaPageFlag     = 0x04
	freelistPageFlag = 0x10

	bucketLeafFlag = 0x01

	// noFreelist in a meta's freelist field means the freelist is not
	// stored (bbolt's NoFreelistSync) and is rebuilt by scanning the file.
	noFreelist = ^uint64(0)

	// freelistCountOverflow in a freelist page's count field means the
	// real count is the first 8-byte slot after the header.
	freelistCountOverflow = 0xFFFF

	// minPageSize and maxPageSize bound the page sizes the checker accepts.
	// bbolt itself looks for the second meta page only up to 16 MiB.
	minPageSize = 1024
	maxPageSize = 1 << 24
)

// pageHeader is the fixed start of every page.
type pageHeader struct {
	id       uint64
	flags    uint16
	count    uint16
	overflow uint32
}

func parsePageHeader(b []byte) pageHeader {
	return pageHeader{
		id:       byteOrder.Uint64(b[0:8]),
		flags:    byteOrder.Uint16(b[8:10]),
		count:    byteOrder.Uint16(b[10:12]),
		overflow: byteOrder.Uint32(b[12:16]),
	}
}

// meta is one of the two meta pages that say where the current tree is.
type meta struct {
	magic    uint32
	version  uint32
	pageSize uint32
	root     uint64 // page of the root bucket, which holds the top-level buckets
	freelist uint64
	pgid     uint64
	txid     uint64
	checksum uint64
	sum      uint64 // checksum computed over the bytes read
}

// parseMeta decodes the meta found in b, the first bytes of a meta page.
func parseMeta(b []byte) meta {
	m := b[pageHeaderSize : pageHeaderSize+metaSize]
	h := fnv.New64a()
	h.Write(m[:metaChecksummed])
	return meta{
		magic:    byteOrder.Uint32(m[0:4]),
		version:  byteOrder.Uint32(m[4:8]),
		pageSize: byteOrder.Uint32(m[8:12]),
		root:     byteOrder.Uint64(m[16:24]),
		freelist: byteOrder.Uint64(m[32:40]),
		pgid:     byteOrder.Uint64(m[40:48]),
		txid:     byteOrder.Uint64(m[48:56]),
		checksum: byteOrder.Uint64(m[56:64]),
		sum:      h.Sum64(),
	}
}

// valid reports whether bbolt would accept m, with the reason if not.
func (m meta) valid() (ok bool, why string) {
	switch {
	case m.magic != boltMagic:
		return false, "bad magic"
	case m.version != boltVersion:
		return false, "unsupported version"
	case m.checksum != m.sum:
		return false, "bad checksum"
	}
	return true, ""
}

// element is a branch or leaf element; a branch element leaves flags and
// vsize zero and sets child.
type element struct {
	flags uint32
	pos   uint32
	ksize uint32
	vsize uint32
	child uint64
}

func parseBranchElement(b []byte) element {
	return element{
		pos:   byteOrder.Uint32(b[0:4]),
		ksize: byteOrder.Uint32(b[4:8]),
		child: byteOrder.Uint64(b[8:16]),
	}
}

func parseLeafElement(b []byte) element {
	return element{
		flags: byteOrder.Uint32(b[0:4]),
		pos:   byteOrder.Uint32(b[4:8]),
		ksize: byteOrder.Uint32(b[8:12]),
		vsize: byteOrder.Uint32(b[12:16]),
	}
}
