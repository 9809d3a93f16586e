package sidebyside

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// SplitList splits a comma-separated flag value, dropping blanks around
// and between its items.
func SplitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// ParseCounts parses a comma-separated list of positive counts (clients,
// readers), refusing an empty list.
func ParseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range SplitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, err
		}
		if n < 1 {
			return nil, fmt.Errorf("%d is not a positive count", n)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("no counts given")
	}
	return out, nil
}

// LoadAverage is the first three fields of /proc/loadavg, "n/a" where
// there is none.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "n/a"
	}
	return strings.Join(f[:3], " ")
}
