package sidebyside

import (
	"math"
	"testing"
)

func TestNum(t *testing.T) {
	for _, c := range []struct {
		x    float64
		d    int
		want string
	}{{1234567.891, 0, "1,234,568"}, {999, 0, "999"}, {-12345.5, 1, "-12,345.5"}, {math.NaN(), 2, "n/a"}, {math.Inf(1), 2, "n/a"}} {
		if got := num(c.x, c.d); got != c.want {
			t.Errorf("num(%v, %d) = %q, want %q", c.x, c.d, got, c.want)
		}
	}
}
