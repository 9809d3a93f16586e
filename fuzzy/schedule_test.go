package fuzzy

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/quorumkit/raft"
)

// A schedule is everything a seed fixes about a run: the cluster's size and
// its spare servers, the servers' configuration (snapshot thresholds
// included), the clients' number and keys, and the episodes with their
// times, durations and targets. It is drawn up front, before the cluster
// starts, so that it depends on the seed alone, and printed when a run
// fails.
//
// Episodes are of two sorts. Faults (the network, the disks, crashes) are
// in force for a while and then heal. Operations (a user snapshot, a
// membership change, a leadership transfer) are requests an operator makes
// through the API at one moment, whatever the faults then in force; their
// targets depend on the cluster's state when they begin (who leads, who is
// a member), so the schedule fixes only a number each uses to choose.

// faultKind names a kind of fault episode.
type faultKind int

const (
	faultLoss           faultKind = iota // drop messages both ways
	faultDelay                           // delay messages
	faultDuplicate                       // deliver requests twice
	faultReorder                         // let requests overtake each other
	faultPartition                       // split the cluster in two, both ways
	faultOneWay                          // cut some directed links
	faultIsolateLeader                   // cut every link of the current leader
	faultIsolateInbound                  // cut the links into the current leader
	faultFlap                            // a link that goes down and up
	faultSlowDisk                        // slow (and interruptible) disk writes
	faultDiskError                       // failing disk writes
	faultCrash                           // crash a server, restart it later
	faultCrashLeader                     // crash the current leader, restart it later
	faultCrashMidWrite                   // slow every disk, then crash a server mid-write
	faultCampaignWrite                   // log writes fail on candidates and new leaders
	faultWipe                            // wipe a non-voter's (or non-member's) disk
	faultRemovedReturns                  // cut a voter off, remove it, let it back
	faultStallLeader                     // the leader's log writes block past the stall timeout
	faultLateTimeoutNow                  // a transfer whose TimeoutNow is delivered late, twice, elsewhere
	faultSlowFSM                         // slow FSMs under an open-loop load
	// Operations.
	opSnapshot    // Snapshot() on a server, and maybe read it back
	opAddVoter    // AddVoter a spare, a removed server or a non-voter
	opAddNonvoter // AddNonvoter a spare or a removed server
	opRemove      // RemoveServer a member, then maybe shut it down
	opDemote      // DemoteVoter a voter
	opTransfer    // LeadershipTransfer, or LeadershipTransferToServer
	opTransferOut // LeadershipTransferToServer to a non-voter or a non-member
	opUserRestore // Restore on the leader, often as the leadership changes
	numFaultKinds
)

// firstOp is the first kind that is an operation rather than a fault.
const firstOp = opSnapshot

var faultNames = [numFaultKinds]string{
	faultLoss:           "loss",
	faultDelay:          "delay",
	faultDuplicate:      "duplicate",
	faultReorder:        "reorder",
	faultPartition:      "partition",
	faultOneWay:         "one-way",
	faultIsolateLeader:  "isolate-leader",
	faultIsolateInbound: "isolate-leader-inbound",
	faultFlap:           "flapping-link",
	faultSlowDisk:       "slow-disk",
	faultDiskError:      "disk-error",
	faultCrash:          "crash",
	faultCrashLeader:    "crash-leader",
	faultCrashMidWrite:  "crash-mid-write",
	faultCampaignWrite:  "campaign-write-error",
	faultWipe:           "wipe-disk",
	faultRemovedReturns: "removed-returns",
	faultStallLeader:    "stall-leader",
	faultLateTimeoutNow: "late-timeout-now",
	faultSlowFSM:        "slow-fsm",
	opSnapshot:          "user-snapshot",
	opAddVoter:          "add-voter",
	opAddNonvoter:       "add-nonvoter",
	opRemove:            "remove-server",
	opDemote:            "demote-voter",
	opTransfer:          "leadership-transfer",
	opTransferOut:       "transfer-to-non-voter",
	opUserRestore:       "user-restore",
}

func (k faultKind) String() string { return faultNames[k] }

// episode is one fault, in force from at to at+length.
type episode struct {
	kind   faultKind
	at     time.Duration
	length time.Duration
	// prob is the chance a message is affected (loss, duplicate, reorder).
	prob float64
	// delay is the largest delay (delay, reorder, slow disk).
	delay time.Duration
	// period is how long a flapping link stays in each state.
	period time.Duration
	// groups is a partition: the first group is cut off from the rest.
	group []raft.ServerID
	// links are the directed links cut by a one-way fault or a flapping
	// link.
	links []link
	// node is the target of a crash or slow disk; "" means every server
	// (slow disk) or one chosen when the episode begins.
	node raft.ServerID
	// pick chooses an operation's target among those that fit when it
	// begins (pick modulo their number, in ID order).
	pick int
	// open reads a user snapshot back through SnapshotFuture.Open;
	// decommission shuts a removed server down when the episode ends;
	// toServer names the transfer's target instead of letting the leader
	// choose.
	open, decommission, toServer bool
	// preVote is the removed server's own pre-vote setting
	// (removed-returns).
	preVote bool
	// rate is the open-loop load's writes per second (slow-fsm).
	rate int
}

