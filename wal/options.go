package wal

import (
	"fmt"
	"math"

	"github.com/hashicorp/go-hclog"
	"github.com/quorumkit/raft/wal/fs"
	"github.com/quorumkit/raft/wal/metadb"
	"github.com/quorumkit/raft/wal/metrics"
	"github.com/quorumkit/raft/wal/segment"
	"github.com/quorumkit/raft/wal/types"
)

// walOpt is an option for Open.
type walOpt func(*WAL)

// WithCodec sets the codec entries are encoded with (default BinaryCodec).
// A custom codec's ID must be at least FirstExternalCodecID.
func WithCodec(c Codec) walOpt {
	return func(w *WAL) { w.codec = c }
}

// WithMetaStore sets the meta store (default wal-meta.db in the
// directory). A store given here belongs to the caller: Close leaves it
// open.
func WithMetaStore(db types.MetaStore) walOpt {
	return func(w *WAL) { w.metaDB = db }
}

// WithSegmentFiler sets the segment filer (default: package segment's,
// on the operating system's files). Another filer's segment writers may
// keep the entries Append gives them, Data included: the WAL never
// reuses a batch's buffers with them.
func WithSegmentFiler(sf types.SegmentFiler) walOpt {
	return func(w *WAL) { w.sf = sf }
}

// WithLogger sets the logger (default hclog's default, named "wal").
func WithLogger(logger hclog.Logger) walOpt {
	return func(w *WAL) { w.log = logger }
}

// WithSegmentSize sets the size new segment files are preallocated to and
// sealed at (default DefaultSegmentSize). It must be positive and below
// 2 GiB.
func WithSegmentSize(size int) walOpt {
	return func(w *WAL) { w.segmentSize = size }
}

// WithMetricsCollector sets where metrics go (default nowhere). See
// MetricDefinitions for the names.
func WithMetricsCollector(c metrics.Collector) walOpt {
	return func(w *WAL) { w.metrics = c }
}

func (w *WAL) applyDefaultsAndValidate() error {
	if w.codec != nil && w.codec.ID() < FirstExternalCodecID {
		if _, ours := w.codec.(*BinaryCodec); !ours {
			return fmt.Errorf("codec is using a reserved ID (below %d)", FirstExternalCodecID)
		}
	}
	if w.segmentSize < 0 || w.segmentSize > math.MaxInt32 {
		return fmt.Errorf("segment size %d is outside 1..%d", w.segmentSize, math.MaxInt32)
	}
	if w.log == nil {
		w.log = hclog.Default().Named("wal")
	}
	if w.codec == nil {
		w.codec = &BinaryCodec{}
	}
	if w.sf == nil {
		w.sf = segment.NewFiler(w.dir, fs.New())
	}
	_, w.reuseBufs = w.sf.(*segment.Filer)
	if w.metrics == nil {
		w.metrics = &metrics.NoOpCollector{}
	}
	if w.metaDB == nil {
		w.metaDB = &metadb.BoltMetaDB{}
		w.ownMeta = true
	}
	if w.segmentSize == 0 {
		w.segmentSize = DefaultSegmentSize
	}
	return nil
}
