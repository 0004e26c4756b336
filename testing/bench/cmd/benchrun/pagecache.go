package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// pageCacheGrowth measures what new page-cache pages cost this machine:
// writing size bytes into a new file right after an equal file was
// deleted, and again after idle seconds. Under a hypervisor that takes
// back the memory a guest leaves free (virtio-balloon free page
// reporting), the second write faults every page in from the host, and
// anything that grows the page cache in a timed phase (a pull cache fill)
// pays that, while a server reading files already cached does not.
func pageCacheGrowth(dir string, size int64, idle time.Duration) (string, error) {
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 31)
	}
	write := func() (wall, sys time.Duration, err error) {
		p := filepath.Join(dir, "pagecache-probe")
		defer os.Remove(p)
		f, err := os.Create(p)
		if err != nil {
			return 0, 0, err
		}
		defer f.Close()
		var r0, r1 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
		start := time.Now()
		for n := int64(0); n < size; n += int64(len(buf)) {
			if _, err := f.Write(buf); err != nil {
				return 0, 0, fmt.Errorf("page cache probe: %w", err)
			}
		}
		wall = time.Since(start)
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
		return wall, time.Duration(r1.Stime.Nano() - r0.Stime.Nano()), nil
	}
	if _, _, err := write(); err != nil { // the pages to reuse
		return "", err
	}
	hotWall, hotSys, err := write()
	if err != nil {
		return "", err
	}
	time.Sleep(idle) // the one wait: the hypervisor's reporting delay is what is measured
	coldWall, coldSys, err := write()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("writing %s into new page-cache pages takes %s (%s system CPU) right after freeing as many, %s (%s) after %s idle",
		fmtBytes(size), hotWall.Round(time.Millisecond), hotSys.Round(time.Millisecond),
		coldWall.Round(time.Millisecond), coldSys.Round(time.Millisecond), idle), nil
}
