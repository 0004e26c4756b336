package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
)

// memory is the process's footprint after a full collection.
type memory struct {
	RSS      int64 // VmRSS: what the machine gives the process
	HeapLive int64 // bytes the last GC found reachable
}

// settle collects twice and returns freed pages to the OS, so that RSS
// counts what the state holds rather than garbage not yet swept.
func settle() memory {
	runtime.GC()
	debug.FreeOSMemory()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return memory{RSS: procStatus("VmRSS"), HeapLive: int64(s[0].Value.Uint64())}
}

// procStatus reads a kB field of /proc/self/status, in bytes; -1 if absent.
func procStatus(field string) int64 {
	return procField("/proc/self/status", field+":")
}

// memAvailable is the kernel's estimate of memory a new process can use.
func memAvailable() int64 { return procField("/proc/meminfo", "MemAvailable:") }

func procField(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), key)
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return -1
		}
		return kb << 10
	}
	return -1
}

func fmtBytes(n int64) string {
	switch {
	case n < 0:
		return "?"
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}
