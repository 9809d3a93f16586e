package wal

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/quorumkit/raft"
)

// pattern is where test entries take their bytes from.
var pattern = func() []byte {
	b := make([]byte, 64<<10)
	for i := range b {
		b[i] = byte(i*31 + i>>9)
	}
	return b
}()

// testLog is the entry a test stores at index in term: a pure function of
// both, so that any reader can check what it finds, and so that an entry
// rewritten after a tail truncation (in a later term) differs.
func testLog(index, term uint64) *raft.Log {
	size := int((index*7919 + term*104729) % 700)
	switch {
	case index%53 == 0:
		size = 5000
	case index%5 == 0:
		// Spans whole sectors that hold no frame header: a torn write
		// can garble them and leave every header intact.
		size = 1200 + int(index*31%2000)
	}
	off := int((index + term*13) % 8192)
	l := &raft.Log{
		Index:      index,
		Term:       term,
		Type:       raft.LogType(index % 6),
		Data:       pattern[off : off+size],
		AppendedAt: time.Unix(1_700_000_000+int64(index), int64(term)).UTC(),
	}
	if index%3 == 0 {
		l.Extensions = pattern[off+size : off+size+int(index%40)+1]
	}
	if index%7 == 0 {
		l.Data = nil
	}
	return l
}

func sameLog(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Extensions, b.Extensions) &&
		a.AppendedAt.Equal(b.AppendedAt)
}

func batch(from, to, term uint64) []*raft.Log {
	var logs []*raft.Log
	for i := from; i <= to; i++ {
		logs = append(logs, testLog(i, term))
	}
	return logs
}

// checkLog checks that s holds exactly first..last, each entry in the term
// termOf gives it, and nothing either side.
func checkLog(t testing.TB, s raft.LogStore, first, last uint64, termOf func(uint64) uint64) {
	t.Helper()
	if err := verifyLog(s, first, last, termOf); err != nil {
		t.Fatal(err)
	}
}

func verifyLog(s raft.LogStore, first, last uint64, termOf func(uint64) uint64) error {
	gotFirst, err := s.FirstIndex()
	if err != nil {
		return err
	}
	gotLast, err := s.LastIndex()
	if err != nil {
		return err
	}
	if gotFirst != first || gotLast != last {
		return fmt.Errorf("log is %d..%d, want %d..%d", gotFirst, gotLast, first, last)
	}
	var l raft.Log
	for i := first; i <= last && last > 0; i++ {
		if err := s.GetLog(i, &l); err != nil {
			return fmt.Errorf("GetLog(%d): %w", i, err)
		}
		if want := testLog(i, termOf(i)); !sameLog(&l, want) {
			return fmt.Errorf("GetLog(%d) = %+v, want %+v", i, l, *want)
		}
	}
	for _, i := range []uint64{first - 1, last + 1, last + 100} {
		if i == 0 || first == 0 && i <= last+100 && last == 0 && i != last+1 {
			continue
		}
		if err := s.GetLog(i, &l); !errors.Is(err, raft.ErrLogNotFound) {
			return fmt.Errorf("GetLog(%d) outside %d..%d: %v, want ErrLogNotFound", i, first, last, err)
		}
	}
	return nil
}
