package fuzzy

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumkit/raft"
)

// network is the model every faultTransport of a cluster consults: which
// servers are up, which directed links are cut, and how messages are
// dropped, delayed, duplicated and reordered. Faults are episodes of the
// schedule; while one is active it shapes every message its rules touch,
// and several may be active at once.
type network struct {
	rnd *lockedRand
	// rpcTimeout is how long a sender waits for an answer.
	rpcTimeout time.Duration
	// diskBase is the largest latency of a write on a healthy disk: even
	// then writes take time, so a crash can catch some in flight.
	diskBase time.Duration

	// flights tracks the goroutines carrying messages, so that a run can
	// wait for the last of them before its bubble ends.
	flights sync.WaitGroup

	mu sync.Mutex
	// The fields below are guarded by mu.
	ids map[raft.ServerAddress]raft.ServerID
	// up maps a server to its running incarnation; absent when down.
	up     map[raft.ServerID]int
	active map[*activeEpisode]bool
	// campaigning tells whether a server is a candidate or a new leader
	// (targeted_test.go); set once, before the run starts.
	campaigning func(raft.ServerID) bool
	// stats counts the failures failLate injects; set with campaigning.
	stats *runStats
	// onActivate, when set (by a test, before the run starts), is called
	// with every episode as it comes in force, under mu.
	onActivate func(*activeEpisode)
}

// activeEpisode is an episode in force, with the servers it was resolved
// to when it began (an isolated leader, say).
type activeEpisode struct {
	ep    *episode
	start time.Time
	// cut lists the directed links the episode cuts (for partitions and
	// flapping links).
	cut map[link]bool
	// node is the server a per-server fault (a slow disk) applies to; ""
	// means every server. For an operation, it is its target.
	node raft.ServerID
	// succeeded is set when an operation's request was answered nil.
	succeeded atomic.Bool
	// stop is closed when a slow-fsm episode ends, stopping its load.
	stop chan struct{}
}

type link struct{ from, to raft.ServerID }

func newNetwork(rnd *lockedRand, rpcTimeout, diskBase time.Duration) *network {
	return &network{
		rnd:        rnd,
		rpcTimeout: rpcTimeout,
		diskBase:   diskBase,
		ids:        make(map[raft.ServerAddress]raft.ServerID),
		up:         make(map[raft.ServerID]int),
		active:     make(map[*activeEpisode]bool),
	}
}

func (n *network) register(id raft.ServerID, addr raft.ServerAddress) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ids[addr] = id
}

func (n *network) id(addr raft.ServerAddress) raft.ServerID {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ids[addr]
}

// goFlight runs f on a tracked goroutine.
func (n *network) goFlight(f func()) { n.flights.Go(f) }

// setUp marks incarnation inc of id as running; inc 0 marks it down.
func (n *network) setUp(id raft.ServerID, inc int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if inc == 0 {
		delete(n.up, id)
	} else {
		n.up[id] = inc
	}
}

// alive reports whether incarnation inc of id is the running one.
func (n *network) alive(id raft.ServerID, inc int) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.up[id] == inc
}

// activate puts a in force. From then on other goroutines read it, so
// its fields must not change any more.
func (n *network) activate(a *activeEpisode) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.active[a] = true
	if n.onActivate != nil {
		n.onActivate(a)
	}
}

func (n *network) deactivate(a *activeEpisode) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.active, a)
}

// healAll ends every episode in force.
func (n *network) healAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.active)
}

// linkUp reports whether a message may travel from one server to another
// now: the receiver is running and no episode cuts the link.
func (n *network) linkUp(from, to raft.ServerID) bool {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.up[to]; !ok {
		return false
	}
	if _, ok := n.up[from]; !ok {
		return false
	}
	for a := range n.active {
		if a.cutsLocked(link{from, to}, now) {
			return false
		}
	}
	return true
}

// cutsLocked reports whether the episode cuts l at now.
func (a *activeEpisode) cutsLocked(l link, now time.Time) bool {
	if !a.cut[l] {
		return false
	}
	if a.ep.kind != faultFlap {
		return true
	}
	// A flapping link is down for the first period, up for the next, and
	// so on.
	phase := now.Sub(a.start) / a.ep.period
	return phase%2 == 0
}

// hop is the fate of one message on one link, drawn when it is sent.
type hop struct {
	drop      bool
	delay     time.Duration
	duplicate bool
	dupDelay  time.Duration
	// reorder sends the message on its own, past the ones sent after it.
	reorder bool
}

