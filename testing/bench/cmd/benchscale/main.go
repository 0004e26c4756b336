// Command benchscale is `make bench-scale` (issue 18): in-process clusters
// of 5, 10, 20 and 50 real nodes on 127.0.0.1 (raft, memberlist gossip,
// the peer service, erasure-coded shard stores, each node with its own data
// dir and ports), measuring at each size
//
//  1. membership: three seeds bootstrap raft, the other nodes join through
//     the first one; the time from the last node's start until every
//     node's gossip view holds N alive members, and until the leader has
//     reconciled all N into the raft configuration (at most five voters,
//     the rest non-voters: cluster/leader.go);
//  2. placement balance: 20 objects of 1 MiB per node (at most 1,000)
//     pushed through the HTTP API of every node in turn, then shards per
//     node from the leader's placements: max/mean and min/mean;
//  3. repair: 5 nodes lost (1 of 5 nodes), never the leader, in waves of
//     at most M (the objects' parity, so none is lost); the bytes repair
//     moved (Stats().MovedBytes over survivors) and the time until every
//     object is back to full redundancy, against what the lost nodes held.
//
// Each size runs in a child process of its own (-one N), so its peak RSS
// and file descriptors are its own, and is killed after -timeout. The
// parent prints a markdown table, one column per size, with each metric's
// growth from the smallest to the largest size classified flat, log,
// linear or worse, and writes it to -md. See BENCHMARKS.md, "Scale".
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	sizes := flag.String("sizes", "5,10,20,50", "cluster sizes to measure, comma-separated")
	md := flag.String("md", "bin/bench-scale.md", "also write the report as markdown here; empty for none")
	perNode := flag.Int("per-node", 20, "objects pushed per node")
	maxObjects := flag.Int("max-objects", 1000, "at most this many objects per size")
	objectSize := flag.Int("object-size", 1<<20, "bytes per object")
	conc := flag.Int("concurrency", 4, "pushes in flight")
	lose := flag.Int("lose", 5, "nodes lost in the repair phase (one at 5 nodes or fewer)")
	seeds := flag.Int("seeds", 3, "nodes that bootstrap raft together; the others join")
	wait := flag.Duration("wait", 3*time.Minute, "bound of each wait: convergence, each repair wave")
	pushTimeout := flag.Duration("push-timeout", 10*time.Minute, "bound of the pushes of one size")
	timeout := flag.Duration("timeout", 30*time.Minute, "kill a size's child process after this long")
	dir := flag.String("dir", os.TempDir(), "where the nodes' data dirs are made (and removed)")
	logDir := flag.String("logdir", "bin/bench-scale-logs", "node logs (warnings and errors), one file per size")
	tm := flag.String("timings", "lan", "raft and gossip timings: lan (those of pier serve) or test (testing/clustertest's)")
	one := flag.Int("one", 0, "measure this size in this process and print JSON (the parent runs children so)")
	flag.Parse()
	log.SetFlags(log.Ltime)
	log.SetPrefix("benchscale ")

	ts, ok := timingSets[*tm]
	if !ok {
		log.Fatalf("-timings %q: want lan or test", *tm)
	}
	if *one > 0 {
		p := params{timings: ts, n: *one, seeds: *seeds, perNode: *perNode, maxObjects: *maxObjects, objectSize: *objectSize,
			concurrency: *conc, lose: *lose, wait: *wait, pushTimeout: *pushTimeout}
		if p.n <= 5 {
			p.lose = min(p.lose, 1)
		}
		if err := child(p, *dir, *logDir); err != nil {
			log.Fatal(err)
		}
		return
	}
	ns, err := parseSizes(*sizes)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep := report{Commit: commit(), Go: runtime.Version(), CPUs: runtime.NumCPU(), CPU: cpuModel(),
		MemTotal: memTotal(), At: time.Now().UTC(), Timings: *tm + ", " + ts.text + "; " + maintenanceText, ObjectSize: *objectSize, PerNode: *perNode, MaxObjects: *maxObjects}
	for _, n := range ns {
		load0 := loadavg()
		r, err := runChild(ctx, n, *timeout)
		if ctx.Err() != nil {
			log.Fatal("interrupted")
		}
		if err != nil {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("%d nodes: %v", n, err))
			log.Printf("%d nodes: %v", n, err)
			continue
		}
		r.Load = [2]string{load0, loadavg()}
		rep.Results = append(rep.Results, r)
	}
	var buf bytes.Buffer
	rep.markdown(&buf)
	os.Stdout.Write(buf.Bytes())
	if *md != "" {
		if err := os.MkdirAll(filepath.Dir(*md), 0o755); err == nil {
			err = os.WriteFile(*md, buf.Bytes(), 0o644)
		}
		if err != nil {
			log.Fatal(err)
		}
	}
	if len(rep.Skipped) > 0 {
		os.Exit(1)
	}
}

