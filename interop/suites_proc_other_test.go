//go:build !unix

package interop

import (
	"os/exec"
	"time"
)

// suiteOwnProcessGroup bounds how long cmd's output is waited for once its
// context ends; only the go command itself is killed here.
func suiteOwnProcessGroup(cmd *exec.Cmd) {
	cmd.WaitDelay = 10 * time.Second
}
