package interop

import (
	"io"
	"sync/atomic"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
	qraft "github.com/quorumkit/raft"
)

// The rolling migration stops a node with Shutdown().Error(), closes its
// bolt file and opens the file with the other library. With the reference
// that is safe: Shutdown waits for every goroutine it started, so once
// Error returns no store call is in progress and none follows. Ours does
// not wait for a store call in progress (routines.go "parks" goroutines
// inside store calls), even one that returns a moment later, so the store
// can still be written after Shutdown returned: the migration test saw a
// follower's bolt file gain an entry between Shutdown returning and the
// file being closed. An application that closes or reuses its stores
// after Shutdown, as the reference allows, races with that write.
//
// The test below shows it with a single node whose StoreLogs is slow but
// returns (a slow disk, not a hung one): Shutdown is called while the
// leader's log write is in progress, and the write must have finished
// when Shutdown's future returns, in both libraries. (Ours waits for store
// calls for a bounded grace period; only a call that hangs longer is
// abandoned.)

// crosslibSlowWrites is how long each slowed StoreLogs takes.
const crosslibSlowWrites = 300 * time.Millisecond

// crosslibSlowLogs counts StoreLogs calls in progress; once slow is set, each
// call sleeps before storing.
type crosslibSlowLogs struct {
	inFlight atomic.Int64
	slow     atomic.Bool
	started  chan struct{} // receives once a slowed call has begun
}

func (s *crosslibSlowLogs) enter() func() {
	s.inFlight.Add(1)
	if s.slow.Load() {
		select {
		case s.started <- struct{}{}:
		default:
		}
		time.Sleep(crosslibSlowWrites)
	}
	return func() { s.inFlight.Add(-1) }
}

type crosslibSlowOurStore struct {
	*qraft.InmemStore
	*crosslibSlowLogs
}

func (s crosslibSlowOurStore) StoreLog(l *qraft.Log) error { return s.StoreLogs([]*qraft.Log{l}) }
func (s crosslibSlowOurStore) StoreLogs(logs []*qraft.Log) error {
	defer s.enter()()
	return s.InmemStore.StoreLogs(logs)
}

type crosslibSlowRefStore struct {
	*hraft.InmemStore
	*crosslibSlowLogs
}

func (s crosslibSlowRefStore) StoreLog(l *hraft.Log) error { return s.StoreLogs([]*hraft.Log{l}) }
func (s crosslibSlowRefStore) StoreLogs(logs []*hraft.Log) error {
	defer s.enter()()
	return s.InmemStore.StoreLogs(logs)
}

func TestCrossLibShutdownWaitsForStoreWritesInFlight(t *testing.T) {
	for _, lib := range []mixedLib{libRef, libOurs} {
		t.Run(string(lib), func(t *testing.T) {
			slow := &crosslibSlowLogs{started: make(chan struct{}, 1)}
			var shutdown func() error
			var apply func()
			var isLeader func() bool
			switch lib {
			case libOurs:
				conf := qraft.DefaultConfig()
				conf.LocalID = "n1"
				conf.LogOutput = io.Discard
				conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond
				store := crosslibSlowOurStore{qraft.NewInmemStore(), slow}
				addr, trans := qraft.NewInmemTransport("n1")
				snaps := qraft.NewInmemSnapshotStore()
				cfg := qraft.Configuration{Servers: []qraft.Server{{Suffrage: qraft.Voter, ID: "n1", Address: addr}}}
				if err := qraft.BootstrapCluster(conf, store, store, snaps, trans, cfg); err != nil {
					t.Fatal(err)
				}
				r, err := qraft.NewRaft(conf, mixedOurFSM{&mixedFSM{}}, store, store, snaps, trans)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { r.Shutdown() })
				shutdown = func() error { return r.Shutdown().Error() }
				apply = func() { r.Apply([]byte("x"), 0) }
				isLeader = func() bool { return r.State() == qraft.Leader }
			case libRef:
				conf := hraft.DefaultConfig()
				conf.LocalID = "n1"
				conf.LogOutput = io.Discard
				conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond
				store := crosslibSlowRefStore{hraft.NewInmemStore(), slow}
				addr, trans := hraft.NewInmemTransport("n1")
				snaps := hraft.NewInmemSnapshotStore()
				cfg := hraft.Configuration{Servers: []hraft.Server{{Suffrage: hraft.Voter, ID: "n1", Address: addr}}}
				if err := hraft.BootstrapCluster(conf, store, store, snaps, trans, cfg); err != nil {
					t.Fatal(err)
				}
				r, err := hraft.NewRaft(conf, mixedRefFSM{&mixedFSM{}}, store, store, snaps, trans)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { r.Shutdown() })
				shutdown = func() error { return r.Shutdown().Error() }
				apply = func() { r.Apply([]byte("x"), 0) }
				isLeader = func() bool { return r.State() == hraft.Leader }
			}
			if !mixedPollUntil(mixedSettle, isLeader) {
				t.Fatal("the single node did not become leader")
			}
			slow.slow.Store(true)
			go apply()
			select {
			case <-slow.started:
			case <-time.After(mixedSettle):
				t.Fatal("no log write began after Apply")
			}
			if err := mixedWait(shutdown, mixedFutureDeadline); err != nil {
				t.Fatal(err)
			}
			if n := slow.inFlight.Load(); n != 0 {
				t.Fatalf("Shutdown().Error() returned while %d StoreLogs call(s) were still in progress; "+
					"the reference waits for them, so callers may close their stores at once", n)
			}
		})
	}
}