func (e *episode) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "t=%-8v +%-7v %-22s", e.at, e.length, e.kind)
	switch e.kind {
	case faultLoss, faultDuplicate:
		fmt.Fprintf(&b, " p=%.2f", e.prob)
	case faultDiskError:
		node := e.node
		if node == "" {
			node = "every server"
		}
		fmt.Fprintf(&b, " %s p=%.2f", node, e.prob)
	case faultDelay:
		fmt.Fprintf(&b, " up to %v", e.delay)
	case faultReorder:
		fmt.Fprintf(&b, " p=%.2f up to %v", e.prob, e.delay)
	case faultPartition:
		fmt.Fprintf(&b, " %v | rest", e.group)
	case faultOneWay:
		fmt.Fprintf(&b, " %v", e.links)
	case faultFlap:
		fmt.Fprintf(&b, " %v every %v", e.links, e.period)
	case faultSlowDisk:
		node := e.node
		if node == "" {
			node = "every server"
		}
		fmt.Fprintf(&b, " %s up to %v", node, e.delay)
	case faultCrash:
		fmt.Fprintf(&b, " %s", e.node)
	case faultCrashMidWrite:
		fmt.Fprintf(&b, " %s, disks up to %v", e.node, e.delay)
	case faultCampaignWrite:
		fmt.Fprintf(&b, " the leader cut off, log writes up to %v, failing p=%.2f on candidates and new leaders", e.delay, e.prob)
	case faultWipe:
		fmt.Fprintf(&b, " pick %d", e.pick)
	case faultRemovedReturns:
		fmt.Fprintf(&b, " pick %d, its pre-vote=%v", e.pick, e.preVote)
	case faultLateTimeoutNow:
		fmt.Fprintf(&b, " copies up to %v late", e.delay)
	case faultSlowFSM:
		node := e.node
		if node == "" {
			node = "every server"
		}
		fmt.Fprintf(&b, " %s up to %v per entry, %d writes/s", node, e.delay, e.rate)
	case opSnapshot:
		node := e.node
		if node == "" {
			node = "the leader"
		}
		fmt.Fprintf(&b, " on %s", node)
		if e.open {
			b.WriteString(", read back")
		}
	case opAddVoter, opAddNonvoter, opDemote:
		fmt.Fprintf(&b, " pick %d", e.pick)
	case opRemove:
		fmt.Fprintf(&b, " pick %d", e.pick)
		if e.decommission {
			b.WriteString(", then shut it down")
		}
	case opTransferOut:
		fmt.Fprintf(&b, " pick %d", e.pick)
	case opTransfer:
		if e.toServer {
			fmt.Fprintf(&b, " to a named server, pick %d", e.pick)
		} else {
			b.WriteString(" to the leader's choice")
		}
	}
	return b.String()
}

func (l link) String() string { return fmt.Sprintf("%s→%s", l.from, l.to) }

// schedule is a run's plan.
type schedule struct {
	seed uint64
	// servers are the initial configuration's voters; spares run from the
	// start but are in no configuration until an operation adds them.
	servers []raft.ServerID
	spares  []raft.ServerID
	clients int
	keys    int
	// diskBase is the largest latency of a write on a healthy disk.
	diskBase time.Duration
	// maxAppendEntries, batchApplyCh and preVote vary the servers'
	// configuration from run to run.
	maxAppendEntries int
	batchApplyCh     bool
	preVote          bool
	// strict runs the servers over a transport that is strict about
	// Close and hands out a fresh Consumer channel per call
	// (strict_test.go).
	strict bool
	// snapshotThreshold, trailingLogs and snapshotInterval are small, so
	// that servers snapshot and compact their logs often, and a follower
	// that falls behind needs InstallSnapshot.
	snapshotThreshold uint64
	trailingLogs      uint64
	snapshotInterval  time.Duration
	// length is how long the faults go on; the run then heals and checks
	// that the cluster recovers.
	length   time.Duration
	episodes []*episode
}

// Timing of the cluster, shared by the schedule and the nodes' config. In
// fake time only the ratios matter.
const (
	heartbeatTimeout = 100 * time.Millisecond
	rpcTimeout       = 100 * time.Millisecond
)

