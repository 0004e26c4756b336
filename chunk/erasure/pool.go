package erasure

import (
	"math/bits"
	"sync"
)

// Buffers are pooled in power-of-two size classes because first-touching
// fresh memory is expensive on the target machines (~13us per 4 KiB page, so
// ~20 ms for a fresh 4+2 stripe of 1 MiB blocks): a transfer should reuse the
// stripe buffers of the previous one instead of faulting in new pages. Classes
// rather than exact sizes keep the number of pools bounded even though short
// last stripes come in every size.
const (
	minSlabShift = 12 // 4 KiB
	maxSlabShift = 30 // 1 GiB; larger requests are not pooled
)

var slabPools [maxSlabShift + 1]sync.Pool

// getSlab returns a buffer of length n with unspecified contents.
func getSlab(n int) *[]byte {
	shift := max(minSlabShift, bits.Len(uint(n-1)))
	if n <= 0 {
		shift = minSlabShift
	}
	if shift > maxSlabShift {
		b := make([]byte, n)
		return &b
	}
	if p, ok := slabPools[shift].Get().(*[]byte); ok {
		*p = (*p)[:n]
		return p
	}
	b := make([]byte, n, 1<<shift)
	return &b
}

// putSlab returns a buffer obtained from getSlab to its pool.
func putSlab(p *[]byte) {
	c := cap(*p)
	if c < 1<<minSlabShift || c > 1<<maxSlabShift || c&(c-1) != 0 {
		return
	}
	slabPools[bits.Len(uint(c))-1].Put(p)
}
