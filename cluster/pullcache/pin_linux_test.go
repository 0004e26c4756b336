//go:build linux

package pullcache

import (
	"bytes"
	"io"
	"testing"
)

// A sealed copy holds its bytes and refuses writes, whether it was filled
// through a mapping advised for huge pages or by a write.
func TestMemCopyHoldsItsBytesEitherWay(t *testing.T) {
	orig := hugeShmem
	t.Cleanup(func() { hugeShmem = orig })
	for _, huge := range []bool{false, true} {
		hugeShmem = func() bool { return huge }
		for _, size := range []int{0, 1, 4<<10 + 3, 3<<20 + 17} {
			src := body(size, byte(size))
			f, err := memCopy(src)
			if err != nil {
				t.Fatalf("huge %v, %d bytes: %v", huge, size, err)
			}
			got, err := io.ReadAll(io.NewSectionReader(f, 0, int64(size)+1))
			if err != nil || !bytes.Equal(got, src) {
				t.Fatalf("huge %v, %d bytes: read back %d different bytes, %v", huge, size, len(got), err)
			}
			if _, err := f.WriteAt([]byte("x"), 0); err == nil {
				t.Fatalf("huge %v, %d bytes: a write to the sealed copy succeeded", huge, size)
			}
			if err := f.Truncate(int64(size) + 1); err == nil {
				t.Fatalf("huge %v, %d bytes: the sealed copy grew", huge, size)
			}
			f.Close()
		}
	}
}