// newSchedule draws a run's plan from seed.
func newSchedule(seed uint64, length time.Duration) *schedule {
	rnd := rand.New(rand.NewPCG(seed, 0x5eed))
	s := &schedule{
		seed:    seed,
		clients: 3 + rnd.IntN(3),
		keys:    4 + rnd.IntN(5),
		length:  length,
		// Up to a few milliseconds, or none at all for one run in four.
		diskBase: time.Duration(rnd.IntN(4)) * time.Duration(1+rnd.IntN(3)) * time.Millisecond,
	}
	s.maxAppendEntries = []int{1, 4, 16, 64}[rnd.IntN(4)]
	s.batchApplyCh = rnd.IntN(2) == 0
	s.preVote = rnd.IntN(4) != 0
	n := 3
	if rnd.IntN(2) == 0 {
		n = 5
	}
	for i := range n {
		s.servers = append(s.servers, raft.ServerID(fmt.Sprintf("n%d", i)))
	}
	for i := range 1 + rnd.IntN(2) {
		s.spares = append(s.spares, raft.ServerID(fmt.Sprintf("n%d", n+i)))
	}
	s.snapshotThreshold = []uint64{8, 32, 128}[rnd.IntN(3)]
	s.strict = rnd.IntN(2) == 0
	s.trailingLogs = []uint64{0, 4, 32, 256}[rnd.IntN(4)]
	s.snapshotInterval = []time.Duration{heartbeatTimeout / 2, 2 * heartbeatTimeout, 10 * heartbeatTimeout}[rnd.IntN(3)]
	// About one fault per simulated second, each between a few heartbeats
	// and a few seconds long, overlapping freely; and about two operations
	// for every three faults.
	count := max(3, int(length/time.Second))
	for range count {
		s.episodes = append(s.episodes, s.drawEpisode(rnd, drawFault(rnd)))
	}
	for range max(2, count*2/3) {
		s.episodes = append(s.episodes, s.drawEpisode(rnd, drawOp(rnd)))
	}
	if restoresOn() {
		s.drawRestores(rnd, count)
	}
	slices.SortStableFunc(s.episodes, func(a, b *episode) int { return int(a.at - b.at) })
	return s
}

// restoresOn reports whether user-restore episodes are drawn: unless
// RAFT_FUZZY_RESTORE=0 (restore_test.go). A run in which servers stopped
// for an uncommitted restore hold the quorum ends waiting for an
// operator, safety checked (quorumLostToRestoreStops).
func restoresOn() bool { return os.Getenv("RAFT_FUZZY_RESTORE") != "0" }

// drawRestores adds user restores to the schedule. They are drawn last, so
// that adding them left every earlier draw of a seed as it was. Half of
// them begin just as the leadership changes (or may change): a transfer,
// a crash or an isolation of the leader, a stall of its disk.
func (s *schedule) drawRestores(rnd *rand.Rand, count int) {
	var changes []*episode
	for _, e := range s.episodes {
		switch e.kind {
		case opTransfer, faultLateTimeoutNow, faultCrashLeader, faultIsolateLeader, faultIsolateInbound, faultStallLeader, faultCampaignWrite:
			changes = append(changes, e)
		}
	}
	for range max(1, count/10) {
		e := s.drawEpisode(rnd, opUserRestore)
		if len(changes) > 0 && rnd.IntN(2) == 0 {
			at := changes[rnd.IntN(len(changes))].at
			e.at = at + time.Duration(rnd.Int64N(int64(2*heartbeatTimeout))).Round(time.Millisecond)
		}
		s.episodes = append(s.episodes, e)
	}
}

// all returns every server of the run, members or spares.
func (s *schedule) all() []raft.ServerID {
	return append(slices.Clip(s.servers), s.spares...)
}

