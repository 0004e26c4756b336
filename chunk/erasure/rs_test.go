package erasure

import "testing"

// Small objects each have a block size of their own length: the codec
// cache must not grow with every size pushed.
func TestRSCacheBoundedBySizeClass(t *testing.T) {
	s := Scheme{K: 1, M: 1}
	count := func() (n int) {
		rsCache.Range(func(k, _ any) bool {
			if k.(rsKey).s == s {
				n++
			}
			return true
		})
		return n
	}
	before := count()
	for size := 4097; size <= 8192; size++ {
		if _, err := rsFor(s, size); err != nil {
			t.Fatal(err)
		}
	}
	if added := count() - before; added > 1 {
		t.Fatalf("%d codecs cached for block sizes 4097..8192, want at most 1", added)
	}
}
