package fuzzy

import (
	"strings"
	"testing"

	"github.com/quorumkit/raft"
)

// Soak seed 3377561023376332390: a leader adopted a user restore at index
// 753, lost the leadership before the no-op after it committed, and
// crashed; restarted, it loaded that snapshot, and the next leader's
// snapshot, whose last command is at 752, replaced it. The checker called
// that an FSM going back. Dropping a restore the cluster never committed
// that way is what the library must do (unconfirmed_snapshot.go); dropping
// one that committed, or going back from anything else, stays a violation.
// "never committed" failed before the checker knew of the case.
func TestChecker_StartRestoreReplacedByTheCommittedHistory(t *testing.T) {
	for _, tc := range []struct {
		name      string
		atStart   bool
		committed bool
		want      string // "" for no violation
	}{
		{name: "never committed", atStart: true},
		{name: "committed", atStart: true, committed: true, want: "which committed"},
		{name: "while running", want: "after reaching index 753"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newChecker()
			id, state := c.newUserRestore(func(uint64) map[string]string { return map[string]string{"k2": "restore-k2"} })
			c.onUserSnapshotStored("n0", &raft.SnapshotMeta{ID: "4-753-9", Index: 753, Term: 4},
				kvSnapshotFile{Restore: id, Data: state})
			if tc.committed {
				c.restoreReturned(id)
			}
			if _, ok := c.onUserRestored("n0#2", id, tc.atStart); !ok {
				t.Fatal("the checker did not find the restore's snapshot")
			}
			c.onRestore("n0#2", 752)
			c.checkApplySequences()
			got := strings.Join(c.violations(), "\n")
			switch {
			case tc.want == "" && got != "":
				t.Fatalf("violations: %s", got)
			case tc.want != "" && !strings.Contains(got, tc.want):
				t.Fatalf("violations %q, want one containing %q", got, tc.want)
			}
		})
	}
}
