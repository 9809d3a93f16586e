package sidebyside

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// trailingLogs is DefaultConfig's TrailingLogs in both libraries: a
// snapshot compacts the log only up to this many entries before its end.
const trailingLogs = 10240

// fillClients is how many clients write the filler commands.
const fillClients = 64

// installSnapshot gives the FSM a state of o.Snapshot bytes, writes enough
// commands after it that the leader's snapshot compacts the log's start
// away, takes that snapshot, then adds a new, empty voter: the leader can
// only bring it up to date by sending the snapshot. The time runs from
// AddVoter to the end of the new node's Restore; the part spent inside
// the machine's Restore is reported beside it.
func installSnapshot(c Cluster, o Options, m *Measurement) error {
	m.SnapshotBytes = int64(o.Snapshot)
	leader, err := awaitLeader(c, o)
	if err != nil {
		return err
	}
	if err := leader.Apply(GrowCommand(o.Snapshot, 1), 0); err != nil {
		return fmt.Errorf("growing the FSM: %w", err)
	}
	if leader, err = fill(c, leader, trailingLogs+fillClients, o); err != nil {
		return err
	}
	if err := leader.Snapshot(); err != nil {
		return fmt.Errorf("taking the snapshot: %w", err)
	}
	joiner, err := c.AddNode()
	if err != nil {
		return fmt.Errorf("starting the new node: %w", err)
	}
	// With -profiledir, the install is profiled (and traced with -trace)
	// from AddVoter until the new voter's restore ends or fails.
	prof, perr := startWindowProfiles(o, m)
	cpu0, cpuOK := processCPU()
	wait0, waitOK := processRunWait()
	start, err := awaitInstall(leader, joiner, o)
	cpu1, _ := processCPU()
	wait1, _ := processRunWait()
	if perr = errors.Join(perr, prof.stop()); err == nil && perr != nil {
		err = fmt.Errorf("profiles: %w", perr)
	}
	if err != nil {
		return err
	}
	took := joiner.Machine().RestoredAt().Sub(start)
	if got := joiner.Machine().StateSize(); got != o.Snapshot {
		return fmt.Errorf("the new voter restored %d bytes of state, not %d", got, o.Snapshot)
	}
	m.InstallMs = ms(took)
	m.FSMRestoreMs = ms(joiner.Machine().RestoreTook())
	m.MBPerSec = float64(o.Snapshot) / took.Seconds() / 1e6
	// The CPU and run-queue figures run to when awaitInstall saw the
	// restore, a moment past its end.
	if cpuOK {
		m.InstallCPUMs = ms(cpu1 - cpu0)
	}
	if waitOK {
		m.RunWaitCores = max(wait1-wait0, 0).Seconds() / took.Seconds()
	}
	return nil
}

// awaitInstall adds joiner as a voter through leader and waits until its
// machine has restored a snapshot; it returns when it called AddVoter.
func awaitInstall(leader, joiner Node, o Options) (time.Time, error) {
	start := time.Now()
	if err := leader.AddVoter(joiner, o.Timeout); err != nil {
		return start, fmt.Errorf("adding the voter: %w", err)
	}
	t := time.NewTimer(o.Timeout)
	defer t.Stop()
	select {
	case <-joiner.Machine().Restored():
		return start, nil
	case <-joiner.Machine().Grown():
		// The leader's store still served the entries the snapshot had
		// compacted away, so it sent those instead of the snapshot.
		return start, errors.New("the new voter replayed the log instead of installing the snapshot: the leader's log store still serves compacted entries")
	case <-t.C:
		return start, fmt.Errorf("the new voter restored no snapshot within %v", o.Timeout)
	}
}

// fillAttempts bounds how many leaders fill may go through: on a loaded
// machine a leader can lose its lease while the filler is written.
const fillAttempts = 5

// fill commits n workload commands from fillClients clients, through
// leader or, should it lose leadership meanwhile, through its successor;
// it returns the node that leads at the end.
func fill(c Cluster, leader Node, n int, o Options) (Node, error) {
	var done atomic.Int64
	for attempt := 1; ; attempt++ {
		err := fillThrough(leader, n, &done, o)
		if err == nil {
			return leader, nil
		}
		if attempt == fillAttempts {
			return nil, fmt.Errorf("writing the filler commands through %d leaders: %w", attempt, err)
		}
		if leader, err = awaitLeader(c, o); err != nil {
			return nil, err
		}
	}
}

// fillThrough commits commands through leader until done reaches n, or
// returns the first error.
func fillThrough(leader Node, n int, done *atomic.Int64, o Options) error {
	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
		failed  atomic.Bool
	)
	for i := range fillClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := command(o.CmdSize, i+1, 2)
			for !failed.Load() && done.Load() < int64(n) {
				if err := leader.Apply(cmd, 0); err != nil {
					errOnce.Do(func() { first = err })
					failed.Store(true)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	return first
}
