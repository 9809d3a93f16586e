//go:build windows || plan9 || solaris || aix || android

package raftboltdb

import (
	"os"
	"time"
)

// lockShared does nothing where bbolt does not use flock: there the
// checker may read a file another process is writing, and can then report
// damage that is not there. bbolt's own lock still keeps two stores from
// using the file at once.
func lockShared(*os.File, time.Duration) error { return nil }
