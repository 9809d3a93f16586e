package sidebyside

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// processRunWait is how long this process's threads have been runnable
// but waiting for a CPU, summed over the threads alive now (the second
// field of each thread's /proc schedstat), false where it cannot be read.
// Over a window, this time per second beside the CPU time per second says
// whether the process was starved of CPU: threads that wait in the run
// queue as long as they run would run more on more CPU.
func processRunWait() (time.Duration, bool) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0, false
	}
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/schedstat")
		if err != nil {
			continue // the thread exited meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			return 0, false
		}
		ns, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return 0, false
		}
		total += time.Duration(ns)
	}
	return total, true
}
