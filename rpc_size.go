package raft

import "fmt"

// Fitting entries into what the transport carries (WithMaxRPCBytes).
//
// The network transport refuses a request larger than its MaxRPCBytes by
// closing the connection. A leader that took an entry too large for one
// AppendEntries, or built a batch too large, would send it again and
// again for ever while the follower never catches up. So Apply refuses an
// entry that cannot fit alone, and replication sizes its batches to fit.

const (
	// appendEntriesFixedBytes bounds what an AppendEntries request takes,
	// as the network transport counts it, beyond its entries and the
	// sender's ID and address (about 130 bytes when measured; the rest is
	// margin).
	appendEntriesFixedBytes = 512
	// entryWireOverhead bounds what one entry takes beyond its Data and
	// Extensions, including the 128 bytes the transport charges each array
	// element (at most about 215 when measured).
	entryWireOverhead = 320
)

// transportRPCLimit returns the request size limit of trans, 0 when it has
// none.
func transportRPCLimit(trans Transport) int64 {
	if t, ok := trans.(WithMaxRPCBytes); ok {
		return max(t.MaxRPCBytes(), 0)
	}
	return 0
}

// appendEntriesOverhead bounds what an AppendEntries from this node takes
// beyond its entries.
func (r *Raft) appendEntriesOverhead() int64 {
	return appendEntriesFixedBytes + int64(len(r.header.ID)+len(r.header.Addr)+len(r.encodedAddr))
}

// checkEntryFits refuses an entry that an AppendEntries holding it alone
// could not carry through this node's transport.
func (r *Raft) checkEntryFits(l *Log) error {
	if r.rpcLimit == 0 {
		return nil
	}
	room := r.rpcLimit - r.appendEntriesOverhead() - entryWireOverhead
	if size := int64(entryBytes(l)); size > room {
		return fmt.Errorf("%w: %d bytes of data and extensions, at most %d fit in the transport's %d-byte requests",
			ErrEntryTooLarge, size, max(room, 0), r.rpcLimit)
	}
	return nil
}

// appendPayloadBudget is the most Data and Extensions bytes one
// AppendEntries of up to maxCount entries may carry: MaxAppendEntriesBytes,
// lowered so that the request fits the transport's limit. A single entry
// is always sent, whatever its size; checkEntryFits saw to it that it fits.
func (r *Raft) appendPayloadBudget(conf *Config, maxCount int) int {
	budget := int64(conf.maxAppendBytes())
	if r.rpcLimit > 0 {
		budget = min(budget, r.rpcLimit-r.appendEntriesOverhead()-int64(maxCount)*entryWireOverhead)
	}
	return int(max(budget, 0))
}
