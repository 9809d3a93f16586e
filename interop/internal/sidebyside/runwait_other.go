//go:build !linux

package sidebyside

import "time"

// processRunWait is unavailable on this platform.
func processRunWait() (time.Duration, bool) { return 0, false }
