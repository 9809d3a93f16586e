package interop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"
)

// crosslibSnapshotSettings keep every node on disk and make both
// libraries snapshot every few dozen entries and keep few entries behind a
// snapshot, so that a follower cut off for a few hundred entries can only
// catch up from a snapshot.
var crosslibSnapshotSettings = mixedSettings{
	onDisk:            true,
	timing:            mixedFailoverTiming,
	snapshotThreshold: 32,
	trailingLogs:      16,
	snapshotInterval:  100 * time.Millisecond,
	retain:            3,
}

const (
	// crosslibCutCommands are applied while a follower is cut off: far more
	// than the trailing logs, so the leader's log moves past the follower.
	crosslibCutCommands = 150
	// crosslibPad makes each command about 2 KiB, so the snapshot streamed
	// to the follower is hundreds of KiB, more than one buffer of either
	// transport.
	crosslibPad = 2000
)

// TestCrossLibSnapshotInstallBothWays runs a cluster of one node of ours
// and two of the reference, all on raft-boltdb files and FileSnapshotStore
// directories, with small snapshot thresholds. A follower of the other
// library than the leader is cut off while the leader commits and compacts
// its log past the follower's last entry; once healed, the follower can
// only catch up through an InstallSnapshot streamed across the libraries.
// First a reference leader sends one to our node, then our node, now
// leading, sends one to a reference node. Each time the follower must have
// restored a snapshot into its FSM, and its store must list the snapshot
// at the leader's index and term, with the same state.bin bytes as the
// leader's file and the same meta.json but for the ID. At the end every FSM
// holds the same commands, each once.
func TestCrossLibSnapshotInstallBothWays(t *testing.T) {
	parallelUnlessRace(t)
	start := time.Now()
	c := newCluster(t, crosslibSnapshotSettings)
	o1 := c.addNode("ours-1", libOurs)
	r2 := c.addNode("reference-2", libRef)
	r3 := c.addNode("reference-3", libRef)
	c.bootstrap(o1, r2, r3)
	c.waitLeader()
	c.submitMany("warmup", 10, 0)

	crosslibInstallAcross(c, r2, o1, "ref-to-ours")
	crosslibInstallAcross(c, o1, r3, "ours-to-ref")

	fence := c.mustSubmit("fence")
	seq := c.checkSameHistory(fence.index)
	c.checkOnce(seq, nil)
	t.Logf("%d commands in %d log entries, identical on all nodes; took %v", len(seq), fence.index, time.Since(start).Round(time.Millisecond))
}

// crosslibInstallAcross makes leader lead, cuts follower off, commits until
// the leader's log is compacted past the follower, heals the follower and
// checks that it caught up through a snapshot the leader sent. A loaded
// machine can move leadership while the follower is cut off, and the
// leader can send the follower entries it read before compacting them
// (checked to lose none); the round is then repeated.
func crosslibInstallAcross(c *mixedCluster, leader, follower *mixedNode, name string) {
	c.t.Helper()
	for attempt := 1; ; attempt++ {
		if attempt == 4 {
			c.t.Fatalf("%s: in three rounds, leadership moved away from %s or %s caught up without a snapshot; cluster: %s", name, leader, follower, c.describe())
		}
		c.leadWith(leader)
		term := leader.term()
		before := c.mustSubmit(fmt.Sprintf("%s-%d-before", name, attempt))
		c.waitApplied(before.index)
		restoresBefore := len(follower.currentFSM().restoreLog())
		_, followerLast, err := follower.logBounds()
		if err != nil {
			c.t.Fatal(err)
		}

		c.logf("%s: cutting %s (%s) off at index %d; %s (%s) leads in term %d",
			name, follower, follower.library(), followerLast, leader, leader.library(), term)
		follower.currentLayer().partition()
		c.submitMany(fmt.Sprintf("%s-%d", name, attempt), crosslibCutCommands, crosslibPad)
		leaderSnaps := c.waitLogCompactedPast(leader, followerLast)
		first, last, _ := leader.logBounds()
		_, followerEnd, err := follower.logBounds()
		if err != nil {
			c.t.Fatal(err)
		}
		c.logf("%s: %s's log holds [%d,%d], its newest snapshot is at %d; healing %s, whose log ends at %d",
			name, leader, first, last, leaderSnaps[0].Index, follower, followerEnd)
		follower.currentLayer().heal()

		after := c.mustSubmit(fmt.Sprintf("%s-%d-after", name, attempt))
		c.waitApplied(after.index)
		if leader.state() != "Leader" || leader.term() != term {
			c.logf("%s: %s no longer leads in term %d, so the snapshot may have come from elsewhere; repeating the round", name, leader, term)
			continue
		}

		// The follower restored a snapshot that skipped what it missed.
		restores := follower.currentFSM().restoreLog()[restoresBefore:]
		if len(restores) == 0 {
			// The leader read the entries before compacting them and sent
			// them after the heal (see harness_catchup_test.go).
			if err := c.checkCaughtUpFromEntries(follower, leader, followerEnd, after.index); err != nil {
				c.t.Fatalf("%s: %s caught up to index %d without restoring a snapshot, and lost entries doing so: %v; cluster: %s",
					name, follower, after.index, err, c.describe())
			}
			c.logf("%s: %s caught up to index %d from entries %s had read before compacting them, without a gap; repeating the round", name, follower, after.index, leader)
			continue
		}
		if r := restores[len(restores)-1]; r.LastIndex <= followerLast {
			c.t.Fatalf("%s: %s restored a snapshot ending at index %d, but its log already reached %d", name, follower, r.LastIndex, followerLast)
		}

		// Its store holds the leader's snapshot, byte for byte.
		followerSnaps, err := follower.snapshots()
		if err != nil {
			c.t.Fatal(err)
		}
		nowSnaps, err := leader.snapshots()
		if err != nil {
			c.t.Fatal(err)
		}
		var got *mixedSnap
		for i, s := range followerSnaps {
			if s.Index > followerLast && (mixedSnapHas(leaderSnaps, s.Index, s.Term) || mixedSnapHas(nowSnaps, s.Index, s.Term)) {
				got = &followerSnaps[i]
				break
			}
		}
		if got == nil {
			c.t.Fatalf("%s: %s lists snapshots %v, none at an index and term of %s's snapshots %v / %v",
				name, follower, followerSnaps, leader, leaderSnaps, nowSnaps)
		}
		c.logf("%s: %s (%s) installed snapshot %s at index %d, term %d from %s (%s); FSM restores %v",
			name, follower, follower.library(), got.ID, got.Index, got.Term, leader, leader.library(), restores)
		crosslibCompareSnapshotFiles(c, leader, follower, *got, nowSnaps)
		return
	}
}

