package interop

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	hraft "github.com/hashicorp/raft"
	qraft "github.com/quorumkit/raft"
)

// The state machine every node of the harness runs, of either library, and
// the sink that keeps the nodes' last log lines.

// --- The state machine. ---

// mixedEntry is one command as an FSM applied it.
type mixedEntry struct {
	Index, Term uint64
	Data        string
}

// mixedResult is what the FSM answers for a command: the index it saw and
// the command's 1-based position in this FSM's sequence. The leader's
// answer reaches the client through ApplyFuture.Response, so a client
// learns where its command sits in every node's sequence.
type mixedResult struct {
	Index uint64
	Seq   int
}

// mixedFSM records every command it applies, in order. Each incarnation of
// a node gets a fresh one, as a restarted process would; the library fills
// it from the node's newest snapshot and replays the log after it.
//
// Its snapshot is the whole sequence, so a node that restores one holds
// the same history as a node that applied every entry, and the tests
// compare complete histories whatever each node restored. Both libraries'
// nodes share this FSM and its snapshot format (mixedSnapshotMagic), so a
// node of either library restores what a node of the other wrote: an
// InstallSnapshot carries these bytes unchanged from the leader's snapshot
// store into the follower's and then into its FSM.
type mixedFSM struct {
	mu       sync.Mutex // Apply, Snapshot and Restore run on the node's FSM goroutine; tests read concurrently
	entries  []mixedEntry
	restores []mixedRestore
	problems []string
}

// mixedRestore records one Restore: how many commands the restored state
// held and the index of the last one.
type mixedRestore struct {
	Commands  int
	LastIndex uint64
}

func (f *mixedFSM) record(index, term uint64, data []byte) interface{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.entries); n > 0 && index <= f.entries[n-1].Index {
		f.problems = append(f.problems, fmt.Sprintf("index %d applied after index %d", index, f.entries[n-1].Index))
	}
	f.entries = append(f.entries, mixedEntry{Index: index, Term: term, Data: string(data)})
	return mixedResult{Index: index, Seq: len(f.entries)}
}

// snapshot captures the sequence so far. The entries are never changed in
// place (record appends, restore replaces the slice), so the clipped slice
// stays as it is while Persist writes it and later applies go on.
func (f *mixedFSM) snapshot() mixedSnapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return mixedSnapshot{entries: slices.Clip(f.entries)}
}

// restore replaces the sequence with a snapshot's. What the FSM held
// before must be a prefix of it: a snapshot only ever moves a node forward
// along the one committed history, so anything else is a lost or
// rewritten command, which the tests report.
func (f *mixedFSM) restore(rc io.ReadCloser) error {
	defer rc.Close()
	entries, err := mixedDecodeSnapshot(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r := mixedRestore{Commands: len(entries)}
	if len(entries) > 0 {
		r.LastIndex = entries[len(entries)-1].Index
	}
	if len(entries) < len(f.entries) {
		f.problems = append(f.problems, fmt.Sprintf("restored a snapshot of %d commands (last index %d) over %d applied ones (last index %d)",
			len(entries), r.LastIndex, len(f.entries), f.entries[len(f.entries)-1].Index))
	} else {
		for i, e := range f.entries {
			if entries[i] != e {
				f.problems = append(f.problems, fmt.Sprintf("restored a snapshot whose command %d is %+v, but %+v was applied", i+1, entries[i], e))
				break
			}
		}
	}
	f.entries = entries
	f.restores = append(f.restores, r)
	return nil
}

// sequence returns a copy of what was applied so far.
func (f *mixedFSM) sequence() []mixedEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]mixedEntry(nil), f.entries...)
}

// lastIndex returns the index of the last command applied, 0 if none.
func (f *mixedFSM) lastIndex() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.entries) == 0 {
		return 0
	}
	return f.entries[len(f.entries)-1].Index
}

// restoreLog returns every Restore of this incarnation, oldest first.
func (f *mixedFSM) restoreLog() []mixedRestore {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]mixedRestore(nil), f.restores...)
}

func (f *mixedFSM) orderProblems() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.problems...)
}

// mixedSnapshotMagic opens every mixed FSM snapshot. The rest is the
// number of commands, then each command's index, term and data length as
// uvarints followed by the data, and nothing after the last.
const mixedSnapshotMagic = "quorumkit-interop-mixed-fsm-v1\n"

// mixedSnapshot is a captured sequence.
type mixedSnapshot struct{ entries []mixedEntry }

func (s mixedSnapshot) persist(sink io.WriteCloser, cancel func() error) error {
	w := bufio.NewWriter(sink)
	w.WriteString(mixedSnapshotMagic)
	var buf [binary.MaxVarintLen64]byte
	putUvarint := func(v uint64) { w.Write(buf[:binary.PutUvarint(buf[:], v)]) }
	putUvarint(uint64(len(s.entries)))
	for _, e := range s.entries {
		putUvarint(e.Index)
		putUvarint(e.Term)
		putUvarint(uint64(len(e.Data)))
		w.WriteString(e.Data)
	}
	// bufio.Writer keeps the first write error and returns it here.
	if err := w.Flush(); err != nil {
		cancel()
		return fmt.Errorf("writing the snapshot: %w", err)
	}
	return sink.Close()
}

