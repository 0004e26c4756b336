package main

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The numbers only mean something on an otherwise idle machine. cpuLedger
// compares the CPU the whole machine used during the run with what this
// driver and its children (pier, nginx, wrk) used, so the report can say
// how much went to other processes.
type cpuLedger struct {
	start         time.Time
	machine, ours float64 // CPU seconds at the start
}

// machineBusy is the busy (not idle, not iowait) CPU seconds of the whole
// machine since boot, from /proc/stat at USER_HZ 100.
func machineBusy() float64 {
	for _, l := range strings.Split(readFile("/proc/stat"), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 || f[0] != "cpu" {
			continue
		}
		var total, idle float64
		for i, v := range f[1:] {
			n, _ := strconv.ParseFloat(v, 64)
			if i >= 8 { // guest times are already in user and nice
				break
			}
			total += n
			if i == 3 || i == 4 {
				idle += n
			}
		}
		return (total - idle) / 100
	}
	return 0
}

// ourCPU is the CPU seconds of this process and its reaped descendants.
func ourCPU() float64 {
	var self, kids syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
}

// idleCheck measures how busy the machine is over d before anything starts.
func idleCheck(d time.Duration) (busyFrac float64) {
	m0, o0 := machineBusy(), ourCPU()
	time.Sleep(d)
	other := (machineBusy() - m0) - (ourCPU() - o0)
	return max(other, 0) / d.Seconds() / float64(runtime.NumCPU())
}

func newLedger() *cpuLedger {
	return &cpuLedger{start: time.Now(), machine: machineBusy(), ours: ourCPU()}
}

// other describes the CPU used by other processes since the ledger began;
// call it once every child has been reaped.
func (c *cpuLedger) other() (string, float64) {
	wall := time.Since(c.start).Seconds()
	other := max((machineBusy()-c.machine)-(ourCPU()-c.ours), 0)
	frac := other / wall / float64(runtime.NumCPU())
	return fmt.Sprintf("%.0f CPU-seconds over the run's %.0f s (%.0f%% of the %d CPUs)",
		other, wall, 100*frac, runtime.NumCPU()), frac
}
