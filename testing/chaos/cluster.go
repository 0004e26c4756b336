package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pier-registry/pier/testing/invariants"
)

// Cluster is the compose project under test as the driver sees it: which
// nodes should be members, which ones the driver has stopped on purpose,
// and the docker operations that inject faults into them.
type Cluster struct {
	compose Compose
	prefix  string // host ports are 127.0.0.1:<prefix><n>
	logf    func(format string, args ...any)
	hc      *http.Client

	mu      sync.Mutex
	members []*Node          // nodes that should be alive members, in order
	byName  map[string]*Node // every node ever started
	down    map[string]bool  // stopped or paused by the driver
}

// NewCluster describes nodes pier1..pierN of the compose project.
func NewCluster(c Compose, prefix string, n int, logf func(string, ...any)) (*Cluster, error) {
	cl := &Cluster{compose: c, prefix: prefix, logf: logf, byName: map[string]*Node{}, down: map[string]bool{},
		hc: &http.Client{Timeout: 2 * time.Second}}
	for i := 1; i <= n; i++ {
		if _, err := cl.add(fmt.Sprintf("pier%d", i)); err != nil {
			return nil, err
		}
	}
	return cl, nil
}

// add makes the node named pierN a member.
func (c *Cluster) add(name string) (*Node, error) {
	num := strings.TrimPrefix(name, "pier")
	n, err := newNode(name, "127.0.0.1:"+c.prefix+num)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members = append(c.members, n)
	c.byName[name] = n
	return n, nil
}

// remove takes a node out of the expected members for good (it left).
func (c *Cluster) remove(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members = slices.DeleteFunc(c.members, func(n *Node) bool { return n.Name == name })
}

// Nodes returns the nodes that should be members.
func (c *Cluster) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.members)
}

// Live returns the members the driver has not stopped or paused.
func (c *Cluster) Live() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(c.members), func(n *Node) bool { return c.down[n.Name] })
}

// Node returns a node by name.
func (c *Cluster) Node(name string) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byName[name]
}

func names(ns []*Node) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Name
	}
	return out
}

func (c *Cluster) setDown(down bool, nodes ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range nodes {
		if down {
			c.down[n] = true
		} else {
			delete(c.down, n)
		}
	}
}