// mixedDecodeSnapshot reads a snapshot persist wrote, checking that it is
// whole and that its indexes increase.
func mixedDecodeSnapshot(rd io.Reader) ([]mixedEntry, error) {
	r := bufio.NewReader(rd)
	magic := make([]byte, len(mixedSnapshotMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != mixedSnapshotMagic {
		return nil, fmt.Errorf("not a mixed FSM snapshot: starts with %q (%v)", magic, err)
	}
	count, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, fmt.Errorf("reading the snapshot's command count: %w", err)
	}
	const maxCommands, maxData = 1 << 24, 1 << 20
	if count > maxCommands {
		return nil, fmt.Errorf("snapshot claims %d commands", count)
	}
	entries := make([]mixedEntry, 0, count)
	for i := uint64(0); i < count; i++ {
		var e mixedEntry
		var size uint64
		for _, v := range []*uint64{&e.Index, &e.Term, &size} {
			if *v, err = binary.ReadUvarint(r); err != nil {
				return nil, fmt.Errorf("reading command %d of %d: %w", i+1, count, err)
			}
		}
		if size > maxData {
			return nil, fmt.Errorf("command %d of the snapshot claims %d bytes", i+1, size)
		}
		data := make([]byte, size)
		if _, err := io.ReadFull(r, data); err != nil {
			return nil, fmt.Errorf("reading command %d of %d: %w", i+1, count, err)
		}
		e.Data = string(data)
		if n := len(entries); n > 0 && e.Index <= entries[n-1].Index {
			return nil, fmt.Errorf("snapshot holds index %d after index %d", e.Index, entries[n-1].Index)
		}
		entries = append(entries, e)
	}
	if n, _ := r.Read(make([]byte, 1)); n > 0 {
		return nil, errors.New("snapshot holds bytes after its last command")
	}
	return entries, nil
}

type mixedOurFSM struct{ *mixedFSM }

func (f mixedOurFSM) Apply(l *qraft.Log) interface{} { return f.record(l.Index, l.Term, l.Data) }
func (f mixedOurFSM) Snapshot() (qraft.FSMSnapshot, error) {
	return mixedOurSnapshot{f.snapshot()}, nil
}
func (f mixedOurFSM) Restore(rc io.ReadCloser) error { return f.restore(rc) }

type mixedOurSnapshot struct{ mixedSnapshot }

func (s mixedOurSnapshot) Persist(sink qraft.SnapshotSink) error { return s.persist(sink, sink.Cancel) }
func (s mixedOurSnapshot) Release()                              {}

type mixedRefFSM struct{ *mixedFSM }

func (f mixedRefFSM) Apply(l *hraft.Log) interface{} { return f.record(l.Index, l.Term, l.Data) }
func (f mixedRefFSM) Snapshot() (hraft.FSMSnapshot, error) {
	return mixedRefSnapshot{f.snapshot()}, nil
}
func (f mixedRefFSM) Restore(rc io.ReadCloser) error { return f.restore(rc) }

type mixedRefSnapshot struct{ mixedSnapshot }

func (s mixedRefSnapshot) Persist(sink hraft.SnapshotSink) error { return s.persist(sink, sink.Cancel) }
func (s mixedRefSnapshot) Release()                              {}

// --- Logs. ---

// mixedLogSink keeps the last lines the nodes logged, to show them when a
// test fails, and counts the lines that its counters match. It never
// writes to the test itself, so goroutines that log after a test has ended
// are harmless.
type mixedLogSink struct {
	mu       sync.Mutex
	lines    []string
	next     int
	full     bool
	counters []*mixedLogCounter
}

// mixedLogCounter counts the lines logged since it was made that its
// match accepts.
type mixedLogCounter struct {
	match func(line string) bool
	n     atomic.Int64
}

const mixedLogLines = 3000

func (s *mixedLogSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lines == nil {
		s.lines = make([]string, mixedLogLines)
	}
	line := strings.TrimRight(string(p), "\n")
	s.lines[s.next] = line
	s.next++
	if s.next == len(s.lines) {
		s.next, s.full = 0, true
	}
	for _, c := range s.counters {
		if c.match(line) {
			c.n.Add(1)
		}
	}
	return len(p), nil
}

// counter starts counting the lines that match accepts.
func (s *mixedLogSink) counter(match func(line string) bool) *mixedLogCounter {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &mixedLogCounter{match: match}
	s.counters = append(s.counters, c)
	return c
}

// String returns the kept lines, oldest first.
func (s *mixedLogSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var kept []string
	if s.full {
		kept = append(kept, s.lines[s.next:]...)
	}
	kept = append(kept, s.lines[:s.next]...)
	return strings.Join(kept, "\n")
}
