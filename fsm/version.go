package fsm

import (
	"strconv"
	"strings"
)

// CompareVersions orders versions as semantic versions where they are
// ("1.10.0" after "1.9.2", "2.0.0-rc.1" before "2.0.0", a leading "v"
// ignored, build metadata after "+" ignored) and sensibly where they are
// not: dot-separated parts compare as numbers when both are numbers, else
// as text. An empty version comes before every other. It returns -1, 0 or
// +1 as a is lower than, equal to or higher than b.
func CompareVersions(a, b string) int {
	if a == b {
		return 0
	}
	if a == "" || b == "" {
		if a == "" {
			return -1
		}
		return 1
	}
	ar, ap, _ := strings.Cut(trimVersion(a), "-")
	br, bp, _ := strings.Cut(trimVersion(b), "-")
	if c := compareParts(ar, br); c != 0 {
		return c
	}
	// A pre-release comes before its release.
	switch {
	case ap == bp:
		return strings.Compare(a, b) // equal but for spelling: a total order still
	case ap == "":
		return 1
	case bp == "":
		return -1
	}
	return compareParts(ap, bp)
}

func trimVersion(v string) string {
	v = strings.TrimPrefix(strings.TrimPrefix(v, "v"), "V")
	if i := strings.IndexByte(v, '+'); i >= 0 {
		v = v[:i]
	}
	return v
}

// compareParts compares dot-separated parts, numbers as numbers; a
// version with more parts comes after one it extends ("1.2.1" > "1.2").
func compareParts(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range min(len(as), len(bs)) {
		x, y := as[i], bs[i]
		xn, errx := strconv.ParseUint(x, 10, 64)
		yn, erry := strconv.ParseUint(y, 10, 64)
		switch {
		case errx == nil && erry == nil:
			if xn != yn {
				if xn < yn {
					return -1
				}
				return 1
			}
		case errx == nil:
			return -1 // numbers before words, as semver's pre-release rule
		case erry == nil:
			return 1
		default:
			if c := strings.Compare(x, y); c != 0 {
				return c
			}
		}
	}
	switch {
	case len(as) < len(bs):
		return -1
	case len(as) > len(bs):
		return 1
	}
	return 0
}

// higherVersion is the listing order by version: higher first, then newer.
func higherVersion(a, b *artifact) bool {
	if c := CompareVersions(a.version, b.version); c != 0 {
		return c > 0
	}
	return a.newer(b)
}
