package main

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/quorumkit/raft"
)

// readTimeout bounds the wait for raft to take a read or a write.
const (
	readTimeout  = 5 * time.Second
	applyTimeout = 5 * time.Second
)

// pathKey returns the {key} of the request, or answers 400 and returns
// false when it is empty, too long or not UTF-8.
func pathKey(w http.ResponseWriter, r *http.Request) (string, bool) {
	key := r.PathValue("key")
	switch {
	case key == "":
		writeError(w, http.StatusBadRequest, "empty key")
	case len(key) > maxKeyBytes:
		writeError(w, http.StatusBadRequest, "key longer than 1024 bytes")
	case !utf8.ValidString(key):
		writeError(w, http.StatusBadRequest, "key is not UTF-8")
	default:
		return key, true
	}
	return "", false
}

// writableKey is pathKey for writes, which may not touch the keys the
// cluster keeps its members' HTTP addresses under.
func writableKey(w http.ResponseWriter, r *http.Request) (string, bool) {
	key, ok := pathKey(w, r)
	if ok && strings.HasPrefix(key, httpKeyPrefix) {
		writeError(w, http.StatusBadRequest, "keys under "+httpKeyPrefix+" are kept by the cluster")
		return "", false
	}
	return key, ok
}

// consistency is the read mode a request asks for: ?consistency=
// linearizable (the default), lease or stale; ?stale=true is stale.
func consistency(r *http.Request) (string, bool) {
	q := r.URL.Query()
	switch c := q.Get("consistency"); c {
	case "linearizable", "lease", "stale":
		return c, true
	case "":
	default:
		return "", false
	}
	switch q.Get("stale") {
	case "true":
		return "stale", true
	case "", "false":
		return "linearizable", true
	}
	return "", false
}

// handleGet reads a key. A linearizable read confirms through ReadIndex
// that this node's copy holds every write that completed before the
// request; a node that cannot do that itself sends the client to the
// leader. A stale read answers from this node's copy, which may lag.
func (s *server) handleGet(w http.ResponseWriter, r *http.Request) {
	key, ok := pathKey(w, r)
	if !ok {
		return
	}
	mode, ok := consistency(r)
	if !ok {
		writeError(w, http.StatusBadRequest, "consistency must be linearizable, lease or stale")
		return
	}
	if mode != "stale" {
		// A lease read answers from the leader's lease with no round trip
		// when it holds one, and takes the ReadIndex path otherwise; on a
		// follower both ask the leader for a read index (follower reads).
		read := s.raft.ReadIndex
		if mode == "lease" {
			read = s.raft.ReadLease
		}
		if err := read(readTimeout).Error(); err != nil {
			if errors.Is(err, raft.ErrNotLeader) {
				s.sendToLeader(w, r)
				return
			}
			s.writeRaftError(w, err)
			return
		}
	}
	v, found := s.kv.get(key)
	if !found {
		writeError(w, http.StatusNotFound, "key not found")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	io.WriteString(w, v)
}

// handlePut writes the body as the key's value. With an If-Match header
// it is a compare-and-set, decided by the FSM in log order: 412 when the
// key's value is not the expected one (If-Match: "" expects no value).
func (s *server) handlePut(w http.ResponseWriter, r *http.Request) {
	key, ok := writableKey(w, r)
	if !ok {
		return
	}
	if r.ContentLength > maxValueBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "value larger than 1 MiB")
		return
	}
	c := command{Op: "put", Key: key}
	if m, ok := r.Header["If-Match"]; ok {
		if len(m) != 1 {
			writeError(w, http.StatusBadRequest, "more than one If-Match header")
			return
		}
		expected := m[0]
		if expected == `""` {
			expected = ""
		}
		c.Op = "cas"
		c = c.withExpected(expected)
	}
	if !s.leads() {
		s.sendToLeader(w, r)
		return
	}
	value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxValueBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "value larger than 1 MiB")
			return
		}
		writeError(w, http.StatusBadRequest, "reading the value: "+err.Error())
		return
	}
	s.applyAndAnswer(w, c.withValue(string(value)))
}

// handleDelete removes a key; an absent key is fine.
func (s *server) handleDelete(w http.ResponseWriter, r *http.Request) {
	key, ok := writableKey(w, r)
	if !ok {
		return
	}
	if !s.leads() {
		s.sendToLeader(w, r)
		return
	}
	s.applyAndAnswer(w, command{Op: "delete", Key: key})
}

// handleEmptyKey answers requests for /kv/ with no key.
func handleEmptyKey(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusBadRequest, "empty key")
}

// applyAndAnswer applies c and answers 204, 412 for a failed
// compare-and-set, or the raft error.
func (s *server) applyAndAnswer(w http.ResponseWriter, c command) {
	err := s.apply(c)
	var mismatch casMismatch
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.As(err, &mismatch):
		writeError(w, http.StatusPreconditionFailed, mismatch.Error())
	default:
		s.writeRaftError(w, err)
	}
}

// writeRaftError answers a failure of raft: 503 for the transient ones
// (the node lost or never had leadership, timed out, is shutting down),
// after which a write may or may not have been applied; 500 otherwise.
func (s *server) writeRaftError(w http.ResponseWriter, err error) {
	for _, transient := range []error{raft.ErrNotLeader, raft.ErrLeadershipLost, raft.ErrEnqueueTimeout,
		raft.ErrRaftShutdown, raft.ErrLeadershipTransferInProgress, raft.ErrAbortedByRestore} {
		if errors.Is(err, transient) {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
	}
	writeError(w, http.StatusInternalServerError, err.Error())
}