func (c *Cluster) containers(ctx context.Context, nodes []string) ([]string, error) {
	var ids []string
	for _, n := range nodes {
		id, err := c.compose.Container(ctx, n)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// Kill sends SIGKILL to the nodes' containers in one docker call.
func (c *Cluster) Kill(ctx context.Context, nodes ...string) error {
	ids, err := c.containers(ctx, nodes)
	if err != nil {
		return err
	}
	c.setDown(true, nodes...)
	return docker(ctx, append([]string{"kill", "-s", "KILL"}, ids...)...)
}

// Start starts the nodes' stopped containers again, with their volumes.
func (c *Cluster) Start(ctx context.Context, nodes ...string) error {
	ids, err := c.containers(ctx, nodes)
	if err != nil {
		return err
	}
	if err := docker(ctx, append([]string{"start"}, ids...)...); err != nil {
		return err
	}
	c.setDown(false, nodes...)
	return nil
}

// Restart stops a node gracefully (SIGTERM, SIGKILL after 10s) and starts
// it again.
func (c *Cluster) Restart(ctx context.Context, node string) error {
	id, err := c.compose.Container(ctx, node)
	if err != nil {
		return err
	}
	return docker(ctx, "restart", "-t", "10", id)
}

// Pause freezes a node's processes; Unpause thaws them.
func (c *Cluster) Pause(ctx context.Context, node string) error {
	id, err := c.compose.Container(ctx, node)
	if err != nil {
		return err
	}
	c.setDown(true, node)
	return docker(ctx, "pause", id)
}

func (c *Cluster) Unpause(ctx context.Context, node string) error {
	id, err := c.compose.Container(ctx, node)
	if err != nil {
		return err
	}
	if err := docker(ctx, "unpause", id); err != nil {
		return err
	}
	c.setDown(false, node)
	return nil
}

// Isolate drops every packet between node and the other containers of the
// project with iptables inside node's network namespace. The host still
// reaches it through its published port, so clients see how an isolated
// node answers. The returned function heals the partition.
func (c *Cluster) Isolate(ctx context.Context, node string) (heal func(context.Context) error, err error) {
	svcs, err := c.compose.Services(ctx)
	if err != nil {
		return nil, err
	}
	st, err := inspect(ctx, svcs[node])
	if err != nil {
		return nil, err
	}
	if st.Status != "running" {
		return nil, fmt.Errorf("%s is %s", node, st.Status)
	}
	var peers []string
	for svc, id := range svcs {
		if svc == node {
			continue
		}
		ps, err := inspect(ctx, id)
		if err != nil {
			return nil, err
		}
		peers = append(peers, ps.IPs...)
	}
	const chain = "PIER_CHAOS"
	ipt := func(args ...string) error { return iptables(ctx, st.Pid, args...) }
	if err := ipt("-N", chain); err != nil {
		return nil, err
	}
	for _, ip := range peers {
		if err := ipt("-A", chain, "-s", ip, "-j", "DROP"); err != nil {
			return nil, err
		}
		if err := ipt("-A", chain, "-d", ip, "-j", "DROP"); err != nil {
			return nil, err
		}
	}
	if err := ipt("-I", "INPUT", "1", "-j", chain); err != nil {
		return nil, err
	}
	if err := ipt("-I", "OUTPUT", "1", "-j", chain); err != nil {
		return nil, err
	}
	c.logf("%s isolated from %v", node, peers)
	return func(ctx context.Context) error {
		now, err := inspect(ctx, svcs[node])
		if err != nil || now.Pid != st.Pid {
			return nil // restarted: its new network namespace has no rules
		}
		return errors.Join(iptables(ctx, st.Pid, "-D", "INPUT", "-j", chain), iptables(ctx, st.Pid, "-D", "OUTPUT", "-j", chain),
			iptables(ctx, st.Pid, "-F", chain), iptables(ctx, st.Pid, "-X", chain))
	}, nil
}

// DataDir returns the host path of the volume behind a node's /data.
func (c *Cluster) DataDir(ctx context.Context, node string) (string, error) {
	id, err := c.compose.Container(ctx, node)
	if err != nil {
		return "", err
	}
	out, err := run(ctx, 30*time.Second, nil, "docker", "inspect", "-f",
		`{{range .Mounts}}{{if eq .Destination "/data"}}{{.Source}}{{end}}{{end}}`, id)
	if err != nil {
		return "", err
	}
	if out == "" {
		return "", fmt.Errorf("%s has no volume at /data", node)
	}
	return out, nil
}

// Leader returns the leader named by the first live node that names one.
func (c *Cluster) Leader(ctx context.Context) (string, error) {
	var errs []error
	for _, n := range c.Live() {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		m, err := n.Client.Members(ctx)
		cancel()
		if err == nil && m.Leader != "" && c.Node(m.Leader) != nil {
			return m.Leader, nil
		}
		errs = append(errs, fmt.Errorf("%s: leader %q, %v", n.Name, m.Leader, err))
	}
	return "", fmt.Errorf("no leader known: %w", errors.Join(errs...))
}

// ready reports whether a node answers 200 on /readyz.
func (c *Cluster) ready(ctx context.Context, n *Node) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.Addr+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: %s", resp.Status)
	}
	return nil
}

// views asks every member for its membership view.
func (c *Cluster) views(ctx context.Context) []invariants.MembersView {
	nodes := c.Nodes()
	out := make([]invariants.MembersView, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			m, err := n.Client.Members(ctx)
			out[i] = invariants.MembersView{Node: n.Name, Resp: m, Err: err}
		}()
	}
	wg.Wait()
	return out
}

// Redundancy reads GET /api/v1/status from a member. available is false
// when the node has no such endpoint (yet).
func (c *Cluster) Redundancy(ctx context.Context) (r invariants.Redundancy, available bool, err error) {
	for _, n := range c.Live() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.Addr+"/api/v1/status", nil)
		if err != nil {
			return invariants.Redundancy{}, false, err
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			continue
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil || resp.StatusCode >= 500 {
			continue
		}
		return invariants.ParseStatus(resp.StatusCode, body)
	}
	return invariants.Redundancy{}, false, errors.New("no member answered GET /api/v1/status")
}

