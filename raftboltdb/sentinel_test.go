package raftboltdb

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// bufferLogger logs into buf.
func bufferLogger(buf *bytes.Buffer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: buf, Level: hclog.Debug})
}

// bbolt refuses an empty key with its ErrKeyRequired, which comes back as
// the value itself (raft-boltdb passes it through), the context logged.
func TestSentinel_EmptyKeyIsBboltErrKeyRequired(t *testing.T) {
	var logged bytes.Buffer
	s := openStoreAt(t, filepath.Join(t.TempDir(), "raft.db"), Options{Logger: bufferLogger(&logged)})
	if err := s.Set(nil, []byte("v")); err != bbolt.ErrKeyRequired {
		t.Fatalf("Set with an empty key = %v; want bbolt.ErrKeyRequired itself", err)
	}
	if !strings.Contains(logged.String(), "raftboltdb: set") {
		t.Fatalf("log %q does not say which operation failed", logged.String())
	}
}

// An error that says the file is damaged keeps its wrapping even when a
// bbolt sentinel is in its chain; other chains give the sentinel back.
func TestSentinel_Unwrapping(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want error
	}{
		{fmt.Errorf("open: %w", berrors.ErrTimeout), bbolt.ErrTimeout},
		{fmt.Errorf("a: %w", fmt.Errorf("b: %w", berrors.ErrDatabaseReadOnly)), bbolt.ErrDatabaseReadOnly},
		{fmt.Errorf("check: %w (%w)", berrors.ErrChecksum, ErrCorrupt), nil},
		{fmt.Errorf("other"), nil},
		{nil, nil},
	} {
		if got := bboltSentinel(tc.err); got != tc.want {
			t.Errorf("bboltSentinel(%v) = %v; want %v", tc.err, got, tc.want)
		}
	}
	wrapped := fmt.Errorf("raftboltdb: x: %w", ErrCorrupt)
	if got := withContext(hclog.NewNullLogger(), wrapped, wrapped); got != wrapped {
		t.Errorf("withContext changed an ErrCorrupt error into %v", got)
	}
}
