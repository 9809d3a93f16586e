package raftboltdb

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quorumkit/raft"
	"github.com/quorumkit/raft/internal/storetest"
)

var crashDuration = flag.Duration("raftboltdb.crash-duration", 2*time.Second,
	"how long TestCrashRecovery keeps killing and restarting its writer (at least 5 rounds are run)")

// maxKillDelay bounds how long the crash writer runs before it is killed:
// long enough for dozens of fsynced batches.
const maxKillDelay = 60 * time.Millisecond

// crashPattern is where crash entries take their bytes from.
var crashPattern = func() []byte {
	b := make([]byte, 16<<10)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}()

// crashLog is the entry the crash writer stores at index: a pure function
// of the index, so that the parent can check every entry it finds, sized so
// that some entries span several pages, and cheap to make, so that the
// writer spends its time in StoreLogs, where the kills should land.
func crashLog(index uint64) *raft.Log {
	size := int(index*7919) % 1500
	if index%97 == 0 {
		size = 9000
	}
	off := int(index % 4096)
	return &raft.Log{
		Index:      index,
		Term:       index/100 + 1,
		Type:       raft.LogType(index % 6),
		Data:       crashPattern[off : off+size],
		Extensions: crashPattern[off+size : off+size+int(index%16)],
		AppendedAt: time.Unix(1_700_000_000+int64(index), 0).UTC(),
	}
}

// childCrashWriter is the process TestCrashRecovery kills. It continues
// the log in path, says "ready" on its standard output, and then, forever,
// stores batches, compacts the oldest entries and sets CurrentTerm. It
// records its progress in the file logPath, not on its standard output, so
// that the parent does not wake up each time it makes progress and the
// kills land at moments unrelated to it: a line before each operation
// ("begin", "delbegin", "setbegin") and one after it returned nil ("ack",
// "delack", "setack"). It exits if its standard input closes (the parent
// is gone).
func childCrashWriter(path, seed, logPath string) error {
	rng, err := storetest.WriterRand(seed)
	if err != nil {
		return err
	}
	s, err := New(Options{Path: path})
	if err != nil {
		return err
	}
	last, err := s.LastIndex()
	if err != nil {
		return err
	}
	term, err := s.GetUint64([]byte("CurrentTerm"))
	if err != nil && err != ErrKeyNotFound {
		return err
	}
	say, err := storetest.StartWriting(logPath)
	if err != nil {
		return err
	}
	for {
		var err error
		switch op := rng.IntN(16); {
		case op == 0:
			term++
			if err = say("setbegin %d", term); err == nil {
				if err = s.SetUint64([]byte("CurrentTerm"), term); err == nil {
					err = say("setack %d", term)
				}
			}
		case op == 1:
			first, err2 := s.FirstIndex()
			if err2 != nil || last-first < 300 {
				err = err2
				break
			}
			hi := last - 200 - uint64(rng.IntN(100))
			if err = say("delbegin %d %d", first, hi); err == nil {
				if err = s.DeleteRange(first, hi); err == nil {
					err = say("delack %d %d", first, hi)
				}
			}
		default:
			batch := make([]*raft.Log, 1+rng.IntN(64))
			for i := range batch {
				batch[i] = crashLog(last + 1 + uint64(i))
			}
			end := last + uint64(len(batch))
			if err = say("begin %d %d", last+1, end); err == nil {
				if err = s.StoreLogs(batch); err == nil {
					last = end
					err = say("ack %d", end)
				}
			}
		}
		if err != nil {
			return err
		}
	}
}

// crashState is what the parent knows the store must hold: the range of
// entries and CurrentTerm, plus the operation in flight when the writer
// was killed, whose effect may or may not be there.
type crashState struct {
	first, last uint64
	term        uint64

	pendingBatch [2]uint64 // begun, not acknowledged: first, last
	pendingDel   [2]uint64
	pendingTerm  uint64
}

