// Package bytesize reads sizes as people write them on command lines:
// 512, 10K, 64M, 50G, 2T, with binary multiples (K is 1024) and an optional
// "i" or "B" after the unit (10KiB, 64MB), in any case. pier's flags and the
// benchmark driver's share it, so a size means the same in both.
package bytesize

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrSyntax is wrapped by every error Parse returns.
var ErrSyntax = errors.New("want a whole number of bytes with an optional K, M, G or T (powers of 1024), such as 64M")

// Parse returns the bytes s stands for. Negative numbers, fractions and
// sizes beyond 2^62 bytes are refused.
func Parse(s string) (int64, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	u = strings.TrimSuffix(strings.TrimSuffix(u, "B"), "I")
	mult := int64(1)
	if u != "" {
		switch u[len(u)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			u = u[:len(u)-1]
		}
	}
	n, err := strconv.ParseInt(u, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: %w", s, ErrSyntax)
	}
	return n * mult, nil
}
