package raft

import (
	"testing"
	"time"
)

func TestDefaultConfig_MatchesTheReference(t *testing.T) {
	c := DefaultConfig()
	want := Config{
		ProtocolVersion: 3, HeartbeatTimeout: time.Second, ElectionTimeout: time.Second,
		CommitTimeout: 50 * time.Millisecond, MaxAppendEntries: 64, ShutdownOnRemove: true,
		TrailingLogs: 10240, SnapshotInterval: 120 * time.Second, SnapshotThreshold: 8192,
		LeaderLeaseTimeout: 500 * time.Millisecond, LogLevel: "DEBUG",
		LogWriteStallTimeout: 5 * time.Second,
	}
	if *c != want {
		t.Fatalf("DefaultConfig() = %+v\nwant %+v", *c, want)
	}
}

func TestValidateConfig_RejectsEachInvalidField(t *testing.T) {
	valid := func() *Config {
		c := DefaultConfig()
		c.LocalID = "id"
		return c
	}
	if err := ValidateConfig(valid()); err != nil {
		t.Fatalf("a valid configuration was refused: %v", err)
	}
	cases := []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.ProtocolVersion = 0 }, "ProtocolVersion 0 must be >= 1 and <= 3"},
		{func(c *Config) { c.ProtocolVersion = 4 }, "ProtocolVersion 4 must be >= 1 and <= 3"},
		{func(c *Config) { c.ProtocolVersion = -1 }, "ProtocolVersion -1 must be >= 1 and <= 3"},
		{func(c *Config) { c.LocalID = "" }, "LocalID cannot be empty"},
		{func(c *Config) { c.HeartbeatTimeout = 4 * time.Millisecond }, "HeartbeatTimeout is too low"},
		{func(c *Config) { c.ElectionTimeout = 4 * time.Millisecond }, "ElectionTimeout is too low"},
		{func(c *Config) { c.CommitTimeout = 999 * time.Microsecond }, "CommitTimeout is too low"},
		{func(c *Config) { c.MaxAppendEntries = 0 }, "MaxAppendEntries must be positive"},
		{func(c *Config) { c.MaxAppendEntries = -3 }, "MaxAppendEntries must be positive"},
		{func(c *Config) { c.MaxAppendEntries = 1025 }, "MaxAppendEntries is too large"},
		{func(c *Config) { c.SnapshotInterval = 4 * time.Millisecond }, "SnapshotInterval is too low"},
		{func(c *Config) { c.LeaderLeaseTimeout = 4 * time.Millisecond }, "LeaderLeaseTimeout is too low"},
		{func(c *Config) { c.LeaderLeaseTimeout = 2 * time.Second },
			"LeaderLeaseTimeout (2s) cannot be larger than heartbeat timeout (1s)"},
		{func(c *Config) {
			c.ElectionTimeout = 500 * time.Millisecond
			c.LeaderLeaseTimeout = 100 * time.Millisecond
		},
			"ElectionTimeout (500ms) must be equal or greater than Heartbeat Timeout (1s)"},
		{func(c *Config) { c.LogWriteStallTimeout = -time.Second }, "LogWriteStallTimeout (-1s) cannot be negative"},
		{func(c *Config) { c.MaxAppendEntriesBytes = -1 }, "MaxAppendEntriesBytes (-1) cannot be negative"},
		{func(c *Config) { c.MaxUnwrittenBytes = -1 }, "MaxUnwrittenBytes (-1) cannot be negative"},
		{func(c *Config) { c.MaxUnappliedMemoryBytes = -1 }, "MaxUnappliedMemoryBytes (-1) cannot be negative"},
		// The first failing check wins, in the reference's order.
		{func(c *Config) { c.LocalID = ""; c.HeartbeatTimeout = 0 }, "LocalID cannot be empty"},
	}
	for _, tc := range cases {
		c := valid()
		tc.change(c)
		err := ValidateConfig(c)
		if err == nil || err.Error() != tc.want {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
	if err := ValidateConfig(nil); err == nil {
		t.Error("a nil configuration was accepted")
	}
}

func TestValidateConfig_AcceptsZeroSnapshotThresholdAndTrailingLogs(t *testing.T) {
	c := DefaultConfig()
	c.LocalID = "id"
	c.SnapshotThreshold, c.TrailingLogs = 0, 0
	if err := ValidateConfig(c); err != nil {
		t.Fatal(err)
	}
}

func TestReloadConfig(t *testing.T) {
	c := DefaultConfig()
	c.LocalID = "id"
	_, trans := NewInmemTransport("")
	store := NewInmemStore()
	c.skipStartup = true
	r, err := NewRaft(c, &testFSM{}, store, store, NewInmemSnapshotStore(), trans)
	if err != nil {
		t.Fatal(err)
	}
	rc := r.ReloadableConfig()
	if rc.TrailingLogs != 10240 || rc.HeartbeatTimeout != time.Second {
		t.Fatalf("ReloadableConfig() = %+v", rc)
	}
	rc.TrailingLogs = 7
	rc.SnapshotThreshold = 0
	if err := r.ReloadConfig(rc); err != nil {
		t.Fatal(err)
	}
	if got := r.ReloadableConfig(); got != rc {
		t.Fatalf("after reload: %+v, want %+v", got, rc)
	}
	bad := rc
	bad.HeartbeatTimeout = time.Millisecond
	if err := r.ReloadConfig(bad); err == nil || err.Error() != "HeartbeatTimeout is too low" {
		t.Fatalf("invalid reload: %v", err)
	}
	if got := r.ReloadableConfig(); got != rc {
		t.Fatalf("a refused reload changed the config: %+v", got)
	}
}