// child measures one size in this process and prints the result as JSON.
func child(p params, dir, logDir string) error {
	raiseNoFile()
	var err error
	if p.dir, err = os.MkdirTemp(dir, fmt.Sprintf("benchscale-%d-", p.n)); err != nil {
		return err
	}
	defer os.RemoveAll(p.dir)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	lf, err := os.Create(filepath.Join(logDir, fmt.Sprintf("%d.log", p.n)))
	if err != nil {
		return err
	}
	defer lf.Close()
	p.log = &lockedWriter{w: bufio.NewWriter(lf)}
	defer p.log.(*lockedWriter).flush()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := measure(ctx, p)
	return json.NewEncoder(os.Stdout).Encode(r)
}

// runChild runs `benchscale -one n` with this process's flags and reads
// its JSON result; the child's log goes to stderr.
func runChild(ctx context.Context, n int, timeout time.Duration) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := []string{"-one", strconv.Itoa(n)}
	flag.Visit(func(f *flag.Flag) {
		if f.Name != "sizes" && f.Name != "md" && f.Name != "timeout" {
			args = append(args, "-"+f.Name+"="+f.Value.String())
		}
	})
	self, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Stderr = os.Stderr
	// SIGTERM first, so the child stops its nodes and removes its dir.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	out, err := cmd.Output()
	if ctx.Err() != nil {
		return result{}, fmt.Errorf("stopped after %s: %w", timeout, ctx.Err())
	}
	if err != nil {
		return result{}, fmt.Errorf("child: %w", err)
	}
	var r result
	if err := json.Unmarshal(out, &r); err != nil {
		return result{}, fmt.Errorf("child output: %w", err)
	}
	return r, nil
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad size %q", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("no sizes")
	}
	return out, nil
}

// raiseNoFile lifts the soft limit of open files to the hard one: 50 nodes
// hold listeners, gossip sockets, raft pools, peer connections, bolt files.
func raiseNoFile() {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			log.Printf("raise RLIMIT_NOFILE: %v", err)
		}
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w.Flush()
}

// sampler records the process's peak open files and goroutines; the peak
// RSS is the kernel's (VmHWM).
type sampler struct {
	stopc      chan struct{}
	done       chan struct{}
	fds        int
	goroutines int
	hwm        int64
}

func startSampler() *sampler {
	s := &sampler{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
				s.fds = max(s.fds, len(ents))
			}
			s.goroutines = max(s.goroutines, runtime.NumGoroutine())
			select {
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) stop() *sampler {
	close(s.stopc)
	<-s.done
	s.hwm = procKB("/proc/self/status", "VmHWM:")
	return s
}

func rss() int64 { return procKB("/proc/self/status", "VmRSS:") }

// procKB reads a "Key:  123 kB" line of a /proc file, in bytes.
func procKB(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v << 10
			}
		}
	}
	return 0
}

func memTotal() int64 { return procKB("/proc/meminfo", "MemTotal:") }

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), ":"))
		}
	}
	return ""
}

// loadavg is the 1, 5 and 15 minute load averages.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func commit() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
