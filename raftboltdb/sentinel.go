package raftboltdb

import (
	"errors"

	"github.com/hashicorp/go-hclog"
	berrors "go.etcd.io/bbolt/errors"
)

// bboltSentinels are bbolt's exported error values. raft-boltdb hands them
// back as bbolt returned them, and callers compare with ==
// (err == bbolt.ErrTimeout, err == bbolt.ErrDatabaseReadOnly), so this
// package returns the value itself and logs the context it would otherwise
// have wrapped around it.
var bboltSentinels = []error{
	berrors.ErrDatabaseNotOpen,
	berrors.ErrInvalid,
	berrors.ErrInvalidMapping,
	berrors.ErrVersionMismatch,
	berrors.ErrChecksum,
	berrors.ErrTimeout,
	berrors.ErrTxNotWritable,
	berrors.ErrTxClosed,
	berrors.ErrDatabaseReadOnly,
	berrors.ErrFreePagesNotLoaded,
	berrors.ErrBucketNotFound,
	berrors.ErrBucketExists,
	berrors.ErrBucketNameRequired,
	berrors.ErrKeyRequired,
	berrors.ErrKeyTooLarge,
	berrors.ErrValueTooLarge,
	berrors.ErrMaxSizeReached,
	berrors.ErrIncompatibleValue,
	berrors.ErrSameBuckets,
	berrors.ErrDifferentDB,
}

// bboltSentinel returns the bbolt sentinel in err's chain, or nil. An error
// that wraps ErrCorrupt (this package's verdict on a damaged file) is kept
// whole: its wrapping is the information.
func bboltSentinel(err error) error {
	if err == nil || errors.Is(err, ErrCorrupt) {
		return nil
	}
	for _, s := range bboltSentinels {
		if errors.Is(err, s) {
			return s
		}
	}
	return nil
}

// withContext returns err as callers should see it: a bbolt sentinel in its
// chain comes back as the bare value, with wrapped (the error naming the
// operation and file) logged instead; anything else comes back as wrapped.
func withContext(logger hclog.Logger, err, wrapped error) error {
	if s := bboltSentinel(err); s != nil {
		logger.Error("bbolt refused the operation", "error", wrapped)
		return s
	}
	return wrapped
}

// storeLogger returns the logger given in Options, or one named
// "raftboltdb" on hclog's default output.
func storeLogger(given hclog.Logger) hclog.Logger {
	if given != nil {
		return given
	}
	return hclog.Default().Named("raftboltdb")
}
