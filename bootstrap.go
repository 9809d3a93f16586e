package raft

import (
	"fmt"

	"github.com/hashicorp/go-hclog"
)

// BootstrapCluster writes the initial state of a new cluster to a server's
// stores: term 1 and a first log entry holding configuration, which should
// list every voter. Bootstrap one server (or each voter with the identical
// configuration) once, before its first NewRaft; the others join through
// AddVoter or by being listed. It returns ErrCantBootstrap if the stores
// already hold state, which is safe to ignore.
func BootstrapCluster(conf *Config, logs LogStore, stable StableStore, snaps SnapshotStore, trans Transport, configuration Configuration) error {
	hasState, err := checkClusterArgs(conf, logs, stable, snaps, configuration)
	if err != nil {
		return err
	}
	if hasState {
		return ErrCantBootstrap
	}
	if err := stable.SetUint64(keyCurrentTerm, 1); err != nil {
		return fmt.Errorf("failed to save current term: %w", err)
	}
	entry := &Log{Index: 1, Term: 1, Type: LogConfiguration, Data: EncodeConfiguration(configuration)}
	if conf.ProtocolVersion < 3 {
		entry.Type = LogRemovePeerDeprecated
		entry.Data = encodePeers(configuration, trans)
	}
	if err := logs.StoreLog(entry); err != nil {
		return fmt.Errorf("failed to append configuration entry to log: %w", err)
	}
	return nil
}

// checkClusterArgs makes the checks BootstrapCluster and RecoverCluster
// share: conf and configuration must be valid, and the stores readable. It
// reports whether the stores hold state. The errors of ValidateConfig and
// checkConfiguration are returned as they are, so that callers comparing
// them see the same values.
func checkClusterArgs(conf *Config, logs LogStore, stable StableStore, snaps SnapshotStore, configuration Configuration) (bool, error) {
	if err := ValidateConfig(conf); err != nil {
		return false, err
	}
	if err := checkConfiguration(configuration); err != nil {
		return false, err
	}
	hasState, err := HasExistingState(logs, stable, snaps)
	if err != nil {
		return false, fmt.Errorf("failed to check for existing state: %w", err)
	}
	return hasState, nil
}

// HasExistingState reports whether a server's stores hold any state: a
// current term, log entries or a snapshot.
func HasExistingState(logs LogStore, stable StableStore, snaps SnapshotStore) (bool, error) {
	term, err := stable.GetUint64(keyCurrentTerm)
	switch {
	case err == nil && term > 0:
		return true, nil
	case err != nil && !isNotFound(err):
		return false, fmt.Errorf("failed to read current term: %w", err)
	}
	last, err := logs.LastIndex()
	if err != nil {
		return false, fmt.Errorf("failed to get last log index: %w", err)
	}
	if last > 0 {
		return true, nil
	}
	snapshots, err := snaps.List()
	if err != nil {
		return false, fmt.Errorf("failed to list snapshots: %w", err)
	}
	return len(snapshots) > 0, nil
}

// GetConfiguration returns the latest configuration recorded in a server's
// stores, without starting the server.
func GetConfiguration(conf *Config, fsm FSM, logs LogStore, stable StableStore, snaps SnapshotStore, trans Transport) (Configuration, error) {
	c := *conf
	c.skipStartup = true
	r, err := NewRaft(&c, fsm, logs, stable, snaps, trans)
	if err != nil {
		return Configuration{}, err
	}
	return r.st.configs.latest.Clone(), nil
}

