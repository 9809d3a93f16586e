package fuzzy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/quorumkit/raft"
)

// A schedule is everything a seed fixes about a run: the cluster's size,
// the clients' number and keys, and the fault episodes with their times,
// durations and targets. It is drawn up front, before the cluster starts,
// so that it depends on the seed alone, and printed when a run fails.

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
	numFaultKinds
)

// Snapshots, compaction and membership changes will join this list as
// faultSnapshot, faultAddRemove and so on once the core implements them;
// each is one more kind here and one more case in cluster.begin.

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
	}
	return b.String()
}

func (l link) String() string { return fmt.Sprintf("%s→%s", l.from, l.to) }

// schedule is a run's plan.
type schedule struct {
	seed    uint64
	servers []raft.ServerID
	clients int
	keys    int
	// diskBase is the largest latency of a write on a healthy disk.
	diskBase time.Duration
	// maxAppendEntries, batchApplyCh and preVote vary the servers'
	// configuration from run to run.
	maxAppendEntries int
	batchApplyCh     bool
	preVote          bool
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
	// About one episode per simulated second, each between a few
	// heartbeats and a few seconds long, overlapping freely.
	count := max(3, int(length/time.Second))
	for range count {
		s.episodes = append(s.episodes, s.drawEpisode(rnd))
	}
	slices.SortStableFunc(s.episodes, func(a, b *episode) int { return int(a.at - b.at) })
	return s
}

func (s *schedule) drawEpisode(rnd *rand.Rand) *episode {
	dur := func(lo, hi time.Duration) time.Duration {
		return (lo + time.Duration(rnd.Int64N(int64(hi-lo)))).Round(time.Millisecond)
	}
	e := &episode{
		kind:   drawKind(rnd),
		at:     dur(heartbeatTimeout, s.length-heartbeatTimeout),
		length: dur(2*heartbeatTimeout, 30*heartbeatTimeout),
	}
	server := func() raft.ServerID { return s.servers[rnd.IntN(len(s.servers))] }
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
		perm := rnd.Perm(len(s.servers))
		size := 1 + rnd.IntN(len(s.servers)/2)
		for _, i := range perm[:size] {
			e.group = append(e.group, s.servers[i])
		}
		slices.Sort(e.group)
	case faultOneWay:
		for range 1 + rnd.IntN(len(s.servers)) {
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
	}
	return e
}

// drawKind picks a fault kind; crashes weigh double, since most of what a
// crash can break needs one at the right moment.
func drawKind(rnd *rand.Rand) faultKind {
	x := rnd.IntN(int(numFaultKinds) + 3)
	switch {
	case x < int(numFaultKinds):
		return faultKind(x)
	case x == int(numFaultKinds):
		return faultCrash
	case x == int(numFaultKinds)+1:
		return faultCrashLeader
	default:
		return faultCrashMidWrite
	}
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
	fmt.Fprintf(&b, "seed %d: %d servers %v, %d clients on %d keys, disk writes up to %v, "+
		"MaxAppendEntries=%d BatchApplyCh=%v pre-vote=%v, faults for %v:\n",
		s.seed, len(s.servers), s.servers, s.clients, s.keys, s.diskBase,
		s.maxAppendEntries, s.batchApplyCh, s.preVote, s.length)
	for _, e := range s.episodes {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	return b.String()
}
