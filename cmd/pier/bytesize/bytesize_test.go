package bytesize

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "512": 512, "10K": 10 << 10, "64m": 64 << 20, "50G": 50 << 30, "2TiB": 2 << 40,
		"1gb": 1 << 30, "1GiB": 1 << 30, " 3M ": 3 << 20, "4096B": 4096,
	} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "G", "-1", "-1M", "1.5G", "10X", "x", "99999999999T"} {
		if _, err := Parse(bad); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) = %v, want ErrSyntax", bad, err)
		}
	}
}
