package ours

import (
	"errors"
	"fmt"
	"time"

	qraft "github.com/quorumkit/raft"
	"github.com/quorumkit/raft/interop/internal/sidebyside"
)

// leaseReader is the lease read of issue 16. Asserting it on *qraft.Raft
// lets this package build before the method exists and use it once it
// does.
type leaseReader interface {
	ReadLease(timeout time.Duration) qraft.IndexFuture
}

// hasReadLease says whether this build of the library has ReadLease.
func hasReadLease() bool {
	_, ok := any((*qraft.Raft)(nil)).(leaseReader)
	return ok
}

// ReadSupport implements sidebyside.Library: every way but leases is
// there; leases need both the method and the configuration in leases.go.
// Whether a follower answers ReadIndex only a running cluster can say.
func (Library) ReadSupport(way sidebyside.ReadWay) error {
	switch way {
	case sidebyside.ReadLog, sidebyside.ReadVerify, sidebyside.ReadVerifyBarrier, sidebyside.ReadIndex:
		return nil
	case sidebyside.ReadLease:
		if !hasReadLease() {
			return fmt.Errorf("%w: this build of the library has no ReadLease method", sidebyside.ErrUnsupported)
		}
		if !configureLeases(qraft.DefaultConfig()) {
			return fmt.Errorf("%w: ReadLease exists but leases are not configured (interop/internal/sidebyside/ours/leases.go)", sidebyside.ErrUnsupported)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown read way %q", sidebyside.ErrUnsupported, way)
}

// Read implements sidebyside.Node.
func (n *node) Read(way sidebyside.ReadWay, key uint32, timeout time.Duration) (uint64, error) {
	var err error
	switch way {
	case sidebyside.ReadLog:
		f := n.raft.Apply(sidebyside.GetCommand(key), timeout)
		if err := f.Error(); err != nil {
			return 0, readError(err)
		}
		v, ok := f.Response().(uint64)
		if !ok {
			return 0, fmt.Errorf("a get command answered %T, not uint64", f.Response())
		}
		return v, nil
	case sidebyside.ReadVerify:
		err = n.raft.VerifyLeader().Error()
	case sidebyside.ReadVerifyBarrier:
		if err = n.raft.VerifyLeader().Error(); err == nil {
			err = n.raft.Barrier(timeout).Error()
		}
	case sidebyside.ReadIndex:
		err = n.raft.ReadIndex(timeout).Error()
	case sidebyside.ReadLease:
		lr, ok := any(n.raft).(leaseReader)
		if !ok {
			return 0, fmt.Errorf("%w: no ReadLease method", sidebyside.ErrUnsupported)
		}
		err = lr.ReadLease(timeout).Error()
	default:
		return 0, fmt.Errorf("%w: unknown read way %q", sidebyside.ErrUnsupported, way)
	}
	if err != nil {
		return 0, readError(err)
	}
	return n.machine.Get(key), nil
}

// readError marks the library's ErrNotLeader for the driver.
func readError(err error) error {
	if errors.Is(err, qraft.ErrNotLeader) {
		return fmt.Errorf("%w: %w", sidebyside.ErrNotLeader, err)
	}
	return err
}
