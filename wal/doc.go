// Package wal keeps a raft node's log and stable values in a write-ahead
// log: segment files appended to with one write and one data sync per
// batch, and a small bbolt file for the segment list and the stable
// values. It is a drop-in for github.com/hashicorp/raft-wal v0.4.0: the
// same exported API (with this module's raft types), and the same files,
// so an application can switch between the two libraries on an existing
// directory, in either direction.
//
//	w, err := wal.Open(dir) // dir must exist
//	if err != nil { ... }
//	defer w.Close()
//	// w is both the raft.LogStore and the raft.StableStore:
//	r, err := raft.NewRaft(conf, fsm, w, w, snaps, trans)
//
// To move an existing raftboltdb store to a WAL, see package migrate.
//
// # Files
//
// wal-meta.db is a bbolt database with two buckets: "wal-meta", whose one
// key "m" holds the segment list as JSON (types.PersistentState), and
// "stable", the StableStore values (SetUint64 writes 8 little-endian
// bytes). Segment files are named <BaseIndex, 20 decimal digits>-<ID, 16
// hex digits>.wal and preallocated to the segment size (64 MiB unless
// WithSegmentSize says otherwise). Package segment documents their layout:
// a header, then 8-byte aligned frames, each append ending with a commit
// frame holding a CRC32-Castagnoli of the batch, and the batch that fills
// a segment also writing an index frame, which seals it. Entries are
// encoded by BinaryCodec unless WithCodec gives another codec.
//
// # Durability and recovery
//
// StoreLogs encodes the batch, writes its frames and commit frame with
// one write at the end of the tail segment, and syncs the data once
// (fdatasync on Linux: the file's size does not change, it was
// preallocated); the first sync of a new file also syncs the directory.
// Whenever a batch ends past what a new file has had written, 1 MiB of
// zeros follows it in the same sync, so that the next batches' syncs
// need not record newly written extents (see package fs).
// When StoreLogs returns nil the batch is durable. Sealing a full segment
// costs one more meta database commit and a file creation, once per
// segment. Truncations commit the new segment list to wal-meta.db before
// touching files, so a crash at any point leaves the state before or
// after; see truncate.go.
//
// Open recovers from a crash: in the tail segment it keeps every batch up
// to the last one whose commit frame and CRC are intact, drops the rest
// (an append that was never acknowledged) and zeroes what it dropped; it
// completes a seal the crash interrupted; it deletes segment files the
// segment list no longer names. crash_sim_test.go checks this on a
// simulated disk that loses or garbles, sector by sector, everything not
// yet synced, crashing at random points of appends, seals, rotations,
// truncations and recovery itself; kill_test.go kills a writing process.
//
// # What damage is detected
//
// Like raft-wal, the format assumes the disk returns what was synced:
// the CRCs are there to recognise a torn append, not to check every
// read. Open refuses, with an error wrapping ErrCorrupt: a segment list
// that is not one run of consecutive segments, a sealed segment file
// that is missing, has another segment's header, an unknown version, no
// index frame where the list says, or fewer entries than the list says,
// and a segment file with a name it cannot parse. GetLog reports an entry
// whose frame, extent or encoding is broken, or that decodes to another
// index, naming the index. A byte changed inside a sealed entry's data
// after it was synced is not detected, by either library.
//
// Where this package goes further than raft-wal v0.4.0:
//
//   - Recovery checks the CRC of every batch in the tail segment, not
//     only the last, and refuses a tail where a damaged batch is
//     followed by an intact one: only the last batch can be torn by a
//     crash, so that is damage, and raft-wal would read past it.
//   - A tail segment file lost after a head truncation inside it is
//     reported (its first index is recorded); raft-wal, like this
//     package for a tail never truncated, cannot tell a lost tail file
//     from a crash before the file's first sync.
//   - Offsets in a segment are 32-bit: an append that would take a
//     segment past 4 GiB is refused rather than wrapped. Entries are
//     limited to 64 MiB (segment.MaxEntrySize), as in raft-wal.
//   - wal-meta.db goes through raftboltdb's open-time page checker
//     (raftboltdb.CheckFile) before bbolt walks it: a page cycle, which
//     would make bbolt recurse until the stack overflows and stop the
//     process, is refused with an error wrapping ErrCorrupt, and a panic
//     or memory fault inside bbolt on a damaged file is returned as an
//     error too.
//
// # Differences from raft-wal v0.4.0
//
//   - Close closes wal-meta.db when Open opened it, releasing its lock:
//     the directory can be opened again in the same process. raft-wal
//     leaves it open, and a second Open waits forever. A meta store given
//     with WithMetaStore belongs to the caller and stays open.
//   - A tail truncation (DeleteRange of a suffix, which raft does when a
//     follower's log conflicts with the leader's) seals the segment it
//     cuts with an index frame. raft-wal v0.4.0 marks it sealed in
//     wal-meta.db only and cannot read it after a restart; this package
//     reads such segments (it scans their frames), so directories left
//     that way by raft-wal open here entry for entry.
//   - raft-wal v0.4.0 seals a full segment in the background; when a
//     tail truncation runs before that step, the step seals the new empty
//     tail instead and starts a segment at index 1 whose record replaces
//     the one of the segment starting there. raft-wal's Open then refuses
//     the directory ("unsealed segment is not at tail"). Open here
//     recognises exactly that segment list (an unsealed empty segment at
//     index 1 first, an empty sealed one last, with consecutive IDs
//     ending at the newest), drops the two empty segments, restores the
//     replaced record from its file (the newest unlisted file starting at
//     that index, checked by scanning every batch's CRC through the
//     entry the next segment starts after) and commits the list raft-wal
//     meant to write. If that file is missing or either empty segment
//     holds entries, it refuses with ErrCorrupt. One case it cannot tell
//     apart: if the segment at index 1 had been dropped by a head
//     truncation whose file was never deleted, the log starts at index 1
//     again, those entries back (raft's next compaction removes them).
//     Any other list with an unsealed segment before the last is refused
//     with ErrCorrupt; this package never writes one, even across a
//     crash, since it seals and starts the next segment in one commit of
//     the segment list (repair.go).
//   - A crash between sealing a segment and recording the seal is
//     completed by Open; raft-wal's next append would fail with
//     ErrSealed.
//   - Opening a wal-meta.db another process holds fails after a few
//     seconds with an error saying so; raft-wal waits forever.
//   - New segments record the codec in use (raft-wal records
//     CodecBinaryV1 whatever the codec), and WithCodec(&BinaryCodec{}) is
//     accepted.
//   - GetLog reads exactly the entry's frame (one read for the tail, two
//     for a sealed segment: the index slots, then the frame) and, with
//     BinaryCodec, lets Data and Extensions point into that buffer
//     instead of copying them; raft-wal reads 64 KiB and copies.
//   - After a failed write or sync the WAL refuses further appends (the
//     file's state is unknown); reopening recovers.
//
// As in raft-wal, Get of a key never set returns nil and no error, and
// DeleteRange accepts only a prefix or a suffix of the log.
//
// # Concurrency
//
// All methods are safe for concurrent use. Appends and truncations run
// one at a time; reads run beside them and never wait for a sync.
package wal
