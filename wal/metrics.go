package wal

import "github.com/quorumkit/raft/wal/metrics"

// MetricDefinitions lists every counter and gauge the WAL reports through
// its metrics.Collector, with raft-wal's names, for collectors that want
// them declared up front.
var MetricDefinitions = metrics.Definitions{
	Counters: []metrics.Descriptor{
		{Name: "log_entry_bytes_written", Desc: "Bytes of encoded entries appended (frame headers, padding and index frames not included)."},
		{Name: "log_entries_written", Desc: "Entries appended."},
		{Name: "log_appends", Desc: "Batches appended: calls of StoreLog and StoreLogs that wrote."},
		{Name: "log_entry_bytes_read", Desc: "Bytes of encoded entries read, before decoding."},
		{Name: "log_entries_read", Desc: "Calls of GetLog."},
		{Name: "segment_rotations", Desc: "Times a full segment was sealed and a new one started."},
		{Name: "head_truncations", Desc: "Entries removed from the head (the oldest end) of the log."},
		{Name: "tail_truncations", Desc: "Entries removed from the tail (the newest end) of the log."},
		{Name: "stable_gets", Desc: "Calls of Get and GetUint64."},
		{Name: "stable_sets", Desc: "Calls of Set and SetUint64."},
	},
	Gauges: []metrics.Descriptor{
		{Name: "last_segment_age_seconds", Desc: "Seconds between the creation and the sealing of the segment sealed last: how fast writes fill segments."},
	},
}
