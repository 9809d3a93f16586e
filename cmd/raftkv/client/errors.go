package client

import (
	"errors"
	"fmt"
	"net/http"
)

// The errors callers branch on; test with errors.Is. ErrUnknownOutcome can
// come with another: a write whose first attempt may have been applied and
// whose retry was refused wraps both.
var (
	// ErrUnknownOutcome marks a write (Put, Delete, CAS, AddMember,
	// RemoveMember) that may or may not have been applied: a request reached
	// a node that then failed, lost its leadership or stopped answering
	// before saying how the write ended. The write may still be applied
	// later. A write whose error does not wrap ErrUnknownOutcome was
	// certainly not applied.
	ErrUnknownOutcome = errors.New("the write may or may not have been applied")

	// ErrNotFound is returned by Get for a key the cluster does not hold.
	ErrNotFound = errors.New("key not found")

	// ErrCASMismatch is returned by CAS when the key's current value is
	// not the expected one; the write was not applied.
	ErrCASMismatch = errors.New("the current value differs from the expected one")

	// ErrUnauthorized is returned when a node refuses the request for want
	// of credentials: a membership change without the shared secret or a
	// client certificate (HTTP 401 or 403).
	ErrUnauthorized = errors.New("not authorised")
)

// APIError is an answer of a node that refused a request for good (a 4xx,
// or a 5xx other than the transient ones the client retries). It matches
// ErrCASMismatch (412) and ErrUnauthorized (401, 403) with errors.Is; Get
// turns a 404 into ErrNotFound itself, since other routes answer 404 too.
type APIError struct {
	// Node is the base URL of the node that answered.
	Node string
	// Status is the HTTP status code.
	Status int
	// Message is the "error" field of the node's JSON answer, or the
	// answer's text when it is not JSON.
	Message string
}

// Error describes the refusal.
func (e *APIError) Error() string {
	return fmt.Sprintf("%s answered %d %s: %s", e.Node, e.Status, http.StatusText(e.Status), e.Message)
}

// Is reports whether the refusal is the one target names.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrCASMismatch:
		return e.Status == http.StatusPreconditionFailed
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
	}
	return false
}
