package raft

import (
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/go-hclog"
)

// ProtocolVersion is the version of the RPC protocol and log entry formats a
// node speaks. Version 3, the default and the only one new clusters should
// use, identifies servers by ServerID and supports non-voters and leadership
// transfer. Versions 1 and 2 exist for clusters still upgrading from older
// releases of hashicorp/raft: under them the ServerID must equal the network
// address. A node accepts RPCs from peers at most one version below its own.
type ProtocolVersion int

const (
	// ProtocolVersionMin is the lowest protocol version understood on the
	// wire. Version 0 is understood but can no longer be configured.
	ProtocolVersionMin ProtocolVersion = 0
	// ProtocolVersionMax is the highest protocol version, and the default.
	ProtocolVersionMax = 3
)

// SnapshotVersion is the format version of a snapshot's metadata. Snapshots
// are always written as version 1; versions 0 and 1 can be read.
type SnapshotVersion int

const (
	// SnapshotVersionMin is the oldest snapshot version that can be read.
	SnapshotVersionMin SnapshotVersion = 0
	// SnapshotVersionMax is the newest snapshot version, the one written.
	SnapshotVersionMax = 1
)

// SuggestedMaxDataSize is the advice, in bytes, for the largest Data a log
// entry should carry. Nothing enforces it; larger entries work, but each one
// makes replication RPCs and disk writes longer.
const SuggestedMaxDataSize = 512 * 1024