// plan draws the fate of a message from one server to another.
func (n *network) plan(from, to raft.ServerID) hop {
	n.mu.Lock()
	var loss, dup, reorder float64
	var delay, reorderDelay time.Duration
	for a := range n.active {
		switch a.ep.kind {
		case faultLoss:
			loss = max(loss, a.ep.prob)
		case faultDelay:
			delay = max(delay, a.ep.delay)
		case faultDuplicate:
			dup = max(dup, a.ep.prob)
		case faultReorder:
			reorder = max(reorder, a.ep.prob)
			reorderDelay = max(reorderDelay, a.ep.delay)
		}
	}
	n.mu.Unlock()
	var h hop
	h.drop = n.rnd.chance(loss)
	if delay > 0 {
		h.delay = n.rnd.duration(0, delay)
	}
	if n.rnd.chance(dup) {
		h.duplicate = true
		h.dupDelay = n.rnd.duration(0, max(delay, n.rpcTimeout/4))
	}
	if n.rnd.chance(reorder) {
		h.reorder = true
		h.delay += n.rnd.duration(0, reorderDelay)
	}
	return h
}

// disk draws how a write on id's disk goes now: its latency, and whether
// it fails (and if so, whether it landed anyway).
func (n *network) disk(id raft.ServerID) (time.Duration, bool, bool) {
	n.mu.Lock()
	worst := n.diskBase
	failP := 0.0
	for a := range n.active {
		if a.node != "" && a.node != id {
			continue
		}
		switch a.ep.kind {
		case faultSlowDisk:
			worst = max(worst, a.ep.delay)
		case faultDiskError:
			failP = max(failP, a.ep.prob)
		case faultCampaignWrite:
			worst = max(worst, a.ep.delay)
		}
	}
	n.mu.Unlock()
	if n.rnd.chance(failP) {
		return 0, true, n.rnd.chance(0.5)
	}
	if worst == 0 {
		return 0, false, false
	}
	return n.rnd.duration(0, worst), false, false
}

// stall returns how long a log write on id's disk starting now blocks: to
// the end of a stall-leader episode aimed at id.
func (n *network) stall(id raft.ServerID) time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	var d time.Duration
	for a := range n.active {
		if a.ep.kind == faultStallLeader && a.node == id {
			d = max(d, time.Until(a.start.Add(a.ep.length)))
		}
	}
	return d
}

// campaigningNow reports whether a campaign-write-error episode is active
// and id is a candidate or a new leader.
func (n *network) campaigningNow(id raft.ServerID) bool {
	n.mu.Lock()
	active := false
	for a := range n.active {
		active = active || a.ep.kind == faultCampaignWrite
	}
	campaigning := n.campaigning
	n.mu.Unlock()
	return active && campaigning != nil && campaigning(id)
}

// failLate decides whether a log write on id's disk completing now fails:
// it does, with the episode's probability, while a campaign-write-error
// episode is active and id is a candidate or a new leader now or was
// when the write started (early).
func (n *network) failLate(id raft.ServerID, early bool) (fail, landAnyway bool) {
	n.mu.Lock()
	p := 0.0
	for a := range n.active {
		if a.ep.kind == faultCampaignWrite {
			p = max(p, a.ep.prob)
		}
	}
	campaigning := n.campaigning
	n.mu.Unlock()
	if p == 0 || campaigning == nil || !(early || campaigning(id)) || !n.rnd.chance(p) {
		return false, false
	}
	n.stats.campaignWriteFailures.Add(1)
	return true, n.rnd.chance(0.5)
}

// lateTimeoutNowDelay returns the largest delay of a late TimeoutNow copy
// while a late-timeout-now episode is active, or 0.
func (n *network) lateTimeoutNowDelay() time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	var d time.Duration
	for a := range n.active {
		if a.ep.kind == faultLateTimeoutNow {
			d = max(d, a.ep.delay)
		}
	}
	return d
}

// fsmDelay draws how long id's FSM takes to apply an entry now.
func (n *network) fsmDelay(id raft.ServerID) time.Duration {
	n.mu.Lock()
	var worst time.Duration
	for a := range n.active {
		if a.ep.kind == faultSlowFSM && (a.node == "" || a.node == id) {
			worst = max(worst, a.ep.delay)
		}
	}
	n.mu.Unlock()
	if worst == 0 {
		return 0
	}
	return n.rnd.duration(0, worst)
}
