//go:build !linux

package chunk

import (
	"io"
	"os"
)

// copyDirect writes prefix and then everything r yields to f, through the
// page cache: O_DIRECT is used on Linux only.
func copyDirect(f *os.File, prefix []byte, r io.Reader) (int64, error) {
	if _, err := f.Write(prefix); err != nil {
		return 0, err
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	return io.CopyBuffer(f, r, *bp)
}
