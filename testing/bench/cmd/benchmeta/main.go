// Command benchmeta is `make bench-meta`: it measures the metadata state
// machine (package fsm) at growing numbers of artifacts: how long a
// snapshot takes (the Snapshot call, then Persist to io.Discard and to a
// synced file), the worst Apply latency while a snapshot is taken and
// persisted, restore time, queries, and memory per artifact after a
// collection.
//
// Each size runs in a child process of its own, so that one size's heap
// never counts in the next one's RSS. A size is skipped when the previous
// one's peak RSS says it would not fit in the memory available, and a
// child is killed after -timeout.
//
// With -structures N it instead compares the structures the state could be
// kept in (a Go map, google/btree two ways, go-immutable-radix) on N
// artifact names: bytes per key, insert and lookup time. See BENCHMARKS.md,
// "Metadata".
package main

import (
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
	"syscall"
	"time"
)

func main() {
	sizes := flag.String("sizes", envOr("SIZES", "100000,1000000,10000000"), "artifact counts to measure, comma-separated [SIZES]")
	dir := flag.String("dir", os.TempDir(), "where snapshot files are written (and removed)")
	md := flag.String("md", "bin/bench-meta.md", "also write the report as markdown here; empty for none")
	timeout := flag.Duration("timeout", 40*time.Minute, "kill a size's measurement after this long")
	quiet := flag.Int("quiet-applies", 2000, "applies timed with no snapshot running, for comparison")
	one := flag.Int("one", 0, "measure this size in this process and print JSON (the parent runs children so)")
	profile := flag.String("profile", "", "with -one: write CPU profiles of the build and the restore, and heap profiles after each, into this directory")
	structs := flag.Int("structures", 0, "instead, compare candidate table structures on this many keys")
	flag.Parse()
	log.SetFlags(log.Ltime)
	log.SetPrefix("benchmeta ")

	if *structs > 0 {
		compareStructures(*structs, os.Stdout)
		return
	}
	if *one > 0 {
		if err := child(*one, *dir, *quiet, *profile, os.Stdout); err != nil {
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
	rep := report{Commit: commit(), Go: runtime.Version(), CPUs: runtime.NumCPU(), MemTotal: procField("/proc/meminfo", "MemTotal:"), At: time.Now().UTC()}
	var prev *result
	for _, n := range ns {
		if need, avail := estimate(prev, n), memAvailable(); need > 0 && avail > 0 && need > avail*9/10 {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("%d: needs about %s, %s available", n, fmtBytes(need), fmtBytes(avail)))
			log.Printf("skipping %d artifacts: needs about %s, %s available", n, fmtBytes(need), fmtBytes(avail))
			continue
		}
		r, err := runChild(ctx, n, *dir, *quiet, *timeout)
		if ctx.Err() != nil {
			log.Fatal("interrupted")
		}
		if err != nil {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("%d: %v", n, err))
			log.Printf("%d artifacts: %v", n, err)
			continue
		}
		rep.Results = append(rep.Results, r)
		prev = r
	}
	var buf bytes.Buffer
	rep.write(&buf)
	os.Stdout.Write(buf.Bytes())
	if *md != "" {
		if err := os.MkdirAll(filepath.Dir(*md), 0o755); err == nil {
			err = os.WriteFile(*md, buf.Bytes(), 0o644)
		}
		if err != nil {
			log.Printf("write %s: %v", *md, err)
		}
	}
	if len(rep.Results) == 0 {
		os.Exit(1)
	}
}

// estimate scales the previous size's peak RSS to n artifacts, with a
// margin; 0 when nothing was measured yet.
func estimate(prev *result, n int) int64 {
	if prev == nil || prev.PeakRSS <= 0 {
		return 0
	}
	return int64(float64(prev.PeakRSS) / float64(prev.N) * float64(n) * 1.15)
}

// runChild measures n artifacts in a child process of this binary.
func runChild(ctx context.Context, n int, dir string, quiet int, timeout time.Duration) (*result, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own binary: %w", err)
	}
	cmd := exec.CommandContext(ctx, self, "-one", strconv.Itoa(n), "-dir", dir, "-quiet-applies", strconv.Itoa(quiet))
	cmd.Stderr = os.Stderr
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.Output()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return nil, fmt.Errorf("killed after %v", timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("child: %w", err)
	}
	var r result
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("child's result: %w", err)
	}
	return &r, nil
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(strings.ReplaceAll(f, "_", ""))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("size %q is not a positive number", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("no sizes")
	}
	return out, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// commit names the code measured.
func commit() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
