package raft

import "testing"

func TestQuorumSize(t *testing.T) {
	for n, want := range map[int]int{0: 1, 1: 1, 2: 2, 3: 2, 4: 3, 5: 3, 6: 4, 7: 4} {
		if got := quorumSize(n); got != want {
			t.Errorf("quorumSize(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestQuorumMatchIndex(t *testing.T) {
	cases := []struct {
		name   string
		voters []ServerID
		match  map[ServerID]uint64
		want   uint64
	}{
		{"no voters", nil, nil, 0},
		{"single voter", []ServerID{"a"}, map[ServerID]uint64{"a": 7}, 7},
		{"two voters need both", []ServerID{"a", "b"}, map[ServerID]uint64{"a": 7, "b": 3}, 3},
		{"three voters take the median", []ServerID{"a", "b", "c"}, map[ServerID]uint64{"a": 9, "b": 4, "c": 6}, 6},
		{"missing voter counts as zero", []ServerID{"a", "b", "c"}, map[ServerID]uint64{"a": 9, "b": 4}, 4},
		{"four voters need three", []ServerID{"a", "b", "c", "d"}, map[ServerID]uint64{"a": 10, "b": 8, "c": 6, "d": 1}, 6},
		{"five voters need three", []ServerID{"a", "b", "c", "d", "e"}, map[ServerID]uint64{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}, 3},
		{"non-voters are ignored", []ServerID{"a", "b", "c"}, map[ServerID]uint64{"a": 5, "b": 5, "c": 1, "nv": 100}, 5},
		{"all equal", []ServerID{"a", "b", "c"}, map[ServerID]uint64{"a": 4, "b": 4, "c": 4}, 4},
	}
	for _, c := range cases {
		if got := quorumMatchIndex(c.voters, c.match); got != c.want {
			t.Errorf("%s: quorumMatchIndex = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestNextCommitIndex(t *testing.T) {
	cases := []struct {
		name                             string
		current, quorum, termStart, want uint64
	}{
		{"advances to an entry of the current term", 3, 8, 5, 8},
		{"advances exactly at the term's first entry", 3, 5, 5, 5},
		{"never counts an older term's entry", 3, 4, 5, 3},
		{"never moves back", 9, 6, 5, 9},
		{"stays when the quorum has not moved", 6, 6, 5, 6},
		{"first leader commits from index one", 0, 1, 1, 1},
	}
	for _, c := range cases {
		if got := nextCommitIndex(c.current, c.quorum, c.termStart); got != c.want {
			t.Errorf("%s: nextCommitIndex(%d, %d, %d) = %d, want %d", c.name, c.current, c.quorum, c.termStart, got, c.want)
		}
	}
}
