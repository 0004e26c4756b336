package erasure

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxShards bounds K+M. The shard index is stored in one header byte, but the
// practical limit is the cluster: every shard of an object needs its own node,
// and wider stripes make every read touch more nodes.
const MaxShards = 16

// Scheme is an erasure-coding scheme: K data shards plus M parity shards. Any
// K of the K+M shards rebuild the data.
type Scheme struct {
	K int // data shards
	M int // parity shards
}

// String formats the scheme as "K+M", the form ParseScheme reads.
func (s Scheme) String() string {
	return strconv.Itoa(s.K) + "+" + strconv.Itoa(s.M)
}

// Shards returns K+M, the number of shard files (and nodes) per object.
func (s Scheme) Shards() int { return s.K + s.M }

// Validate reports whether the scheme is usable: K >= 1, M >= 0 and
// K+M <= MaxShards.
func (s Scheme) Validate() error {
	if s.K < 1 || s.M < 0 || s.K+s.M > MaxShards {
		return fmt.Errorf("%w: %d+%d (need K>=1, M>=0, K+M<=%d)", ErrInvalidScheme, s.K, s.M, MaxShards)
	}
	return nil
}

// ParseScheme parses "K+M", e.g. "4+2". Only decimal digits are accepted on
// either side, so config typos such as "4+-1" or " 4+2" fail loudly instead
// of being coerced.
func ParseScheme(str string) (Scheme, error) {
	ks, ms, ok := strings.Cut(str, "+")
	if !ok || !allDigits(ks) || !allDigits(ms) {
		return Scheme{}, fmt.Errorf("%w: %q is not of the form K+M", ErrInvalidScheme, str)
	}
	k, errK := strconv.Atoi(ks)
	m, errM := strconv.Atoi(ms)
	if errK != nil || errM != nil {
		return Scheme{}, fmt.Errorf("%w: %q is not of the form K+M", ErrInvalidScheme, str)
	}
	s := Scheme{K: k, M: m}
	if err := s.Validate(); err != nil {
		return Scheme{}, err
	}
	return s, nil
}

func allDigits(s string) bool {
	if s == "" || len(s) > 3 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// SchemeFor is the default policy mapping the number of live nodes to a
// scheme. It keeps K+M <= liveNodes so every shard gets its own node, gives
// parity as soon as there is a second node, and stops at 4+2: two node
// failures tolerated at 1.5x storage, while every read still touches only
// four nodes. Values below 1 are treated as 1.
func SchemeFor(liveNodes int) Scheme {
	switch {
	case liveNodes <= 1:
		return Scheme{K: 1, M: 0}
	case liveNodes == 2:
		return Scheme{K: 1, M: 1}
	case liveNodes == 3:
		return Scheme{K: 2, M: 1}
	case liveNodes == 4:
		return Scheme{K: 2, M: 2}
	case liveNodes == 5:
		return Scheme{K: 3, M: 2}
	default:
		return Scheme{K: 4, M: 2}
	}
}
