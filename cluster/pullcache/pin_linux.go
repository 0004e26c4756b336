//go:build linux

package pullcache

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// memCopy copies src into a sealed memory file: its bytes live in memory
// only, and once sealed nothing can write, grow or shrink it, so a check
// of its blocks holds for as long as it exists, whatever becomes of the
// cache file on disk.
func memCopy(src []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate("pier-pull-cache", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "pier-pull-cache")
	err = f.Truncate(int64(len(src)))
	if err == nil {
		_, err = f.WriteAt(src, 0)
	}
	if err == nil {
		_, err = unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("copy pull cache entry into memory: %w", err)
	}
	return f, nil
}

// reopen opens f again with an offset of its own: a reader seeks it
// before each sendfile.
func reopen(f *os.File) (*os.File, error) {
	return os.Open(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
}

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
