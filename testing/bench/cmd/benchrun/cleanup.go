package main

import (
	"bufio"
	"context"
	"fmt"
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
	return int(readMetrics(ctx, base)["pier_cleanups_running"])
}

// metricSet is a node's /metrics: a figure's value by its name as printed,
// labels included.
type metricSet map[string]float64

// delta is m's figure less before's.
func (m metricSet) delta(before metricSet, name string) float64 { return m[name] - before[name] }

// readMetrics reads a node's /metrics (empty when it cannot).
func readMetrics(ctx context.Context, base string) metricSet {
	m := metricSet{}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return m
	}
	resp, err := quickClient.Do(req)
	if err != nil {
		return m
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		// client_golang prints large values in exponent form
		// (1.048576e+06), which Atoi refuses.
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m
}

func (nd *pierNode) metrics(ctx context.Context) metricSet { return readMetrics(ctx, nd.base) }

// waitMetric waits (bounded) until the node's figure name reaches want.
func (nd *pierNode) waitMetric(ctx context.Context, name string, want float64, deadline time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	var last float64
	for {
		if last = nd.metrics(ctx)[name]; last >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s %s stayed at %g within %s, want %g", nd.id, name, last, deadline, want)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
