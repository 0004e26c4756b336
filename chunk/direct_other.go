//go:build !linux

package chunk

import (
	"io"
	"os"
)

// copyDirect is copyBuffered: O_DIRECT is used on Linux only.
func copyDirect(f *os.File, prefix []byte, r io.Reader) (int64, error) {
	return copyBuffered(f, prefix, r)
}
