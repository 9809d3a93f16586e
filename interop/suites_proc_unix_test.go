//go:build unix

package interop

import (
	"os/exec"
	"syscall"
	"time"
)

// suiteOwnProcessGroup starts cmd in a process group of its own and, when
// its context ends, kills the whole group: go test's test binaries are
// children of the go command and would outlive it otherwise.
func suiteOwnProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
}
