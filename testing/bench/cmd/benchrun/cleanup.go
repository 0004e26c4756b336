package main

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// waitCleanups waits, at most a minute, until no live node is still
// deleting the shards of a push it has answered. The bench pushes each file
// under several names, so every push after the first stores bytes Pier has
// already: it writes the shards, finds the digest stored, answers, and then
// deletes them (about 1.3 s of unlinking per 1 GiB pushed on our VMs). That
// work is Pier's, and must not fall into the next timed transfer, nginx's
// or Pier's. It returns how long it waited.
func (b *bench) waitCleanups() time.Duration {
	start := time.Now()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		busy := false
		for _, nd := range b.cl.nodes {
			if !nd.down && cleanupsRunning(ctx, nd.base) > 0 {
				busy = true
			}
		}
		if !busy {
			return time.Since(start)
		}
		select {
		case <-ctx.Done():
			return time.Since(start)
		case <-t.C:
		}
	}
}

// cleanupsRunning reads pier_cleanups_running from a node's /metrics; 0
// when it cannot (an older build, a node that does not answer).
func cleanupsRunning(ctx context.Context, base string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0
	}
	resp, err := quickClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "pier_cleanups_running "); ok {
			// client_golang prints large values in exponent form
			// (1.048576e+06), which Atoi refuses.
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int(f)
		}
	}
	return 0
}
