package wal

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quorumkit/raft/internal/storetest"
)

var killDuration = flag.Duration("wal.kill-duration", 2*time.Second,
	"how long TestKillRecovery keeps killing and restarting its writer (at least 5 rounds run)")

// childWriter is the process TestKillRecovery kills. It continues the WAL
// in dir, says "ready", and then, until killed, appends batches, truncates
// the head and the tail now and then, and sets CurrentTerm. Before each
// operation it records a "begin" line in the file logPath, and after it
// returns nil an "ack" line, so the parent knows what was acknowledged.
// It exits when its standard input closes (the parent is gone).
func childWriter(dir, seed, termStr, logPath string) error {
	rng, err := storetest.WriterRand(seed)
	if err != nil {
		return err
	}
	term, err := strconv.ParseUint(termStr, 10, 64)
	if err != nil {
		return err
	}
	w, err := Open(dir, WithSegmentSize(64<<10), WithLogger(quietLogger()))
	if err != nil {
		return err
	}
	curTerm, err := w.GetUint64([]byte("CurrentTerm"))
	if err != nil {
		return err
	}
	say, err := storetest.StartWriting(logPath)
	if err != nil {
		return err
	}
	for {
		first, _ := w.FirstIndex()
		last, _ := w.LastIndex()
		switch op := rng.IntN(40); {
		case op == 0 && last > first+300:
			hi := last - 200 - uint64(rng.IntN(100))
			if err = say("head %d", hi+1); err == nil {
				if err = w.DeleteRange(first, hi); err == nil {
					err = say("ack")
				}
			}
		case op == 1 && last > first+10:
			lo := last - uint64(rng.IntN(10))
			term++
			if err = say("tail %d %d", lo-1, term); err == nil {
				if err = w.DeleteRange(lo, last); err == nil {
					err = say("ack")
				}
			}
		case op == 2:
			curTerm++
			if err = say("set %d", curTerm); err == nil {
				if err = w.SetUint64([]byte("CurrentTerm"), curTerm); err == nil {
					err = say("ack")
				}
			}
		default:
			from := last + 1
			if last == 0 {
				from = 1
			}
			to := from + uint64(rng.IntN(64))
			if err = say("append %d %d %d", from, to, term); err == nil {
				if err = w.StoreLogs(batch(from, to, term)); err == nil {
					err = say("ack")
				}
			}
		}
		if err != nil {
			return err
		}
	}
}

// TestKillRecovery kills a writing process with SIGKILL at random moments
// and checks, after each kill, that the WAL opens and holds every
// acknowledged operation whole and the one in flight whole or not at all.
// A killed process's writes still reach the disk through the page cache,
// so this checks atomicity and recovery, not durability across a power
// loss (TestCrashSimulated covers that). Run it longer with
//
//	go test ./wal -run TestKillRecovery -wal.kill-duration=5m
func TestKillRecovery(t *testing.T) {
	dir := t.TempDir()
	walDir, logPath := filepath.Join(dir, "wal"), filepath.Join(dir, "writer.log")
	if err := os.Mkdir(walDir, 0o755); err != nil {
		t.Fatal(err)
	}
	acked := simLog{terms: map[uint64]uint64{}}
	term := uint64(1)
	var landed, lost int
	rounds := storetest.RunKillRounds(t, storetest.KillRounds{
		Duration: *killDuration,
		MaxDelay: 60 * time.Millisecond,
		LogPath:  logPath,
		Env: func(rng *rand.Rand) []string {
			return []string{childEnv + "=writer", childDirEnv + "=" + walDir, childLogEnv + "=" + logPath,
				childSeedEnv + "=" + strconv.FormatUint(rng.Uint64(), 10), childTermEnv + "=" + strconv.FormatUint(term, 10)}
		},
		Check: func(round int, lines []string) {
			var pending *simLog
			for _, line := range lines {
				next := acked.clone()
				var a, b, c uint64
				switch verb, _, _ := strings.Cut(line, " "); verb {
				case "append":
					fmt.Sscanf(line, "append %d %d %d", &a, &b, &c)
					next.store(a, b, c)
				case "head":
					fmt.Sscanf(line, "head %d", &a)
					next.deleteHead(a)
				case "tail":
					fmt.Sscanf(line, "tail %d %d", &a, &c)
					next.deleteTail(a)
					term = max(term, c)
				case "set":
					fmt.Sscanf(line, "set %d", &a)
					next.curTerm = a
				case "ack":
					acked, pending = *pending, nil
					continue
				default:
					t.Fatalf("round %d: unexpected line %q", round, line)
				}
				pending = &next
			}
			w, err := Open(walDir, WithSegmentSize(64<<10), WithLogger(quietLogger()))
			if err != nil {
				t.Fatalf("round %d: reopening after the kill: %v", round, err)
			}
			switch {
			case acked.check(w) == nil:
				if pending != nil {
					lost++
				}
			case pending != nil && pending.check(w) == nil:
				landed++
				acked = *pending
			default:
				t.Fatalf("round %d: after the kill: %v", round, acked.check(w))
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			term++
		},
	})
	t.Logf("%d kills: the operation in flight was found whole %d times, absent %d times; log now %d..%d",
		rounds, landed, lost, acked.first, acked.last)
}
