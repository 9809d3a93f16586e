package raft

// Metric keys of the write path, built once. A key written as a literal
// at the call is a slice allocated on every call, since go-metrics keeps
// what it is given; on the write path that is several allocations per
// entry (every node's FSM, the leader's commit time, each request's
// transport figures). go-metrics never writes into a key it is given (it
// copies before prefixing), so one slice serves every call.
var (
	keyFSMApply         = []string{"raft", "fsm", "apply"}
	keyFSMApplyBatch    = []string{"raft", "fsm", "applyBatch"}
	keyFSMApplyBatchNum = []string{"raft", "fsm", "applyBatchNum"}
	keyDispatchNumLogs  = []string{"raft", "leader", "dispatchNumLogs"}
	keyDispatchLog      = []string{"raft", "leader", "dispatchLog"}
	keyCommitNumLogs    = []string{"raft", "commitNumLogs"}
	keyCommitTime       = []string{"raft", "commitTime"}
	keyStoreLogs        = []string{"raft", "rpc", "appendEntries", "storeLogs"}
	keyAppendEntries    = []string{"raft", "rpc", "appendEntries"}
	keyProcessLogs      = []string{"raft", "rpc", "appendEntries", "processLogs"}
	keyProcessHeartbeat = []string{"raft", "rpc", "processHeartbeat"}
	keyNetGetRPCType    = []string{"raft", "net", "getRPCType"}
	keyNetRPCDecode     = []string{"raft", "net", "rpcDecode"}
	keyNetRPCEnqueue    = []string{"raft", "net", "rpcEnqueue"}
	keyNetRPCRespond    = []string{"raft", "net", "rpcRespond"}
	keyApply            = []string{"raft", "apply"}
)