// RecoverCluster forces configuration onto a server's stores, for a
// cluster that lost its quorum and cannot elect a leader. Run it on every
// surviving server, with the servers stopped and the same configuration,
// then start them; see README.md for the procedure.
//
// It rebuilds the FSM from the newest usable snapshot and every command in
// the log after it, takes a snapshot of that state with configuration
// (recorded at configuration index 1), and deletes the whole log. This
// treats every entry in this server's log as committed, including entries
// that may never have been: it is a last resort for an operator who has
// lost the commit information anyway.
//
// fsm is only used to build that snapshot and is left in a state the
// application should not use: start the server afterwards with a fresh
// FSM.
func RecoverCluster(conf *Config, fsm FSM, logs LogStore, stable StableStore, snaps SnapshotStore, trans Transport, configuration Configuration) error {
	hasState, err := checkClusterArgs(conf, logs, stable, snaps, configuration)
	if err != nil {
		return err
	}
	if !hasState {
		return fmt.Errorf("refused to recover cluster with no initial state, this is probably an operator error")
	}
	logger := buildLogger(conf)

	snapshots, err := snaps.List()
	if err != nil {
		return fmt.Errorf("failed to list snapshots: %w", err)
	}
	var lastIndex, lastTerm uint64
	for _, meta := range snapshots {
		_, source, err := snaps.Open(meta.ID)
		if err != nil {
			logger.Error("failed to open snapshot", "id", meta.ID, "error", err)
			continue
		}
		err = fsm.Restore(source)
		source.Close()
		if err != nil {
			logger.Error("failed to restore snapshot", "id", meta.ID, "error", err)
			continue
		}
		lastIndex, lastTerm = meta.Index, meta.Term
		break
	}
	if len(snapshots) > 0 && lastIndex == 0 {
		return fmt.Errorf("failed to restore any of the available snapshots")
	}

	lastLogIndex, err := logs.LastIndex()
	if err != nil {
		return fmt.Errorf("failed to find last log: %w", err)
	}
	for index := lastIndex + 1; index <= lastLogIndex; index++ {
		var entry Log
		if err := logs.GetLog(index, &entry); err != nil {
			return fmt.Errorf("failed to get log at index %d: %w", index, err)
		}
		if entry.Type == LogCommand {
			fsm.Apply(&entry)
		}
		lastIndex, lastTerm = entry.Index, entry.Term
	}

	snapshot, err := fsm.Snapshot()
	if err != nil {
		return fmt.Errorf("failed to snapshot FSM: %w", err)
	}
	defer snapshot.Release()
	sink, err := snaps.Create(SnapshotVersionMax, lastIndex, lastTerm, configuration, 1, trans)
	if err != nil {
		return fmt.Errorf("failed to create snapshot: %w", err)
	}
	if err := snapshot.Persist(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("failed to persist snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("failed to finalize snapshot: %w", err)
	}

	firstLogIndex, err := logs.FirstIndex()
	if err != nil {
		return fmt.Errorf("failed to get first log index: %w", err)
	}
	if lastLogIndex > 0 {
		if err := logs.DeleteRange(firstLogIndex, lastLogIndex); err != nil {
			return fmt.Errorf("log compaction failed: %w", err)
		}
	}
	return nil
}

// restoreState loads the node's state from its stores before it starts.
func (r *Raft) restoreState() error {
	term, err := r.stable.GetUint64(keyCurrentTerm)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("failed to load current term: %w", err)
	}
	votedTerm, err := r.stable.GetUint64(keyLastVoteTerm)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("failed to load last vote term: %w", err)
	}
	votedFor, err := r.stable.Get(keyLastVoteCand)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("failed to load last vote candidate: %w", err)
	}
	r.st.currentTerm, r.st.votedTerm, r.st.votedFor = term, votedTerm, votedFor
	r.pub.term.Store(term)

	restoreFSM := !r.config().NoSnapshotRestoreOnStart && !r.config().skipStartup
	if err := r.restoreSnapshotOnStart(restoreFSM); err != nil {
		return err
	}

	lastIndex, lastTerm, err := lastEntry(r.logs)
	if err != nil {
		return fmt.Errorf("failed to find last log: %w", err)
	}
	if snapIndex := r.st.lastSnapshotIndex; snapIndex > lastIndex {
		lastIndex, lastTerm = snapIndex, r.st.lastSnapshotTerm
	}
	r.st.log.reset(lastIndex, lastTerm)
	r.st.writes.durable = lastIndex
	r.pub.setLastLog(lastIndex, lastTerm)

	if err := r.loadConfigurations(lastIndex); err != nil {
		return err
	}
	if r.RestoreCommittedLogs {
		commit, err := r.logs.LogStore.(CommitTrackingLogStore).GetCommitIndex()
		if err != nil {
			return fmt.Errorf("failed to read commit index from the log store: %w", err)
		}
		commit = min(commit, lastIndex)
		if commit > r.st.commitIndex {
			r.st.commitIndex = commit
			r.pub.commitIndex.Store(commit)
		}
	}
	r.logger.Info("initial configuration",
		"index", r.st.configs.latestIndex,
		"servers", hclog.Fmt("%+v", r.st.configs.latest.Servers))
	return nil
}

// loadConfigurations finds the latest configuration, and the one before it,
// among the log entries after the last snapshot. It reads the log
// backwards and stops at the second configuration entry it finds.
func (r *Raft) loadConfigurations(lastIndex uint64) error {
	first, err := r.logs.FirstIndex()
	if err != nil {
		return fmt.Errorf("failed to read first log index: %w", err)
	}
	first = max(first, r.st.lastSnapshotIndex+1)
	var found []*Log
	for i := lastIndex; i >= first && i > 0 && len(found) < 2; i-- {
		entry := new(Log)
		if err := r.logs.GetLog(i, entry); err != nil {
			return fmt.Errorf("failed to read log entry %d: %w", i, err)
		}
		switch entry.Type {
		case LogConfiguration, LogAddPeerDeprecated, LogRemovePeerDeprecated:
			found = append(found, entry)
		}
	}
	for i := len(found) - 1; i >= 0; i-- {
		if err := checkIncomingEntries(&AppendEntriesRequest{
			Term: found[i].Term, PrevLogEntry: found[i].Index - 1, PrevLogTerm: found[i].Term,
			Entries: []*Log{found[i]},
		}, r.trans); err != nil {
			return fmt.Errorf("corrupted configuration in the log: %w", err)
		}
		r.applyConfigurationEntry(found[i])
	}
	return nil
}
