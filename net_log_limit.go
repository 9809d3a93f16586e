package raft

import (
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// limitedLogInterval is how often one kind of refused-connection message
// may be logged. A flood of bad connections then costs one line per kind
// per interval, with a count of the lines left out.
const limitedLogInterval = 10 * time.Second

// limitedLogger logs at most one line per kind of event per interval. The
// line after a quiet spell says how many were suppressed before it.
type limitedLogger struct {
	logger hclog.Logger
	every  time.Duration

	// mu guards kinds: connection goroutines log concurrently.
	mu    sync.Mutex
	kinds map[string]*limitedKind
}

type limitedKind struct {
	last       time.Time
	suppressed int
}

func newLimitedLogger(logger hclog.Logger, every time.Duration) *limitedLogger {
	return &limitedLogger{logger: logger, every: every, kinds: make(map[string]*limitedKind)}
}

// log writes msg at level unless a line of the same kind was written less
// than the interval ago, in which case it only counts it.
func (l *limitedLogger) log(level hclog.Level, kind, msg string, args ...interface{}) {
	now := time.Now()
	l.mu.Lock()
	k := l.kinds[kind]
	if k == nil {
		k = &limitedKind{}
		l.kinds[kind] = k
	}
	if !k.last.IsZero() && now.Sub(k.last) < l.every {
		k.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := k.suppressed
	k.last, k.suppressed = now, 0
	l.mu.Unlock()

	if suppressed > 0 {
		args = append(args, "suppressed_since_last", suppressed)
	}
	l.logger.Log(level, msg, args...)
}