// crosslibCompareSnapshotFiles checks that the follower's copy of a snapshot
// holds the same state.bin bytes as the leader's file, and a meta.json
// equal in every field but the ID, if the leader still keeps it.
func crosslibCompareSnapshotFiles(c *mixedCluster, leader, follower *mixedNode, s mixedSnap, leaderSnaps []mixedSnap) {
	c.t.Helper()
	leaderID := mixedSnapID(leaderSnaps, s.Index, s.Term)
	if leaderID == "" {
		c.logf("%s has already reaped its snapshot at index %d; not comparing files", leader, s.Index)
		return
	}
	want, wantMeta, err := mixedSnapshotFiles(leader, leaderID)
	if err != nil {
		c.logf("reading %s's snapshot %s: %v (reaped meanwhile?); not comparing files", leader, leaderID, err)
		return
	}
	got, gotMeta, err := mixedSnapshotFiles(follower, s.ID)
	if err != nil {
		c.t.Fatalf("reading %s's snapshot %s: %v", follower, s.ID, err)
	}
	if !bytes.Equal(got, want) {
		c.t.Fatalf("%s's snapshot %s holds %d bytes that differ from the %d of %s's %s",
			follower, s.ID, len(got), len(want), leader, leaderID)
	}
	if !reflect.DeepEqual(gotMeta, wantMeta) {
		c.t.Fatalf("%s's meta.json of %s differs from %s's of %s beyond the ID:\n  %s: %v\n  %s: %v",
			follower, s.ID, leader, leaderID, follower, gotMeta, leader, wantMeta)
	}
	if size := strconv.Itoa(len(got)); gotMeta["Size"] != size {
		c.t.Fatalf("%s's snapshot %s: state.bin holds %s bytes, meta.json says %s", follower, s.ID, size, gotMeta["Size"])
	}
	c.logf("%s's state.bin (%d bytes) and meta.json (but for the ID) equal %s's: %v", follower, len(got), leader, gotMeta)
}

// mixedSnapHas reports whether snaps lists a snapshot at index and term.
func mixedSnapHas(snaps []mixedSnap, index, term uint64) bool {
	for _, s := range snaps {
		if s.Index == index && s.Term == term {
			return true
		}
	}
	return false
}

// mixedSnapshotFiles reads state.bin and meta.json of one of n's snapshots
// as they are on disk. meta is every field of meta.json but the ID, which
// names the directory and differs between a leader's copy and the
// follower's; the rest (Version, Index, Term, the legacy Peers,
// Configuration, ConfigurationIndex, Size, CRC) must match.
func mixedSnapshotFiles(n *mixedNode, id string) (state []byte, meta map[string]string, err error) {
	dir := filepath.Join(n.dir, "snapshots", id)
	metaBytes, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return nil, nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(metaBytes, &fields); err != nil {
		return nil, nil, fmt.Errorf("%s/meta.json: %w", id, err)
	}
	meta = map[string]string{}
	for k, v := range fields {
		if k != "ID" {
			meta[k] = string(v)
		}
	}
	state, err = os.ReadFile(filepath.Join(dir, "state.bin"))
	return state, meta, err
}

// mixedSnapID returns the ID of the snapshot at index and term in snaps.
func mixedSnapID(snaps []mixedSnap, index, term uint64) string {
	for _, s := range snaps {
		if s.Index == index && s.Term == term {
			return s.ID
		}
	}
	return ""
}
