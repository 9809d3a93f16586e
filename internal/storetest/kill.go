package storetest

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Child is this test binary re-executed in a child role.
type Child struct {
	Cmd   *exec.Cmd
	Stdin io.WriteCloser
	Lines *bufio.Scanner // its standard output, line by line
}

// StartChild starts this test binary, running no test, with env added to
// its environment (the package's TestMain picks the child's role from it)
// and its standard error going to stderr. The child is killed, if still
// running, when the test ends.
func StartChild(t testing.TB, stderr io.Writer, env ...string) *Child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return &Child{Cmd: cmd, Stdin: stdin, Lines: bufio.NewScanner(stdout)}
}

// KillRounds describes a run of RunKillRounds.
type KillRounds struct {
	// Duration is how long rounds go on once five have run; -short caps
	// it at 500ms.
	Duration time.Duration
	// MaxDelay bounds how long a writer runs before it is killed.
	MaxDelay time.Duration
	// LogPath is the file in which the writer records its progress, one
	// line per step.
	LogPath string
	// Env returns the environment that makes the child a writer, drawing
	// its seed from rng.
	Env func(rng *rand.Rand) []string
	// Check is given the lines the killed writer recorded (none empty) and
	// checks the store against them.
	Check func(round int, lines []string)
}

// RunKillRounds runs the rounds of a kill test and returns their number.
// Each round starts a writer (StartChild with k.Env), waits for it to say
// "ready", kills it with SIGKILL at a random moment within k.MaxDelay and
// hands k.Check what it recorded. The seed of the random source is logged.
func RunKillRounds(t *testing.T, k KillRounds) int {
	t.Helper()
	duration := k.Duration
	if testing.Short() {
		duration = min(duration, 500*time.Millisecond)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d (the kill points depend on timing too, so a seed does not replay a run)", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	rounds := 0
	deadline := time.Now().Add(duration)
	for rounds < 5 || time.Now().Before(deadline) {
		rounds++
		var stderr strings.Builder
		c := StartChild(t, &stderr, k.Env(rng)...)
		if !c.Lines.Scan() || c.Lines.Text() != "ready" {
			c.Cmd.Process.Kill()
			c.Cmd.Wait()
			t.Fatalf("round %d: the writer did not start: %q %v %s", rounds, c.Lines.Text(), c.Lines.Err(), stderr.String())
		}
		// Kill it at a random moment, then read what it had recorded
		// before it died.
		<-time.After(time.Duration(rng.Int64N(int64(k.MaxDelay))))
		c.Cmd.Process.Kill()
		err := c.Cmd.Wait()
		c.Stdin.Close()
		if err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("round %d: the writer ended with %v before it was killed: %s", rounds, err, stderr.String())
		}
		recorded, err := os.ReadFile(k.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, line := range strings.Split(strings.TrimSpace(string(recorded)), "\n") {
			if line != "" {
				lines = append(lines, line)
			}
		}
		k.Check(rounds, lines)
	}
	return rounds
}

// WriterRand returns the writer's random source, seeded with seed, a
// decimal number from the parent's environment.
func WriterRand(seed string) (*rand.Rand, error) {
	n, err := strconv.ParseUint(seed, 10, 64)
	if err != nil {
		return nil, err
	}
	return rand.New(rand.NewPCG(n, n)), nil
}

// StartWriting is what a writer child does once its store is open: it
// truncates the progress file logPath, makes the process exit when its
// standard input closes (the parent is gone), and says "ready" on its
// standard output. It returns the function that appends a line to the
// progress file.
func StartWriting(logPath string) (say func(format string, args ...any) error, err error) {
	progress, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(1)
	}()
	fmt.Println("ready")
	return func(format string, args ...any) error {
		_, err := fmt.Fprintf(progress, format+"\n", args...)
		return err
	}, nil
}
