// Command commitstages shows where the time of a committed Apply goes in
// a QuorumKit Raft cluster set up as the side-by-side benchmark sets up
// ours (three nodes in this process, TCP on 127.0.0.1, DefaultConfig,
// 256-byte commands, closed-loop clients, a LogCache of 512 over the
// store). It wraps each node's log store and FSM to stamp, for every
// entry, when the leader and each follower began and ended the StoreLogs
// call holding it and when the leader's FSM applied it, and prints
// percentiles of each stage measured from the Apply call, with the batch
// sizes each node stored.
//
//	cd interop && go run ./cmd/commitstages -clients 1 -ops 3000
//	go run ./cmd/commitstages -clients 16 -ops 20000 -store mem   (or -store bolt: raftboltdb)
//
// Stages, in microseconds after Apply was called:
//
//	leader store start/end   the leader's StoreLogs holding the entry
//	F0/F1 store start/end    each follower's
//	first follower end       the earlier follower's StoreLogs end
//	quorum durable           the second of the three StoreLogs ends: the
//	                         earliest moment the entry is committed
//	leader-gated excess      how far the leader's own store ended after the
//	                         first follower's (zero when it ended before)
//	leader FSM apply         the leader's FSM saw the entry
//	apply returned           the future's Error returned
//
// Only the stores and the FSM are wrapped, so the library runs unchanged;
// the hops between them (replication, answers, the run loop) show as the
// gaps. It reports; it asserts nothing.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/quorumkit/raft"
	"github.com/quorumkit/raft/raftboltdb"
	"github.com/quorumkit/raft/wal"
)

func main() {
	clients := flag.Int("clients", 1, "closed-loop clients")
	ops := flag.Int("ops", 3000, "Apply calls measured, over all clients")
	warmup := flag.Int("warmup", 500, "Apply calls before measuring")
	store := flag.String("store", "wal", "log store: wal, bolt (raftboltdb) or mem")
	dir := flag.String("dir", "", "directory for the nodes' stores (default: a temporary one)")
	flag.Parse()
	if err := run(*clients, *ops, *warmup, *store, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "commitstages:", err)
		os.Exit(1)
	}
}

var epoch = time.Now()

// stamp is a moment, in nanoseconds since epoch.
func stamp() int64 { return int64(time.Since(epoch)) }

// stamps records, per log index, the first moment something happened to
// it, and the size of the batch it came in.
type stamps struct {
	mu    sync.Mutex
	at    map[uint64]int64
	batch map[uint64]int
}

func newStamps() *stamps { return &stamps{at: map[uint64]int64{}, batch: map[uint64]int{}} }

func (s *stamps) set(index uint64, t int64, batch int) {
	s.mu.Lock()
	if _, ok := s.at[index]; !ok {
		s.at[index] = t
		s.batch[index] = batch
	}
	s.mu.Unlock()
}

func (s *stamps) get(index uint64) (int64, int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.at[index]
	return t, s.batch[index], ok
}

// timedStore stamps each StoreLogs call's start and end.
type timedStore struct {
	raft.LogStore
	start, end *stamps
}

func (t *timedStore) StoreLogs(logs []*raft.Log) error {
	s := stamp()
	err := t.LogStore.StoreLogs(logs)
	e := stamp()
	for _, l := range logs {
		t.start.set(l.Index, s, len(logs))
		t.end.set(l.Index, e, len(logs))
	}
	return err
}

func (t *timedStore) StoreLog(l *raft.Log) error { return t.StoreLogs([]*raft.Log{l}) }

