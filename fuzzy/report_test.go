package fuzzy

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// eventLog records what a run did (faults beginning and ending, crashes,
// restarts, leaders), stamped with the fake time since the run began.
type eventLog struct {
	start time.Time

	mu     sync.Mutex
	events []string // guarded by mu
}

func newEventLog() *eventLog { return &eventLog{start: time.Now()} }

func (l *eventLog) add(format string, args ...any) {
	line := fmt.Sprintf("%10v  ", time.Since(l.start).Round(time.Microsecond)) + fmt.Sprintf(format, args...)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, line)
}

// tail returns the last n events.
func (l *eventLog) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	ev := l.events
	skipped := 0
	if len(ev) > n {
		skipped = len(ev) - n
		ev = ev[skipped:]
	}
	var b strings.Builder
	if skipped > 0 {
		fmt.Fprintf(&b, "  (%d earlier events)\n", skipped)
	}
	for _, e := range ev {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	return b.String()
}

// logRing keeps the last lines the nodes logged, to print with a failure.
// RAFT_FUZZY_LOG sets the level (default warn); RAFT_FUZZY_LOG_ALL=1
// also copies every line to stderr.
type logRing struct {
	mu    sync.Mutex
	lines []string // guarded by mu; a ring of cap(lines)
	next  int
	full  bool
	echo  io.Writer
	level hclog.Level
}

func newLogRing(size int) *logRing {
	r := &logRing{lines: make([]string, size), level: hclog.Warn}
	if l := os.Getenv("RAFT_FUZZY_LOG"); l != "" {
		r.level = hclog.LevelFromString(l)
	}
	if os.Getenv("RAFT_FUZZY_LOG_ALL") != "" {
		r.echo = os.Stderr
	}
	return r
}

func (r *logRing) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	r.mu.Lock()
	r.lines[r.next] = line
	r.next = (r.next + 1) % len(r.lines)
	if r.next == 0 {
		r.full = true
	}
	r.mu.Unlock()
	if r.echo != nil {
		fmt.Fprintln(r.echo, line)
	}
	return len(p), nil
}

// logger returns a node's logger, which writes to the ring.
func (r *logRing) logger(name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: r.level, Output: r, TimeFn: time.Now})
}

// tail returns the lines kept, oldest first.
func (r *logRing) tail() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	if r.full {
		out = append(out, r.lines[r.next:]...)
	}
	out = append(out, r.lines[:r.next]...)
	return "  " + strings.Join(out, "\n  ") + "\n"
}