// apply reads one line of the writer's output.
func (st *crashState) apply(line string) error {
	var a, b uint64
	switch verb, _, _ := strings.Cut(line, " "); verb {
	case "begin":
		fmt.Sscanf(line, "begin %d %d", &a, &b)
		st.pendingBatch = [2]uint64{a, b}
	case "ack":
		fmt.Sscanf(line, "ack %d", &a)
		if a != st.pendingBatch[1] {
			return fmt.Errorf("ack %d for batch %v", a, st.pendingBatch)
		}
		if st.first == 0 {
			st.first = st.pendingBatch[0]
		}
		st.last, st.pendingBatch = a, [2]uint64{}
	case "delbegin":
		fmt.Sscanf(line, "delbegin %d %d", &a, &b)
		st.pendingDel = [2]uint64{a, b}
	case "delack":
		st.first, st.pendingDel = st.pendingDel[1]+1, [2]uint64{}
	case "setbegin":
		fmt.Sscanf(line, "setbegin %d", &a)
		st.pendingTerm = a
	case "setack":
		st.term, st.pendingTerm = st.pendingTerm, 0
	default:
		return fmt.Errorf("unexpected line %q", line)
	}
	return nil
}

// TestCrashRecovery kills a writing process with SIGKILL at random moments
// and checks, after each kill, that the file opens (the checker accepts
// it) and holds every acknowledged write whole, at most the one write in
// flight beyond that, whole or not at all, and that FirstIndex and
// LastIndex agree with the entries found. Run it longer with
//
//	go test ./raftboltdb -run TestCrashRecovery -raftboltdb.crash-duration=5m
func TestCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	path, logPath := filepath.Join(dir, "raft.db"), filepath.Join(dir, "writer.log")
	var st crashState
	var batchLanded, batchLost, otherPending int
	rounds := storetest.RunKillRounds(t, storetest.KillRounds{
		Duration: *crashDuration,
		MaxDelay: maxKillDelay,
		LogPath:  logPath,
		Env: func(rng *rand.Rand) []string {
			return []string{childEnv + "=crash", childPathEnv + "=" + path,
				childSeedEnv + "=" + strconv.FormatUint(rng.Uint64(), 10), childLogEnv + "=" + logPath}
		},
		Check: func(round int, lines []string) {
			for _, line := range lines {
				if err := st.apply(line); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
			}
			if st.pendingBatch[1] != 0 {
				if got := st.verify(t, round, path); got {
					batchLanded++
				} else {
					batchLost++
				}
			} else {
				st.verify(t, round, path)
				otherPending++
			}
			st.pendingBatch, st.pendingDel, st.pendingTerm = [2]uint64{}, [2]uint64{}, 0
		},
	})
	t.Logf("%d kills: %d with a batch in flight (%d found whole, %d found absent), %d elsewhere; log now %d..%d, term %d",
		rounds, batchLanded+batchLost, batchLanded, batchLost, otherPending, st.first, st.last, st.term)
}

// verify opens the store after a kill and checks it against st, which it
// then updates to what was found. It reports whether the batch in flight
// was found.
func (st *crashState) verify(t *testing.T, round int, path string) (batchLanded bool) {
	t.Helper()
	s, err := New(Options{Path: path})
	if err != nil {
		t.Fatalf("round %d: reopening after the kill: %v", round, err)
	}
	defer s.Close()
	first, err := s.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	last, err := s.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	term, err := s.GetUint64([]byte("CurrentTerm"))
	if err != nil && err != ErrKeyNotFound {
		t.Fatal(err)
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("round %d: state %+v: %s", round, *st, fmt.Sprintf(format, args...))
	}
	switch {
	case last == st.last:
	case st.pendingBatch[1] != 0 && last == st.pendingBatch[1]:
		batchLanded = true
		if st.first == 0 {
			st.first = st.pendingBatch[0]
		}
	default:
		fail("LastIndex %d: neither the last acknowledged batch nor the one in flight", last)
	}
	switch {
	case first == st.first:
	case st.pendingDel[1] != 0 && first == st.pendingDel[1]+1:
	default:
		fail("FirstIndex %d: neither the acknowledged compaction nor the one in flight", first)
	}
	switch {
	case term == st.term:
	case st.pendingTerm != 0 && term == st.pendingTerm:
	default:
		fail("CurrentTerm %d", term)
	}
	// Every entry in first..last is there and whole; nothing either side.
	checkRange(t, s, first, last, crashLog)
	st.first, st.last, st.term = first, last, term
	return batchLanded
}
