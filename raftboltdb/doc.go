// Package raftboltdb keeps a raft node's log and stable values in one file
// on go.etcd.io/bbolt. It is a drop-in for github.com/hashicorp/raft-boltdb/v2:
// the same exported API (except MigrateToV2, below) and the same file
// format, so an application can switch between the two libraries on an
// existing data directory, in either direction.
//
//	store, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
//	if err != nil { ... }
//	defer store.Close()
//	// store is both the raft.LogStore and the raft.StableStore:
//	r, err := raft.NewRaft(conf, fsm, store, store, snaps, trans)
//
// # File format
//
// The file is a bbolt database with two buckets. "logs" maps each index,
// as an 8-byte big-endian key, to the raft.Log encoded with go-msgpack's
// default settings; AppendedAt is written as the 15-byte
// time.MarshalBinary form unless Options.MsgpackUseNewTimeFormat asks for
// msgpack's timestamp extension, and both forms are read. "conf" holds the
// StableStore values: Set stores bytes as given, SetUint64 stores 8
// big-endian bytes. Like raft-boltdb's, the store is not a
// raft.MonotonicLogStore.
//
// # Differences from raft-boltdb
//
//   - MigrateToV2, which copies a file of the older github.com/boltdb/bolt
//     format, is not provided: it would make every user depend on that
//     package. Run raft-boltdb's MigrateToV2 once, then open the result here.
//   - New gives up waiting for the file lock after BoltOptions.Timeout, or
//     DefaultOpenTimeout when that is zero, with bbolt.ErrTimeout, and logs
//     that the file is locked; raft-boltdb waits forever when Timeout is
//     zero.
//
// Errors: where raft-boltdb passes one of bbolt's error values through
// (bbolt.ErrTimeout, bbolt.ErrDatabaseReadOnly, bbolt.ErrKeyRequired, ...),
// this package returns that value itself, so err == bbolt.ErrX holds as it
// does there; the operation and file it concerns go to Options.Logger.
// Other errors are wrapped with that context.
//   - New checks an existing file before bbolt reads it, and refuses a
//     damaged one with an error wrapping ErrCorrupt (below).
//   - GetLog resets the Log it fills, and reports an entry that cannot be
//     decoded, or that is stored under an index other than its own, as an
//     error wrapping ErrCorrupt that names the index.
//   - GetUint64 reports a value that is not 8 bytes long as an error
//     instead of panicking or reading its first 8 bytes.
//   - Pages of the logs bucket are packed full when they split, since raft
//     appends in index order; raft-boltdb leaves them half full (20,000
//     entries of 256 bytes stored 16 at a time take 7.6 MB here, 16.2 MB
//     there). Either library reads the other's pages.
//
// # Durability
//
// StoreLogs writes its whole batch in one bbolt transaction: when it
// returns nil the batch is on disk (fsynced, unless Options.NoSync), and
// if the process stops partway (or the machine does, with fsync on and a
// disk that honours it) the file holds either all of the batch or none of
// it. DeleteRange, Set and SetUint64 are single transactions too.
//
// The crash test (crash_test.go) checks this against a real process: a
// child process stores batches in a loop and reports each one StoreLogs
// acknowledged; the test kills it with SIGKILL at random moments, reopens
// the file, and checks that every acknowledged batch is there whole, that
// nothing after the last one is partly there, and that FirstIndex and
// LastIndex agree with the content. That proves atomicity and recovery
// after a process crash. It does not prove durability across a power loss
// or kernel crash: a killed process's writes still reach the disk from the
// operating system's page cache, so the test cannot tell whether an fsync
// was done or the disk honoured it.
//
// # Damaged files
//
// bbolt reads its file through a memory map and trusts what it finds. A
// damaged file can make it fault on a page past the end of the file, panic
// on a page of the wrong type, or, when a branch page points at itself or
// at an ancestor, recurse until the stack overflows, which kills the
// process with no chance to recover. So New first reads the file with
// ordinary reads and checks it:
//
//   - the file is long enough for the pages its meta page says it has (a
//     truncated file), and is a bolt database at all (a meta page with the
//     right magic, version and checksum);
//   - every page reachable from the meta page is in range, of the expected
//     type, holds its elements inside itself, and is reached once only (no
//     cycles, no shared pages), within a depth limit;
//   - the freelist lists only unused pages, each once.
//
// The check takes the shared lock bbolt takes for reading, so it never
// reads a file that another process is writing: a file held open elsewhere
// gives the lock timeout error, not a false report of damage. It makes one
// read per page in use, skipping the overflow pages of large entries; on
// the (shared, busy) 2-core test machine it took 35 to 65 ms for a 75 MB
// file in the page cache (BenchmarkCheckFile), and takes longer when the
// file must come from disk. A file that fails it is refused with an error wrapping ErrCorrupt
// that says what was wrong; so is a bolt database without the "logs" and
// "conf" buckets when opened read-only (opened for writing, they are
// created, as raft-boltdb does).
//
// After opening, every call into bbolt runs with memory faults turned into
// panics (debug.SetPanicOnFault) and panics turned into errors wrapping
// ErrCorrupt; after the first one the store refuses further work, since
// bbolt's state may be inconsistent, and must be reopened (Close then waits
// for bbolt a few seconds at most, in case it stopped holding a lock). A log entry
// whose bytes do not decode is an ordinary error from GetLog naming its
// index.
//
// What can still stop the process:
//
//   - a cycle in the tree written by another program after New checked the
//     file (the check runs at open only); other changes made after open
//     end in a fault or panic, which is recovered as above;
//   - damage the check does not look for that makes bbolt loop or allocate
//     without bound instead of panicking; we know of none (keys out of
//     order on a page, which it does not check, make bbolt miss entries);
//   - with BoltOptions.NoFreelistSync, bbolt rebuilds its freelist at open
//     on a goroutine of its own, where a panic cannot be recovered; the
//     check runs first and rules out the damage known to cause one;
//   - running out of memory, which no Go program survives;
//   - on systems where bbolt does not use flock (Windows, Solaris, AIX,
//     Plan 9, Android), the check takes no lock and may read a file that
//     another process is changing: it can then report damage that is not
//     there, but not miss damage that is.
package raftboltdb