// Converge waits, until deadline, for every member's container to run,
// every member to be ready and the membership check to pass from every
// member. gone lists nodes that must be absent or "left". A container
// found exited that the driver did not stop is a crash: it is reported and
// started again so that the run can go on. It returns the crashes and what
// still failed at the deadline.
func (c *Cluster) Converge(ctx context.Context, deadline time.Time, gone []string) []invariants.Violation {
	var crashes []invariants.Violation
	crashed := map[string]bool{}
	nextNote := time.Now().Add(10 * time.Second)
	for {
		var last []invariants.Violation
		for _, n := range c.Nodes() {
			if v := c.reviveCrashed(ctx, n.Name, crashed); v != nil {
				crashes = append(crashes, *v)
			}
		}
		for _, n := range c.Nodes() {
			if err := c.ready(ctx, n); err != nil {
				last = append(last, invariants.Violation{Check: invariants.CheckClusterName, Detail: fmt.Sprintf("%s not ready: %v", n.Name, err)})
			}
		}
		if len(last) == 0 {
			last = invariants.CheckMembership(c.views(ctx), names(c.Nodes()), gone)
		}
		if len(last) == 0 {
			return crashes
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return append(crashes, last...)
		}
		if time.Now().After(nextNote) {
			c.logf("waiting for the cluster: %s (and %d more)", last[0].Detail, len(last)-1)
			nextNote = time.Now().Add(10 * time.Second)
		}
		sleep(ctx, 500*time.Millisecond)
	}
}

// WaitRedundancy waits, until deadline, until GET /api/v1/status reports
// full redundancy or, when base is not nil, redundancy no worse than base
// in any count. It returns a summary for the report and, at the deadline,
// a violation. A node without the endpoint yields the summary "endpoint not
// available" and no violation: the caller must say so.
func (c *Cluster) WaitRedundancy(ctx context.Context, deadline time.Time, base *invariants.Redundancy) (string, []invariants.Violation) {
	for {
		r, available, err := c.Redundancy(ctx)
		var problem string
		switch {
		case err != nil:
			problem = err.Error()
		case !available:
			return "endpoint not available", nil
		case r.Complete():
			return "full", nil
		case base != nil && r.Degraded <= base.Degraded && r.AtRisk <= base.AtRisk && r.Unavailable <= base.Unavailable:
			return "no worse than before: " + r.String(), nil
		case base != nil:
			problem = fmt.Sprintf("worse than before the scenario (%s): %s", base, r)
		default:
			problem = "not full: " + r.String()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return problem, []invariants.Violation{{Check: invariants.CheckRedundancyName, Detail: problem}}
		}
		sleep(ctx, time.Second)
	}
}

// Baseline waits up to timeout for full redundancy and returns the
// redundancy a scenario must not make worse: nil when it is full (or
// cannot be read), the current counts otherwise.
func (c *Cluster) Baseline(ctx context.Context, timeout time.Duration) *invariants.Redundancy {
	if sum, _ := c.WaitRedundancy(ctx, time.Now().Add(timeout), nil); sum == "full" || sum == "endpoint not available" {
		return nil
	}
	r, available, err := c.Redundancy(ctx)
	if err != nil || !available {
		return nil
	}
	return &r
}

// reviveCrashed starts a member's container again if it is not running and
// the driver did not stop it, and reports the crash once.
func (c *Cluster) reviveCrashed(ctx context.Context, node string, reported map[string]bool) *invariants.Violation {
	id, err := c.compose.Container(ctx, node)
	if err != nil {
		if reported[node] {
			return nil
		}
		reported[node] = true
		return &invariants.Violation{Check: invariants.CheckScenarioName, Detail: err.Error()}
	}
	st, err := inspect(ctx, id)
	if err != nil || st.Status == "running" {
		return nil
	}
	c.mu.Lock()
	byDriver := c.down[node]
	c.mu.Unlock()
	var v *invariants.Violation
	if !byDriver && !reported[node] {
		reported[node] = true
		last, _ := run(ctx, 30*time.Second, nil, "docker", "logs", "--tail", "2", id)
		v = &invariants.Violation{Check: invariants.CheckCrashName, Detail: fmt.Sprintf("%s was %s (exit code %d, OOM killed %v) though the driver did not stop it; its last log lines: %q",
			node, st.Status, st.ExitCode, st.OOM, last)}
		c.logf("CRASH: %s", v.Detail)
	}
	if st.Status == "paused" {
		_ = c.Unpause(ctx, node)
	} else if st.Status == "exited" || st.Status == "created" {
		_ = c.Start(ctx, node)
	}
	return v
}
