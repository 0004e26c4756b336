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

// physicalMemory returns the memory this process may use, in bytes: the
// machine's, or its cgroup's limit where that is lower (a container sees
// the host's MemTotal); 0 if unknown.
func physicalMemory() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	var kb int64
	if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err != nil {
		return 0
	}
	total := kb << 10
	if lim, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		var n int64
		if _, err := fmt.Sscanf(string(lim), "%d", &n); err == nil && n > 0 && n < total {
			total = n
		}
	}
	return total
}
