package main

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// cpuUse adds up the CPU seconds the servers spent during some operations,
// to show where the time goes (the nodes expose no profiler).
type cpuUse struct {
	secs map[string]float64
	wall time.Duration
}

// cpuSnap reads the CPU time of every live pier node, of each peer and of
// nginx (master and workers).
func (b *bench) cpuSnap() map[string]float64 {
	m := map[string]float64{}
	for _, nd := range b.cl.nodes {
		if nd.down {
			continue
		}
		if v, err := cpuSeconds(nd.p.pid()); err == nil {
			m[nd.id] = v
		}
	}
	for _, p := range b.peers {
		if v, err := cpuSeconds(p.p.pid()); err == nil {
			m[p.name] = v
		}
	}
	pids := append([]int{b.ng.p.pid()}, childPIDs(b.ng.p.pid())...)
	for _, pid := range pids {
		if v, err := cpuSeconds(pid); err == nil {
			m["nginx"] += v
		}
	}
	return m
}

// measure runs fn and adds the CPU the servers used meanwhile to u.
func (b *bench) measure(u *cpuUse, fn func() error) error {
	before, start := b.cpuSnap(), time.Now()
	err := fn()
	after := b.cpuSnap()
	if u.secs == nil {
		u.secs = map[string]float64{}
	}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			u.secs[k] += d
		}
	}
	u.wall += time.Since(start)
	return err
}

// String lists the servers named by prefix with their CPU seconds, and
// their total as a share of the wall time (100% = one core busy).
func (u cpuUse) String(prefix string) string {
	var keys []string
	for k := range u.secs {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var parts []string
	total := 0.0
	for _, k := range keys {
		total += u.secs[k]
		parts = append(parts, fmt.Sprintf("%s %.2f s", k, u.secs[k]))
	}
	if len(parts) == 0 || u.wall <= 0 {
		return "no CPU data"
	}
	sum := ""
	if len(parts) > 1 {
		sum = fmt.Sprintf(" = %.2f s", total)
	}
	return fmt.Sprintf("%s%s CPU in %.2f s (%.0f%% of one core)", strings.Join(parts, " + "), sum,
		u.wall.Seconds(), 100*total/u.wall.Seconds())
}

// total is the CPU seconds of the servers named by prefix.
func (u cpuUse) total(prefix string) float64 {
	t := 0.0
	for k, v := range u.secs {
		if strings.HasPrefix(k, prefix) {
			t += v
		}
	}
	return t
}
