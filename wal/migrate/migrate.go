// Package migrate copies a raft log and its stable values from one store
// into another: typically from a raftboltdb.BoltStore into a new wal.WAL,
// once, while neither is in use by a running raft node.
//
//	src, _ := raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
//	dst, _ := wal.Open(walDir)
//	err := migrate.CopyLogs(ctx, dst, src, 1<<20, nil)
//	if err == nil {
//		err = migrate.CopyStable(ctx, dst, src, nil, nil, nil)
//	}
package migrate

import (
	"context"
	"fmt"
	"time"

	"github.com/quorumkit/raft"
)

// CopyLogs copies every entry of src into dst, which should be empty,
// appending in batches of about batchBytes bytes of entry data. If
// progress is not nil it receives a line of text now and then (each is
// dropped if not received within a millisecond) and is closed when
// CopyLogs returns. It stops with ctx's error if ctx ends first.
func CopyLogs(ctx context.Context, dst, src raft.LogStore, batchBytes int, progress chan<- string) error {
	report := reporter(progress)
	defer closeProgress(progress)
	start := time.Now()
	first, err := src.FirstIndex()
	if err != nil {
		return fmt.Errorf("failed getting first index: %w", err)
	}
	last, err := src.LastIndex()
	if err != nil {
		return fmt.Errorf("failed getting last index: %w", err)
	}
	if last == 0 {
		report("source log is empty: nothing to copy")
		return nil
	}
	total := last - first + 1
	report("starting to copy %d log entries with indexes [%d, %d]", total, first, last)
	var (
		pending      []*raft.Log
		pendingBytes int
		batches      int
		copiedBytes  int
	)
	flush := func(upTo uint64) error {
		if len(pending) == 0 {
			return nil
		}
		batches++
		if err := dst.StoreLogs(pending); err != nil {
			return fmt.Errorf("failed writing batch %d (%d entries ending at %d): %w", batches, len(pending), upTo, err)
		}
		copiedBytes += pendingBytes
		report("  -> wrote batch %d: %d entries ending at %d (%.0f%% complete)",
			batches, len(pending), upTo, 100*float64(upTo-first+1)/float64(total))
		pending, pendingBytes = pending[:0], 0
		return nil
	}
	for idx := first; idx <= last; idx++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		l := new(raft.Log)
		if err := src.GetLog(idx, l); err != nil {
			return fmt.Errorf("failed copying log %d (%d/%d): %w", idx, idx-first+1, total, err)
		}
		pending = append(pending, l)
		// Count a little for each entry's fixed fields too.
		pendingBytes += len(l.Data) + len(l.Extensions) + 32
		if pendingBytes >= batchBytes {
			if err := flush(idx); err != nil {
				return err
			}
		}
	}
	if err := flush(last); err != nil {
		return err
	}
	report("DONE: took %s to copy %d entries (%d bytes)", time.Since(start), total, copiedBytes)
	return nil
}

// CopyStable copies the stable values raft writes (CurrentTerm and
// LastVoteTerm with SetUint64, LastVoteCand with Set), plus extraKeys
// (copied with Get and Set) and extraIntKeys (with GetUint64 and
// SetUint64): a StableStore cannot list its keys. A key missing from src
// (an error reading "not found", or an empty value) is skipped, so a
// store raft never voted in copies cleanly. progress works as in
// CopyLogs.
func CopyStable(ctx context.Context, dst, src raft.StableStore, extraKeys, extraIntKeys [][]byte, progress chan<- string) error {
	report := reporter(progress)
	defer closeProgress(progress)
	start := time.Now()
	intKeys := append([][]byte{[]byte("CurrentTerm"), []byte("LastVoteTerm")}, extraIntKeys...)
	keys := append([][]byte{[]byte("LastVoteCand")}, extraKeys...)
	report("copying %d int, %d regular KVs", len(intKeys), len(keys))
	for _, k := range intKeys {
		if err := ctx.Err(); err != nil {
			return err
		}
		v, err := src.GetUint64(k)
		if isNotFound(err) {
			report("  skipped int %s: not set", k)
			continue
		}
		if err != nil {
			return fmt.Errorf("failed to read int key %s: %w", k, err)
		}
		if err := dst.SetUint64(k, v); err != nil {
			return fmt.Errorf("failed to set int key %s => %d: %w", k, v, err)
		}
		report("  copied int %s => %d", k, v)
	}
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		v, err := src.Get(k)
		if isNotFound(err) || err == nil && len(v) == 0 {
			report("  skipped %s: not set", k)
			continue
		}
		if err != nil {
			return fmt.Errorf("failed to read key %s: %w", k, err)
		}
		if err := dst.Set(k, v); err != nil {
			return fmt.Errorf("failed to set key %s => %s: %w", k, v, err)
		}
		report("  copied %s => %q", k, v)
	}
	report("DONE: took %s to copy %d KVs", time.Since(start), len(intKeys)+len(keys))
	return nil
}

// isNotFound reports a StableStore's answer for a missing key: raft itself
// treats an error reading exactly "not found" that way.
func isNotFound(err error) bool { return err != nil && err.Error() == "not found" }

func reporter(progress chan<- string) func(string, ...any) {
	return func(format string, args ...any) {
		if progress == nil {
			return
		}
		t := time.NewTimer(time.Millisecond)
		defer t.Stop()
		select {
		case progress <- fmt.Sprintf(format, args...):
		case <-t.C:
		}
	}
}

func closeProgress(progress chan<- string) {
	if progress != nil {
		close(progress)
	}
}
