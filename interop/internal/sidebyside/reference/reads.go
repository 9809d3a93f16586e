package reference

import (
	"errors"
	"fmt"
	"time"

	hraft "github.com/hashicorp/raft"
	"github.com/quorumkit/raft/interop/internal/sidebyside"
)

// ReadSupport implements sidebyside.Library: the reference reads through
// the log or with VerifyLeader (and Barrier); it has no read index and no
// lease read.
func (Library) ReadSupport(way sidebyside.ReadWay) error {
	switch way {
	case sidebyside.ReadLog, sidebyside.ReadVerify, sidebyside.ReadVerifyBarrier:
		return nil
	case sidebyside.ReadIndex:
		return fmt.Errorf("%w: hashicorp/raft has no ReadIndex", sidebyside.ErrUnsupported)
	case sidebyside.ReadLease:
		return fmt.Errorf("%w: hashicorp/raft has no lease read", sidebyside.ErrUnsupported)
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
	default:
		return 0, Library{}.ReadSupport(way)
	}
	if err != nil {
		return 0, readError(err)
	}
	return n.machine.Get(key), nil
}

// readError marks the library's ErrNotLeader for the driver.
func readError(err error) error {
	if errors.Is(err, hraft.ErrNotLeader) {
		return fmt.Errorf("%w: %w", sidebyside.ErrNotLeader, err)
	}
	return err
}
