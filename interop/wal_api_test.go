package interop

import (
	"sort"
	"strings"
	"testing"

	_ "github.com/hashicorp/raft-wal"
	_ "github.com/hashicorp/raft-wal/fs"
	_ "github.com/hashicorp/raft-wal/metadb"
	_ "github.com/hashicorp/raft-wal/metrics"
	_ "github.com/hashicorp/raft-wal/migrate"
	_ "github.com/hashicorp/raft-wal/segment"
	_ "github.com/hashicorp/raft-wal/types"
	_ "github.com/quorumkit/raft/wal"
	_ "github.com/quorumkit/raft/wal/fs"
	_ "github.com/quorumkit/raft/wal/metadb"
	_ "github.com/quorumkit/raft/wal/metrics"
	_ "github.com/quorumkit/raft/wal/migrate"
	_ "github.com/quorumkit/raft/wal/segment"
	_ "github.com/quorumkit/raft/wal/types"
)

// The raft-wal packages whose APIs are compared: the root package of each
// library and these sub-packages.
const (
	walRefPath = "github.com/hashicorp/raft-wal"
	walOurPath = "github.com/quorumkit/raft/wal"
)

var walAPISubpackages = []string{"", "/types", "/metrics", "/migrate", "/metadb", "/fs", "/segment"}

// walOptional are names in raft-wal v0.4.0's packages that are not part
// of our contract, each with the reason.
var walOptional = map[string]string{
	// Debugging helpers of the segment package (raft-wal's waldump uses
	// them); the segment readers and writers are reached through the
	// types interfaces, not by these concrete types' extra methods.
	"segment:Filer.DumpLogs":        "debug dump",
	"segment:Filer.DumpSegment":     "debug dump",
	"segment:Writer.OffsetForFrame": "internal lookup between raft-wal's reader and writer",
	// raft-wal's fs.File embeds os.File by value; ours embeds *os.File.
	// Both have os.File's methods; nobody builds one by hand.
	"fs:File fields": "embedding differs, methods are the same",
}

// TestWALAPIMatchesReference checks that every exported name of
// hashicorp/raft-wal v0.4.0 and its public sub-packages exists in
// quorumkit/raft/wal with the same signature (types from hashicorp/raft
// read as ours, armon/go-metrics as hashicorp/go-metrics: both packages
// are called metrics), so that a program compiles after changing only
// its import paths.
func TestWALAPIMatchesReference(t *testing.T) {
	const ref, ours = walRefPath, walOurPath
	checked := 0
	for _, sub := range walAPISubpackages {
		refAPI := loadAPI(t, ref+sub)
		ourAPI := loadAPI(t, ours+sub)
		pkg := strings.TrimPrefix(sub, "/")
		var keys []string
		for k := range refAPI {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if _, skip := walOptional[pkg+":"+k]; skip {
				continue
			}
			got, ok := ourAPI[k]
			switch {
			case !ok:
				t.Errorf("wal%s: missing %s: reference has %s", sub, k, refAPI[k])
			case got != refAPI[k]:
				t.Errorf("wal%s: %s differs:\n  reference: %s\n  ours:      %s", sub, k, refAPI[k], got)
			}
			checked++
		}
	}
	t.Logf("%d exported names, fields and methods checked", checked)
}
