package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// touchFreeMemory makes the guest's free memory resident once, before any
// server starts: it maps, populates and unmaps all of it but headroom.
//
// On the VMs these runs use, a page the guest has never touched since boot
// costs far more the first time: writing 4 GiB into tmpfs took 9.1-11.7 s
// of system CPU on fresh memory and 1.4-1.9 s on memory used before
// (2026-12-06, a PVM guest). Whatever grows the page cache in a timed step
// pays that, and which server meets fresh memory depends on the order of
// the rows: nginx's three 1 GiB PUTs of one run went 1,147, 1,029, then
// 338 MB/s at 100% of a core, and MinIO, which writes around the page
// cache, never paid it. Freed pages stay resident unless the hypervisor
// takes them back (the page cache line reports that case).
func touchFreeMemory(headroom int64) (string, error) {
	avail, err := memAvailable()
	if err != nil {
		return "", err
	}
	const chunk = 256 << 20
	target := avail - headroom
	if target < chunk {
		return fmt.Sprintf("not pre-touched (%s available)", fmtBytes(avail)), nil
	}
	start := time.Now()
	var maps [][]byte
	defer func() {
		for _, m := range maps {
			_ = syscall.Munmap(m)
		}
	}()
	var done int64
	for done+chunk <= target {
		m, err := syscall.Mmap(-1, 0, chunk, syscall.PROT_READ|syscall.PROT_WRITE,
			syscall.MAP_ANON|syscall.MAP_PRIVATE|syscall.MAP_POPULATE)
		if err != nil {
			break // as far as the kernel lets us: the rest stays as it is
		}
		maps = append(maps, m)
		done += chunk
	}
	return fmt.Sprintf("%s of the %s available made resident once before the servers started, in %s (-touch-memory=false skips it)",
		fmtBytes(done), fmtBytes(avail), time.Since(start).Round(time.Millisecond)), nil
}

func memAvailable() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse MemAvailable: %w", err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no MemAvailable in /proc/meminfo")
}
