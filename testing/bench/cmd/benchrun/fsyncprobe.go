package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// fsyncLatency measures what one durable small write costs on the
// filesystem the nodes store on: n appends of size bytes to one file, each
// followed by an fdatasync, as a pack record is (chunk/pack). A small
// push waits for several of these in sequence (its copies, then raft's log
// on the leader and on a follower, two each for bolt), and at a fixed
// number of connections its rate is bounded by that chain; a server that
// answers before any fsync is not.
func fsyncLatency(dir string, n, size int) (string, error) {
	p := filepath.Join(dir, "fsync-probe")
	defer os.Remove(p)
	f, err := os.Create(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, size)
	took := make([]time.Duration, 0, n)
	for range n {
		if _, err := f.Write(buf); err != nil {
			return "", fmt.Errorf("fsync probe: %w", err)
		}
		start := time.Now()
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return "", fmt.Errorf("fsync probe: %w", err)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	q := func(p float64) time.Duration { return took[min(len(took)-1, int(p*float64(len(took))))] }
	return fmt.Sprintf("an fdatasync after appending %s takes %s (p50), %s (p90), %s (p99) over %d tries",
		fmtBytes(int64(size)), q(0.5).Round(10*time.Microsecond), q(0.9).Round(10*time.Microsecond),
		q(0.99).Round(10*time.Microsecond), n), nil
}