// Config holds everything that shapes how a node behaves. Start from
// DefaultConfig, set LocalID, and adjust; NewRaft checks it with
// ValidateConfig. The fields up to RestoreCommittedLogs mirror
// hashicorp/raft's Config one for one; the fields after it are this
// library's additions, and their zero values keep the reference's behaviour.
type Config struct {
	// ProtocolVersion selects the protocol this node speaks; see the
	// ProtocolVersion type. Leave it at ProtocolVersionMax unless a rolling
	// upgrade from an old cluster needs otherwise.
	ProtocolVersion ProtocolVersion

	// HeartbeatTimeout is how long a follower waits without hearing from a
	// leader before it starts an election. The actual wait is chosen at
	// random between this and twice this, so that followers do not all
	// campaign at once.
	HeartbeatTimeout time.Duration

	// ElectionTimeout is how long a candidate waits for an election to
	// finish before starting another, again randomised up to twice this.
	ElectionTimeout time.Duration

	// CommitTimeout bounds how long a follower may go without learning the
	// leader's commit index when no new entries are flowing: the leader sends
	// an AppendEntries at least this often (randomised up to twice this).
	CommitTimeout time.Duration

	// MaxAppendEntries is the most entries sent in one AppendEntries RPC,
	// and the most pending Apply calls the leader takes into one batch.
	MaxAppendEntries int

	// BatchApplyCh gives Apply and Barrier calls the hand-off of the
	// reference's option of that name: up to MaxAppendEntries of them are
	// queued for the leader, and their timeout bounds only the wait for
	// room in that queue, so a queued entry is appended however late the
	// leader takes it. Off (the default), the timeout bounds how long the
	// leader takes to take the entry, as with an unbuffered hand-off
	// (enqueue.go).
	BatchApplyCh bool

	// ShutdownOnRemove makes a node shut itself down once a configuration
	// that removes it has been committed.
	ShutdownOnRemove bool

	// TrailingLogs is how many entries are kept in the log after a
	// snapshot, so that a follower slightly behind can catch up from the log
	// instead of receiving a whole snapshot.
	TrailingLogs uint64

	// SnapshotInterval is how often the node checks whether to take a
	// snapshot (randomised up to twice this, so that servers do not all
	// snapshot at once).
	SnapshotInterval time.Duration

	// SnapshotThreshold is how many entries must have been added since the
	// last snapshot before a periodic check takes a new one.
	SnapshotThreshold uint64

	// LeaderLeaseTimeout is how long a leader keeps its role without
	// hearing from a quorum of voters. Past it, the leader steps down.
	LeaderLeaseTimeout time.Duration

	// LocalID uniquely identifies this server across the life of the
	// cluster. It must be set.
	LocalID ServerID

	// NotifyCh, when set, receives true when this node becomes leader and
	// false when it stops being leader. The node waits until each value is
	// received, so whoever owns the channel must keep reading it.
	NotifyCh chan<- bool

	// LogOutput is where the default logger writes; os.Stderr when nil.
	// It is ignored when Logger is set.
	LogOutput io.Writer

	// LogLevel is the level of the default logger. It is ignored when
	// Logger is set.
	LogLevel string

	// Logger is the logger used by the node. When nil, one named "raft" is
	// built from LogOutput and LogLevel.
	Logger hclog.Logger

	// NoSnapshotRestoreOnStart makes NewRaft skip loading the newest
	// snapshot into the FSM. Use it when the FSM keeps its own durable state
	// and restoring would be wasted work. The snapshot's index, term and
	// configuration are still used.
	NoSnapshotRestoreOnStart bool

	// PreVoteDisabled turns off the pre-vote round. With pre-vote, a node
	// that was cut off asks whether it could win before raising its term,
	// so its return does not depose a healthy leader.
	PreVoteDisabled bool

	// NoLegacyTelemetry stops the metrics whose names embed a peer ID;
	// the labelled equivalents are always emitted.
	NoLegacyTelemetry bool

	// RestoreCommittedLogs makes NewRaft apply the entries up to the commit
	// index recorded by the log store before the node starts, so the FSM is
	// current without waiting for a leader. The log store must implement
	// CommitTrackingLogStore.
	RestoreCommittedLogs bool

	// skipStartup builds a node without starting its goroutines; the
	// package-level GetConfiguration uses it to read state.
	skipStartup bool

	// hooks, set only by tests, lets them look inside a running node. A
	// pointer keeps Config comparable.
	hooks *runHooks

	// invariantCheck, when set, makes the run loop check the write path's
	// invariants after every step and report the first that breaks (see
	// write_path_invariants.go). Only tests set it. A pointer keeps Config
	// comparable.
	invariantCheck *invariantCheck

	// clock, set only by tests (testhook.ScaleClock), replaces the real
	// clock of the node (clock.go).
	clock clock

	// LogWriteStallTimeout bounds how long a leader waits for its own log
	// write to finish. A leader whose StoreLogs call has not returned within
	// it steps down, so that a healthy server can lead instead of the whole
	// cluster hanging on one stalled disk. Entries it had not stored are
	// never reported as committed. No server campaigns while one of its
	// writes has been stuck that long, nor for ten election timeouts after
	// (unless a later write succeeds), so the stalled leader does not win
	// the next election. Zero turns the check off.
	//
	// The trade-off: a leader whose disk stops answering keeps its
	// followers' heartbeats flowing, so no election replaces it and writes
	// are unavailable for about LogWriteStallTimeout, plus the followers'
	// election timeout and one election. Set too low, a disk that is slow
	// but healthy (an fsync spike, a large batch, a busy machine) makes
	// its leader step down and the cluster elect another for nothing, and
	// the server that stepped down may not campaign for ten election
	// timeouts. Head compactions never count: they run beside the writes
	// (log_compactor.go). DefaultConfig sets DefaultLogWriteStallTimeout,
	// five times its ElectionTimeout: with it, writes resume on a new leader
	// within LogWriteStallTimeout + 3 × ElectionTimeout (8 s) of a stall.
	// Scale it with ElectionTimeout, and keep it well above the slowest
	// write the disk makes when healthy.
	LogWriteStallTimeout time.Duration

	// MaxAppendEntriesBytes bounds the total Data and Extensions bytes of
	// the entries sent in one AppendEntries RPC, in addition to
	// MaxAppendEntries. A single entry larger than the bound is still sent,
	// alone. Zero means DefaultMaxAppendEntriesBytes. Keep it below the
	// per-RPC byte cap of every peer's transport.
	MaxAppendEntriesBytes int

	// MaxUnwrittenBytes bounds the entries a leader has accepted and not
	// yet written to its own log store, in bytes: each entry counts its
	// Data and Extensions plus 128 bytes for itself. Once they reach it,
	// the leader takes no more Apply or Barrier requests until its disk
	// catches up; a waiting request answers ErrEnqueueTimeout when its
	// timeout expires. The last entry taken may pass the bound. Zero means
	// DefaultMaxUnwrittenBytes.
	MaxUnwrittenBytes int64

	// MaxUnappliedMemoryBytes bounds, in bytes counted as for
	// MaxUnwrittenBytes, the committed entries a node keeps in memory for
	// its FSM while the FSM catches up. Past it, the node lets go of the
	// oldest of them and its FSM reads them back from the log store. A
	// leader also holds the entries it accepted until its FSM has applied
	// them (their futures keep them): once those not yet applied reach the
	// bound, it takes no more requests until its FSM, or the commit index,
	// catches up, as with MaxUnwrittenBytes.
	// Zero means DefaultMaxUnappliedMemoryBytes.
	MaxUnappliedMemoryBytes int64

	// LeadershipTransferOnShutdown makes Shutdown, called on a leader,
	// first hand leadership to the most up-to-date voter (as
	// LeadershipTransfer does) and only then stop the node, so that a
	// server restarted on purpose (a rolling upgrade, say) costs the
	// cluster the few round trips of the hand-off instead of the
	// followers' election timeout and an election. Shutdown waits for the
	// transfer for at most three election timeouts, then stops the node
	// whatever the outcome; a node stopping after an unrecoverable error,
	// or one that is not the leader, stops at once. Off by default, as the
	// reference has no such step.
	LeadershipTransferOnShutdown bool

	// LeaseReadTimeout turns on lease reads (Raft.ReadLease) when
	// positive: a leader that a quorum of voters accepted within it,
	// counted from when the leader sent the requests they accepted, answers
	// reads with no round trip. It must not exceed HeartbeatTimeout, since
	// a follower that heard from its leader refuses to vote for anyone else
	// only until a HeartbeatTimeout passes in silence, and StartupVoteHold
	// must be at least as long. Every voter of the cluster must run with
	// these settings; see ReadLease for the safety argument and its
	// assumptions. Zero, the default, turns leases off: ReadLease then
	// always takes the ReadIndex path.
	LeaseReadTimeout time.Duration

	// LeaseClockDrift is the margin a leader takes off its lease for clock
	// drift and pauses: the most two servers' monotonic clocks may
	// disagree over an interval of LeaseReadTimeout, plus the longest
	// pause a server may take without noticing. It must be less than
	// LeaseReadTimeout. Ignored when leases are off.
	LeaseClockDrift time.Duration

	// StartupVoteHold makes a server refuse vote and pre-vote requests
	// (before looking at their term) for this long after it starts or
	// restarts, unless the vote request is part of a leadership transfer.
	// A restarted server has forgotten the leader it followed, and would
	// otherwise vote at once for a candidate while that leader's lease
	// still runs. It must be at least LeaseReadTimeout when leases are on,
	// and it can be set on its own. Every server holds its vote for at
	// least one HeartbeatTimeout after it starts whatever this says
	// (vote_hold.go); a longer StartupVoteHold lengthens that hold. Zero,
	// the default, adds nothing to it.
	StartupVoteHold time.Duration
}

