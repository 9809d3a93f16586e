package raftboltdb

import "errors"

var (
	// ErrKeyNotFound is returned by Get and GetUint64 for a key that was
	// never set. Its text is exactly "not found", the text raft (ours and
	// HashiCorp's) recognises as "absent" rather than as a failure, so it is
	// always returned as it is, never wrapped.
	ErrKeyNotFound = errors.New("not found")

	// ErrCorrupt is wrapped by the errors that report a file this package
	// cannot use safely: damaged (truncated, a page out of range, a cycle in
	// the tree, an undecodable log entry) or of the wrong kind (not a bolt
	// database, or one without the raft buckets). The message says what was
	// found and where. Such errors are not transient: retrying will not help,
	// the file must be repaired or replaced (for a raft node, usually by
	// removing its data and letting it catch up from the leader).
	ErrCorrupt = errors.New("corrupt or not a raft log store")
)
