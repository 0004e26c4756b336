package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// memory is the process's footprint after a full collection.
type memory struct {
	RSS      int64 // VmRSS: what the machine gives the process
	HeapLive int64 // bytes the last GC found reachable
	// HeapUnused is the free room in spans that hold live objects:
	// what fragmentation costs. Metadata is the runtime's own.
	HeapUnused, Metadata int64
}

// settle collects twice and returns freed pages to the OS, so that RSS
// counts what the state holds rather than garbage not yet swept.
func settle() memory {
	runtime.GC()
	debug.FreeOSMemory()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/metadata/other:bytes"}, {Name: "/memory/classes/metadata/mspan/inuse:bytes"}}
	metrics.Read(s)
	return memory{RSS: procStatus("VmRSS"), HeapLive: int64(s[0].Value.Uint64()),
		HeapUnused: int64(s[1].Value.Uint64()), Metadata: int64(s[2].Value.Uint64() + s[3].Value.Uint64())}
}

// resetPeak starts a new peak: Linux sets VmHWM back to the current RSS
// when "5" is written to clear_refs. It fails on kernels without it, and
// the phase's peak then counts the phases before it too.
func resetPeak() error {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return fmt.Errorf("reset peak RSS: %w", err)
	}
	return nil
}

// procStatus reads a kB field of /proc/self/status, in bytes; -1 if absent.
func procStatus(field string) int64 {
	return procField("/proc/self/status", field+":")
}

// loadAverage is the first field of /proc/loadavg; "?" if unreadable.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
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

// stalls reads the runtime's histograms of stop-the-world GC pauses and
// of the time goroutines waited to run once runnable: what can hold up
// an Apply that no lock does.
type stalls struct{ pauses, waits *metrics.Float64Histogram }

func readStalls() stalls {
	s := []metrics.Sample{{Name: "/sched/pauses/total/gc:seconds"}, {Name: "/sched/latencies:seconds"}}
	metrics.Read(s)
	return stalls{s[0].Value.Float64Histogram(), s[1].Value.Float64Histogram()}
}

// worstSince returns the longest GC pause and run-queue wait since
// before, as the upper bound of the highest histogram bucket that grew:
// the stall was at most that.
func (now stalls) worstSince(before stalls) (pause, wait time.Duration) {
	return worstGrown(before.pauses, now.pauses), worstGrown(before.waits, now.waits)
}

func worstGrown(before, now *metrics.Float64Histogram) time.Duration {
	for i := len(now.Counts) - 1; i >= 0; i-- {
		if now.Counts[i] > before.Counts[i] {
			upper := now.Buckets[i+1]
			if math.IsInf(upper, 1) {
				upper = now.Buckets[i]
			}
			return time.Duration(upper * float64(time.Second))
		}
	}
	return 0
}

func (m memory) String() string {
	return fmt.Sprintf("RSS %s (heap live %s, free in used spans %s, runtime metadata %s)",
		fmtBytes(m.RSS), fmtBytes(m.HeapLive), fmtBytes(m.HeapUnused), fmtBytes(m.Metadata))
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