// runHooks are test hooks into a node's goroutines.
type runHooks struct {
	// afterStep is called on the run loop after every event it handled,
	// so a test can inspect the run loop's state without a race.
	afterStep func(*Raft)
}

// DefaultLogWriteStallTimeout is DefaultConfig's LogWriteStallTimeout:
// five of its election timeouts (see Config.LogWriteStallTimeout for the
// trade-off).
const DefaultLogWriteStallTimeout = 5 * time.Second

// DefaultMaxAppendEntriesBytes is the byte bound of one AppendEntries RPC
// when Config.MaxAppendEntriesBytes is zero. It sits well below the network
// transport's default per-RPC cap.
const DefaultMaxAppendEntriesBytes = 8 * 1024 * 1024

// DefaultMaxUnwrittenBytes is Config.MaxUnwrittenBytes when zero: room for
// several full batches of entries of the suggested maximum size.
const DefaultMaxUnwrittenBytes = 64 * 1024 * 1024

// DefaultMaxUnappliedMemoryBytes is Config.MaxUnappliedMemoryBytes when
// zero.
const DefaultMaxUnappliedMemoryBytes = 64 * 1024 * 1024

// ReloadableConfig is the part of Config that can change while a node runs,
// through Raft.ReloadConfig.
type ReloadableConfig struct {
	// TrailingLogs is Config.TrailingLogs.
	TrailingLogs uint64
	// SnapshotInterval is Config.SnapshotInterval.
	SnapshotInterval time.Duration
	// SnapshotThreshold is Config.SnapshotThreshold.
	SnapshotThreshold uint64
	// HeartbeatTimeout is Config.HeartbeatTimeout. A shorter value takes
	// effect at once; a longer one at the next timer.
	HeartbeatTimeout time.Duration
	// ElectionTimeout is Config.ElectionTimeout.
	ElectionTimeout time.Duration
}

// apply copies every reloadable field onto a copy of base, zero values
// included, and returns the result.
func (rc *ReloadableConfig) apply(base Config) Config {
	base.TrailingLogs = rc.TrailingLogs
	base.SnapshotInterval = rc.SnapshotInterval
	base.SnapshotThreshold = rc.SnapshotThreshold
	base.HeartbeatTimeout = rc.HeartbeatTimeout
	base.ElectionTimeout = rc.ElectionTimeout
	return base
}

// fromConfig fills rc with the reloadable fields of c.
func (rc *ReloadableConfig) fromConfig(c Config) {
	rc.TrailingLogs = c.TrailingLogs
	rc.SnapshotInterval = c.SnapshotInterval
	rc.SnapshotThreshold = c.SnapshotThreshold
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ElectionTimeout = c.ElectionTimeout
}

