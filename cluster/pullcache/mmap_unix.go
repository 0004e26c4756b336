//go:build unix

package pullcache

import (
	"fmt"
	"os"
	"syscall"
)

// mapFile maps the first size bytes of f read-only. Pages past the file's
// end fault when touched, which reads turn into ErrCorrupt.
func mapFile(f *os.File, size int64) (*mapping, error) {
	if size <= 0 || int64(int(size)) != size {
		return nil, fmt.Errorf("map %d bytes: size out of range", size)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map pull cache file: %w", err)
	}
	m := &mapping{data: data}
	m.refs.Store(1)
	return m, nil
}

func unmap(data []byte) error { return syscall.Munmap(data) }