func (s *schedule) drawEpisode(rnd *rand.Rand, kind faultKind) *episode {
	dur := func(lo, hi time.Duration) time.Duration {
		return (lo + time.Duration(rnd.Int64N(int64(hi-lo)))).Round(time.Millisecond)
	}
	e := &episode{
		kind:   kind,
		at:     dur(heartbeatTimeout, s.length-heartbeatTimeout),
		length: dur(2*heartbeatTimeout, 30*heartbeatTimeout),
		pick:   rnd.IntN(1 << 20),
	}
	all := s.all()
	server := func() raft.ServerID { return all[rnd.IntN(len(all))] }
	switch e.kind {
	case faultLoss:
		e.prob = 0.05 + 0.45*rnd.Float64()
	case faultDelay:
		e.delay = dur(time.Millisecond, rpcTimeout)
	case faultDuplicate:
		e.prob = 0.1 + 0.5*rnd.Float64()
	case faultReorder:
		e.prob = 0.1 + 0.5*rnd.Float64()
		e.delay = dur(time.Millisecond, rpcTimeout/2)
	case faultPartition:
		perm := rnd.Perm(len(all))
		size := 1 + rnd.IntN(len(all)/2)
		for _, i := range perm[:size] {
			e.group = append(e.group, all[i])
		}
		slices.Sort(e.group)
	case faultOneWay:
		for range 1 + rnd.IntN(len(all)) {
			from, to := server(), server()
			if from != to {
				e.links = append(e.links, link{from, to})
			}
		}
	case faultFlap:
		a, b := server(), server()
		for a == b {
			b = server()
		}
		e.links = []link{{a, b}, {b, a}}
		e.period = dur(heartbeatTimeout/10, 3*heartbeatTimeout)
	case faultSlowDisk:
		if rnd.IntN(2) == 0 {
			e.node = server()
		}
		e.delay = dur(time.Millisecond, 3*heartbeatTimeout)
	case faultDiskError:
		if rnd.IntN(2) == 0 {
			e.node = server()
		}
		e.prob = 0.01 + 0.2*rnd.Float64()
	case faultCrash:
		e.node = server()
	case faultCrashMidWrite:
		e.node = server()
		e.delay = dur(time.Millisecond, heartbeatTimeout)
	case opSnapshot:
		if rnd.IntN(2) == 0 {
			e.node = server()
		}
		e.open = rnd.IntN(2) == 0
	case faultCampaignWrite:
		e.delay = dur(heartbeatTimeout/2, 3*heartbeatTimeout)
		e.prob = 0.3 + 0.7*rnd.Float64()
	case faultRemovedReturns:
		// Long enough for the server's election timer to fire many
		// times before its removal, half-way through.
		e.length = dur(20*heartbeatTimeout, 40*heartbeatTimeout)
		e.preVote = rnd.IntN(2) == 0
	case faultStallLeader:
		// Longer than LogWriteStallTimeout (cluster_test.go).
		e.length = dur(12*heartbeatTimeout, 30*heartbeatTimeout)
	case faultLateTimeoutNow:
		e.delay = dur(heartbeatTimeout, 20*heartbeatTimeout)
		e.toServer = rnd.IntN(2) == 0
	case faultSlowFSM:
		if rnd.IntN(2) == 0 {
			e.node = server()
		}
		// An FSM slower than the load: a backlog builds up.
		e.delay = dur(2*time.Millisecond, 10*time.Millisecond)
		e.rate = 100 + rnd.IntN(300)
	case opRemove:
		e.decommission = rnd.IntN(2) == 0
	case opTransfer:
		e.toServer = rnd.IntN(2) == 0
	}
	return e
}

// drawFault picks a fault kind; crashes weigh double, since most of what a
// crash can break needs one at the right moment.
func drawFault(rnd *rand.Rand) faultKind {
	n := int(firstOp)
	x := rnd.IntN(n + 3)
	switch {
	case x < n:
		return faultKind(x)
	case x == n:
		return faultCrash
	case x == n+1:
		return faultCrashLeader
	default:
		return faultCrashMidWrite
	}
}

// drawOp picks an operation; membership changes that grow the cluster
// weigh as much as those that shrink it, so that it neither empties its
// pool of spares nor stays at its floor of voters.
func drawOp(rnd *rand.Rand) faultKind {
	return []faultKind{
		opSnapshot, opSnapshot,
		opAddVoter, opAddVoter, opAddNonvoter,
		opRemove, opRemove, opDemote,
		opTransfer, opTransfer, opTransferOut,
	}[rnd.IntN(11)]
}

// kinds returns the fault kinds the schedule uses.
func (s *schedule) kinds() map[faultKind]bool {
	out := make(map[faultKind]bool)
	for _, e := range s.episodes {
		out[e.kind] = true
	}
	return out
}

func (s *schedule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %d servers %v and spares %v, %d clients on %d keys, disk writes up to %v, "+
		"MaxAppendEntries=%d BatchApplyCh=%v pre-vote=%v strict transport=%v SnapshotThreshold=%d TrailingLogs=%d SnapshotInterval=%v, "+
		"faults for %v:\n",
		s.seed, len(s.servers), s.servers, s.spares, s.clients, s.keys, s.diskBase,
		s.maxAppendEntries, s.batchApplyCh, s.preVote, s.strict, s.snapshotThreshold, s.trailingLogs, s.snapshotInterval, s.length)
	for _, e := range s.episodes {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	return b.String()
}