// DefaultConfig returns a Config with settings that suit a cluster on a
// local network. LocalID is left empty and must be set.
func DefaultConfig() *Config {
	return &Config{
		ProtocolVersion:      ProtocolVersionMax,
		HeartbeatTimeout:     time.Second,
		ElectionTimeout:      time.Second,
		CommitTimeout:        50 * time.Millisecond,
		MaxAppendEntries:     64,
		ShutdownOnRemove:     true,
		TrailingLogs:         10240,
		SnapshotInterval:     120 * time.Second,
		SnapshotThreshold:    8192,
		LeaderLeaseTimeout:   500 * time.Millisecond,
		LogLevel:             "DEBUG",
		LogWriteStallTimeout: DefaultLogWriteStallTimeout,
	}
}

// ValidateConfig reports the first setting of config that NewRaft would
// refuse, with the same checks, in the same order and with the same
// messages as hashicorp/raft, followed by checks of this library's own
// settings.
func ValidateConfig(config *Config) error {
	if config == nil {
		return fmt.Errorf("config cannot be nil")
	}
	// Version 0 is still understood on the wire but can no longer be run.
	minVersion := ProtocolVersionMin
	if minVersion == 0 {
		minVersion = 1
	}
	if config.ProtocolVersion < minVersion || config.ProtocolVersion > ProtocolVersionMax {
		return fmt.Errorf("ProtocolVersion %d must be >= %d and <= %d",
			config.ProtocolVersion, minVersion, ProtocolVersionMax)
	}
	if len(config.LocalID) == 0 {
		return fmt.Errorf("LocalID cannot be empty")
	}
	if config.HeartbeatTimeout < 5*time.Millisecond {
		return fmt.Errorf("HeartbeatTimeout is too low")
	}
	if config.ElectionTimeout < 5*time.Millisecond {
		return fmt.Errorf("ElectionTimeout is too low")
	}
	if config.CommitTimeout < time.Millisecond {
		return fmt.Errorf("CommitTimeout is too low")
	}
	if config.MaxAppendEntries <= 0 {
		return fmt.Errorf("MaxAppendEntries must be positive")
	}
	if config.MaxAppendEntries > 1024 {
		return fmt.Errorf("MaxAppendEntries is too large")
	}
	if config.SnapshotInterval < 5*time.Millisecond {
		return fmt.Errorf("SnapshotInterval is too low")
	}
	if config.LeaderLeaseTimeout < 5*time.Millisecond {
		return fmt.Errorf("LeaderLeaseTimeout is too low")
	}
	if config.LeaderLeaseTimeout > config.HeartbeatTimeout {
		return fmt.Errorf("LeaderLeaseTimeout (%s) cannot be larger than heartbeat timeout (%s)",
			config.LeaderLeaseTimeout, config.HeartbeatTimeout)
	}
	if config.ElectionTimeout < config.HeartbeatTimeout {
		return fmt.Errorf("ElectionTimeout (%s) must be equal or greater than Heartbeat Timeout (%s)",
			config.ElectionTimeout, config.HeartbeatTimeout)
	}
	if config.LogWriteStallTimeout < 0 {
		return fmt.Errorf("LogWriteStallTimeout (%s) cannot be negative", config.LogWriteStallTimeout)
	}
	if config.MaxAppendEntriesBytes < 0 {
		return fmt.Errorf("MaxAppendEntriesBytes (%d) cannot be negative", config.MaxAppendEntriesBytes)
	}
	if config.MaxUnwrittenBytes < 0 {
		return fmt.Errorf("MaxUnwrittenBytes (%d) cannot be negative", config.MaxUnwrittenBytes)
	}
	if config.MaxUnappliedMemoryBytes < 0 {
		return fmt.Errorf("MaxUnappliedMemoryBytes (%d) cannot be negative", config.MaxUnappliedMemoryBytes)
	}
	return validateLeaseConfig(config)
}

// maxAppendBytes is the effective byte bound of one AppendEntries RPC.
func (c *Config) maxAppendBytes() int {
	if c.MaxAppendEntriesBytes > 0 {
		return c.MaxAppendEntriesBytes
	}
	return DefaultMaxAppendEntriesBytes
}

// maxUnwrittenBytes is the effective MaxUnwrittenBytes.
func (c *Config) maxUnwrittenBytes() int64 {
	if c.MaxUnwrittenBytes > 0 {
		return c.MaxUnwrittenBytes
	}
	return DefaultMaxUnwrittenBytes
}

// maxUnappliedMemoryBytes is the effective MaxUnappliedMemoryBytes.
func (c *Config) maxUnappliedMemoryBytes() int64 {
	if c.MaxUnappliedMemoryBytes > 0 {
		return c.MaxUnappliedMemoryBytes
	}
	return DefaultMaxUnappliedMemoryBytes
}

// buildLogger returns the logger a node uses for conf.
func buildLogger(conf *Config) hclog.Logger {
	if conf.Logger != nil {
		return conf.Logger
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:   "raft",
		Level:  hclog.LevelFromString(conf.LogLevel),
		Output: conf.LogOutput,
	})
}