// IsMonotonic passes on what the store says, as LogCache does.
func (t *timedStore) IsMonotonic() bool {
	m, ok := t.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// fsm stamps each applied entry and keeps nothing.
type fsm struct{ applied *stamps }

func (f fsm) Apply(l *raft.Log) interface{} {
	f.applied.set(l.Index, stamp(), 0)
	return nil
}

func (f fsm) Snapshot() (raft.FSMSnapshot, error) {
	return nil, errors.New("commitstages: no snapshots")
}

func (f fsm) Restore(rc io.ReadCloser) error { return rc.Close() }

type node struct {
	r       *raft.Raft
	cfg     *raft.Config
	logs    raft.LogStore // the LogCache over store
	stable  raft.StableStore
	snaps   raft.SnapshotStore
	store   *timedStore
	applied *stamps
	trans   *raft.NetworkTransport
	close   func() error
}

func run(clients, ops, warmup int, storeKind, dir string) error {
	if clients < 1 || ops < clients {
		return fmt.Errorf("need at least one client and one op per client")
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "commitstages")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	var nodes []*node
	defer func() {
		for _, n := range nodes {
			if n.r != nil {
				n.r.Shutdown().Error()
			}
			n.trans.Close()
			n.close()
		}
	}()
	var conf raft.Configuration
	for i := 0; i < 3; i++ {
		trans, err := raft.NewTCPTransport("127.0.0.1:0", nil, 3, 10*time.Second, io.Discard)
		if err != nil {
			return err
		}
		n := &node{trans: trans, applied: newStamps(), close: func() error { return nil }}
		nodes = append(nodes, n)
		var logs raft.LogStore
		switch storeKind {
		case "wal":
			d := filepath.Join(dir, fmt.Sprint(i))
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			w, err := wal.Open(d, wal.WithLogger(hclog.NewNullLogger()))
			if err != nil {
				return err
			}
			logs, n.stable, n.close = w, w, w.Close
		case "bolt":
			d := filepath.Join(dir, fmt.Sprint(i))
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			b, err := raftboltdb.NewBoltStore(filepath.Join(d, "raft.db"))
			if err != nil {
				return err
			}
			logs, n.stable, n.close = b, b, b.Close
		case "mem":
			s := raft.NewInmemStore()
			logs, n.stable = s, s
		default:
			return fmt.Errorf("unknown store %q", storeKind)
		}
		n.store = &timedStore{LogStore: logs, start: newStamps(), end: newStamps()}
		if n.logs, err = raft.NewLogCache(512, n.store); err != nil {
			return err
		}
		n.snaps = raft.NewInmemSnapshotStore()
		n.cfg = raft.DefaultConfig()
		n.cfg.LocalID = raft.ServerID(fmt.Sprint(i))
		n.cfg.Logger = hclog.NewNullLogger()
		conf.Servers = append(conf.Servers, raft.Server{ID: n.cfg.LocalID, Address: trans.LocalAddr()})
	}
	for _, n := range nodes {
		if err := raft.BootstrapCluster(n.cfg, n.logs, n.stable, n.snaps, n.trans, conf); err != nil {
			return err
		}
		r, err := raft.NewRaft(n.cfg, fsm{n.applied}, n.logs, n.stable, n.snaps, n.trans)
		if err != nil {
			return err
		}
		n.r = r
	}
	var leader *node
	deadline := time.Now().Add(30 * time.Second)
	for leader == nil {
		for _, n := range nodes {
			if n.r.State() == raft.Leader {
				leader = n
			}
		}
		if leader == nil {
			if time.Now().After(deadline) {
				return errors.New("no leader after 30s")
			}
			waitForChange(nodes)
		}
	}
	if err := leader.r.Barrier(0).Error(); err != nil {
		return err
	}
	cmd := make([]byte, 256)
	for i := 0; i < warmup; i++ {
		if err := leader.r.Apply(cmd, 0).Error(); err != nil {
			return err
		}
	}

	type sample struct {
		index      uint64
		start, end int64
	}
	samples := make([][]sample, clients)
	errs := make(chan error, clients)
	began := time.Now()
	for c := range clients {
		go func() {
			for range ops / clients {
				s := stamp()
				f := leader.r.Apply(cmd, 0)
				if err := f.Error(); err != nil {
					errs <- err
					return
				}
				samples[c] = append(samples[c], sample{f.Index(), s, stamp()})
			}
			errs <- nil
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			return err
		}
	}
	elapsed := time.Since(began)

	var followers []*node
	for _, n := range nodes {
		if n != leader {
			followers = append(followers, n)
		}
	}
	st := &stageTable{}
	count := 0
	for _, cs := range samples {
		for _, s := range cs {
			count++
			since := func(t int64) float64 { return float64(t-s.start) / 1e3 }
			ls, lb, okS := leader.store.start.get(s.index)
			le, _, okE := leader.store.end.get(s.index)
			if okS && okE {
				st.add("leader store start", since(ls))
				st.add("leader store end", since(le))
				st.add("leader batch (entries)", float64(lb))
			}
			var ends []int64
			for i, f := range followers {
				fs, fb, okS := f.store.start.get(s.index)
				fe, _, okE := f.store.end.get(s.index)
				if !okS || !okE {
					// The follower had not stored it when the run
					// ended: it was behind.
					continue
				}
				st.add(fmt.Sprintf("F%d store start", i), since(fs))
				st.add(fmt.Sprintf("F%d store end", i), since(fe))
				st.add(fmt.Sprintf("F%d batch (entries)", i), float64(fb))
				ends = append(ends, fe)
			}
			if okE && len(ends) > 0 {
				first := slices.Min(ends)
				st.add("first follower end", since(first))
				all := append([]int64{le}, ends...)
				slices.Sort(all)
				st.add("quorum durable", since(all[1]))
				st.add("leader-gated excess", float64(max(0, le-first))/1e3)
			}
			if a, _, ok := leader.applied.get(s.index); ok {
				st.add("leader FSM apply", since(a))
			}
			st.add("apply returned", since(s.end))
		}
	}
	fmt.Printf("%d clients, %d ops in %v: %.0f ops/s, store %s\n", clients, count, elapsed.Round(time.Millisecond), float64(count)/elapsed.Seconds(), storeKind)
	st.print(os.Stdout)
	return nil
}

// waitForChange waits a little for a node's leadership to change.
func waitForChange(nodes []*node) {
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-nodes[0].r.LeaderCh():
	case <-nodes[1].r.LeaderCh():
	case <-nodes[2].r.LeaderCh():
	case <-t.C:
	}
}

// stageTable collects samples per stage, in the order stages first appear.
type stageTable struct {
	names []string
	vals  map[string][]float64
}

func (t *stageTable) add(name string, v float64) {
	if t.vals == nil {
		t.vals = map[string][]float64{}
	}
	if _, ok := t.vals[name]; !ok {
		t.names = append(t.names, name)
	}
	t.vals[name] = append(t.vals[name], v)
}

// print writes p10, p50, p90 and p99 of every stage, sorted by median.
func (t *stageTable) print(w io.Writer) {
	type row struct {
		name string
		p    [4]float64
	}
	var rows []row
	for _, n := range t.names {
		v := t.vals[n]
		sort.Float64s(v)
		q := func(f float64) float64 { return v[min(len(v)-1, int(f*float64(len(v))))] }
		rows = append(rows, row{n, [4]float64{q(0.1), q(0.5), q(0.9), q(0.99)}})
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].p[1] < rows[j].p[1] })
	fmt.Fprintf(w, "%-24s %9s %9s %9s %9s   (µs after Apply; batches in entries)\n", "stage", "p10", "p50", "p90", "p99")
	for _, r := range rows {
		fmt.Fprintf(w, "%-24s %9.0f %9.0f %9.0f %9.0f\n", r.name, r.p[0], r.p[1], r.p[2], r.p[3])
	}
}
