package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pier-registry/pier/testing/invariants"
	"github.com/pier-registry/pier/transport/apiclient"
)

// The intruder scenario (issue 13): a container on the cluster's network
// that does not hold the cluster key attacks raft, the peer service and
// gossip (testing/chaos/intruder); the nodes' public state must come out
// of it unchanged and no attack may get past the key.

// intruderContainer is the name of the intruder's container, removed
// before and after each run.
const intruderContainer = "pier-chaos-intruder"

// intruderTargets are the artifacts the intruder forges tags on, pushed by
// the scenario itself (a small one, stored packed, and one with shard
// files). They lie outside the workload's names, which the comparison
// leaves out.
var intruderTargets = []struct {
	name string
	size int64
}{
	{"chaos/intruder-target/app-1.0.txt", 2 * kib},
	{"chaos/intruder-target/app-1.0.bin", mib},
}

// NodeState is one node's public state as the intruder scenario compares
// it: artifacts with their metadata, member IDs, and raft's term.
type NodeState struct {
	Node string
	// Artifacts maps each name to its digest, tags, version, commit and
	// labels, in one comparable string.
	Artifacts map[string]string
	Members   []string // IDs, sorted, whatever their state
	Leader    string
	Term      uint64
	Halted    string
}

// SnapshotNode reads a node's public state: every artifact whose name does
// not start with exclude (GET /api/v1/artifacts, all pages), its members
// (GET /api/v1/cluster/members) and its term (GET /api/v1/status).
func SnapshotNode(ctx context.Context, n *Node, exclude string) (NodeState, error) {
	st := NodeState{Node: n.Name, Artifacts: map[string]string{}}
	for a, err := range n.Client.ListAll(ctx, apiclient.ListOptions{Limit: 1000}) {
		if err != nil {
			return st, err
		}
		if exclude != "" && strings.HasPrefix(a.Name, exclude) {
			continue
		}
		st.Artifacts[a.Name] = fingerprint(a)
	}
	m, err := n.Client.Members(ctx)
	if err != nil {
		return st, err
	}
	for _, mem := range m.Members {
		st.Members = append(st.Members, mem.ID)
	}
	slices.Sort(st.Members)
	s, err := n.Client.Status(ctx)
	if err != nil {
		return st, err
	}
	st.Leader, st.Term, st.Halted = s.Leader, s.Term, s.Halted
	return st, nil
}

func fingerprint(a apiclient.Artifact) string {
	tags := slices.Sorted(slices.Values(a.Tags))
	var labels []string
	for _, k := range slices.Sorted(maps.Keys(a.Labels)) {
		labels = append(labels, k+"="+a.Labels[k])
	}
	return fmt.Sprintf("%s tags=%v version=%q commit=%q labels=%v", invariants.Short(a.Digest), tags, a.Version, a.Commit, labels)
}

// Change is one difference between two snapshots of the cluster, with the
// nodes that show it.
type Change struct {
	What  string
	Nodes []string
}

func (c Change) String() string { return c.What + " (on " + strings.Join(c.Nodes, ", ") + ")" }

// DiffStates compares each node's state after with its own state before
// and returns the differences, one Change per difference however many
// nodes show it. A node missing from either side is not compared.
func DiffStates(before, after []NodeState) []Change {
	byWhat := map[string][]string{}
	var order []string
	add := func(node, what string) {
		if _, ok := byWhat[what]; !ok {
			order = append(order, what)
		}
		byWhat[what] = append(byWhat[what], node)
	}
	for _, b := range before {
		i := slices.IndexFunc(after, func(a NodeState) bool { return a.Node == b.Node })
		if i < 0 {
			continue
		}
		a := after[i]
		for _, name := range slices.Sorted(maps.Keys(b.Artifacts)) {
			switch now, ok := a.Artifacts[name]; {
			case !ok:
				add(b.Node, fmt.Sprintf("artifact %s gone (was %s)", name, b.Artifacts[name]))
			case now != b.Artifacts[name]:
				add(b.Node, fmt.Sprintf("artifact %s changed: %s -> %s", name, b.Artifacts[name], now))
			}
		}
		for _, name := range slices.Sorted(maps.Keys(a.Artifacts)) {
			if _, ok := b.Artifacts[name]; !ok {
				add(b.Node, fmt.Sprintf("artifact %s appeared: %s", name, a.Artifacts[name]))
			}
		}
		for _, id := range a.Members {
			if !slices.Contains(b.Members, id) {
				add(b.Node, "member "+id+" appeared")
			}
		}
		for _, id := range b.Members {
			if !slices.Contains(a.Members, id) {
				add(b.Node, "member "+id+" gone")
			}
		}
		if a.Term != b.Term {
			add(b.Node, fmt.Sprintf("raft term %d -> %d (leader %s -> %s)", b.Term, a.Term, b.Leader, a.Leader))
		}
		if a.Halted != b.Halted {
			add(b.Node, fmt.Sprintf("state machine halted: %q -> %q", b.Halted, a.Halted))
		}
	}
	out := make([]Change, len(order))
	for i, what := range order {
		out[i] = Change{What: what, Nodes: byWhat[what]}
	}
	return out
}

// IntruderAttempt and IntruderReport mirror the intruder's JSON report
// (testing/chaos/intruder).
type IntruderAttempt struct {
	Channel  string `json:"channel"`
	Target   string `json:"target"`
	Via      string `json:"via"`
	Call     string `json:"call"`
	Answered bool   `json:"answered"`
	Accepted bool   `json:"accepted"`
	Detail   string `json:"detail"`
}

func (a IntruderAttempt) String() string {
	return fmt.Sprintf("%s %s to %s via %s: %s", a.Channel, a.Call, a.Target, a.Via, a.Detail)
}

type IntruderReport struct {
	Attempts   []IntruderAttempt `json:"attempts"`
	Controls   []IntruderAttempt `json:"controls"`
	Listed     []string          `json:"listed"`
	Answered   int               `json:"answered"`
	Accepted   int               `json:"accepted"`
	Seconds    float64           `json:"seconds"`
	Unfinished bool              `json:"unfinished"`
}

// Successes lists what the intruder achieved: every attack that got past
// the key check (answered) or did what it asked (accepted), and every
// sighting of it in a node's member list.
func (r IntruderReport) Successes() []string {
	var out []string
	for _, a := range r.Attempts {
		if a.Answered || a.Accepted {
			out = append(out, a.String())
		}
	}
	for _, l := range r.Listed {
		out = append(out, "gossip: "+l)
	}
	return out
}

// Unreached lists the controls that failed: ports of the nodes the
// intruder could not reach, where a refusal proves nothing.
func (r IntruderReport) Unreached() []string {
	var out []string
	for _, c := range r.Controls {
		if !c.Answered || !c.Accepted {
			out = append(out, c.String())
		}
	}
	return out
}

// IntruderChanges is the scenario's figure: differences in the nodes'
// state plus the intruder's successes. It must be 0.
func IntruderChanges(changes []Change, rep IntruderReport) int {
	return len(changes) + len(rep.Successes())
}

// skipWithoutIntruder skips the scenario when the intruder's image was not
// built (make chaos builds it).
func skipWithoutIntruder(ctx context.Context, s *Suite) string {
	if s.intruderImage == "" {
		return "no -intruder-image"
	}
	if _, err := run(ctx, 30*time.Second, nil, "docker", "image", "inspect", "-f", "{{.Id}}", s.intruderImage); err != nil {
		return "image " + s.intruderImage + " not found (make intruder-image builds it)"
	}
	return ""
}

// intrude pushes the target artifacts, snapshots every node, runs the
// intruder on the cluster's network, snapshots again and counts changes.
// The workload runs throughout, under names the comparison leaves out.
func intrude(ctx context.Context, e *Env) error {
	nodes := e.Cluster.Nodes()
	var targets []string
	for i, t := range intruderTargets {
		c := Content{Seed: e.Rand.Uint64(), Size: t.size}
		var op invariants.Op
		for try := 0; try < 5 && ctx.Err() == nil; try++ {
			if op = e.Push(ctx, nodes[(i+try)%len(nodes)], t.name, c); op.Outcome == invariants.OK {
				break
			}
			sleep(ctx, time.Second)
		}
		if op.Outcome != invariants.OK {
			return fmt.Errorf("push target %s: %s", t.name, op.Err)
		}
		targets = append(targets, t.name)
	}
	exclude := "chaos/" + e.scenario + "/"
	// Every node must show the targets before the comparison starts, or a
	// follower applying them late would read as a change.
	before, err := snapshotAll(ctx, nodes, exclude, targets, 30*time.Second)
	if err != nil {
		return fmt.Errorf("snapshot before the intruder: %w", err)
	}
	e.Logf("before: %d artifacts (outside %s), %d members, term %d on %s", len(before[0].Artifacts), exclude, len(before[0].Members), before[0].Term, before[0].Node)

	rep, err := e.runIntruder(ctx, names(nodes), targets)
	if err != nil {
		return err
	}
	// A forged write that got in is applied within a heartbeat; give it
	// time to show everywhere.
	sleep(ctx, 2*time.Second)
	after, err := snapshotAll(ctx, nodes, exclude, nil, 30*time.Second)
	if err != nil {
		return fmt.Errorf("snapshot after the intruder: %w", err)
	}

	changes := DiffStates(before, after)
	successes := rep.Successes()
	total := IntruderChanges(changes, rep)
	for _, c := range changes {
		e.Violate(invariants.CheckIntruderName, "state changed: %s", c)
	}
	for _, s := range successes {
		e.Violate(invariants.CheckIntruderName, "the intruder got through: %s", s)
	}
	for _, u := range rep.Unreached() {
		e.Violate(invariants.CheckScenarioName, "the intruder could not reach a node, so its refusals prove nothing: %s", u)
	}
	if rep.Unfinished {
		e.Violate(invariants.CheckScenarioName, "the intruder ran out of time before every attack ran")
	}
	byChannel := map[string]int{}
	for _, a := range rep.Attempts {
		byChannel[a.Channel]++
	}
	note := fmt.Sprintf("%d changes: %d in the state of %d nodes (artifacts, tags, members, raft term), %d of %d attacks got through (raft %d, peer %d, gossip %d), listed as member %d times; %d controls failed",
		total, len(changes), len(after), len(successes)-len(rep.Listed), len(rep.Attempts),
		byChannel["raft"], byChannel["peer"], byChannel["gossip"], len(rep.Listed), len(rep.Unreached()))
	e.Note(note)
	e.Logf("%s", note)
	e.Healed()
	return nil
}

// snapshotAll snapshots every node at once, retrying a node whose
// snapshot fails or lacks one of want until timeout.
func snapshotAll(ctx context.Context, nodes []*Node, exclude string, want []string, timeout time.Duration) ([]NodeState, error) {
	out := make([]NodeState, len(nodes))
	errs := make([]error, len(nodes))
	deadline := time.Now().Add(timeout)
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				st, err := SnapshotNode(cctx, n, exclude)
				cancel()
				if err == nil {
					for _, w := range want {
						if _, ok := st.Artifacts[w]; !ok {
							err = fmt.Errorf("%s does not list %s yet", n.Name, w)
							break
						}
					}
				}
				out[i], errs[i] = st, err
				if err == nil || time.Now().After(deadline) {
					return
				}
				sleep(ctx, 500*time.Millisecond)
			}
			if errs[i] == nil {
				errs[i] = ctx.Err()
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// runIntruder runs the intruder's container on the network of the
// cluster's first node and returns its report; its output and progress
// are kept in the scenario's folder.
func (e *Env) runIntruder(ctx context.Context, hosts, targets []string) (IntruderReport, error) {
	id, err := e.Cluster.compose.Container(ctx, hosts[0])
	if err != nil {
		return IntruderReport{}, err
	}
	nets, err := run(ctx, 30*time.Second, nil, "docker", "inspect", "-f", `{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}`, id)
	if err != nil || nets == "" {
		return IntruderReport{}, fmt.Errorf("network of %s: %q %v", hosts[0], nets, err)
	}
	network := strings.Fields(nets)[0]
	_, _ = run(ctx, 30*time.Second, nil, "docker", "rm", "-f", intruderContainer)
	defer func() {
		_, _ = run(context.WithoutCancel(ctx), 30*time.Second, nil, "docker", "rm", "-f", intruderContainer)
	}()

	e.Logf("intruder %s on network %s attacks %v", e.suite.intruderImage, network, hosts)
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	args := []string{"run", "--rm", "--name", intruderContainer, "--hostname", "intruder", "--network", network, e.suite.intruderImage,
		"-nodes", strings.Join(hosts, ","), "-targets", strings.Join(targets, ","), "-timeout", "60s"}
	if e.suite.intruderKey != "" {
		args = append(args, "-wrong-key", e.suite.intruderKey) // a planted leak
	}
	cmd := exec.CommandContext(rctx, "docker", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	runErr := cmd.Run()
	if err := os.MkdirAll(e.OutDir(), 0o755); err == nil {
		_ = os.WriteFile(filepath.Join(e.OutDir(), "intruder.json"), stdout.Bytes(), 0o644)
		_ = os.WriteFile(filepath.Join(e.OutDir(), "intruder.log"), stderr.Bytes(), 0o644)
	}
	if runErr != nil {
		return IntruderReport{}, fmt.Errorf("intruder: %w: %s", runErr, lastLines(stderr.String(), 3))
	}
	var rep IntruderReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		return IntruderReport{}, fmt.Errorf("intruder's report: %w", err)
	}
	e.Logf("the intruder made %d attacks and %d controls in %.1fs (container %.1fs); report in %s",
		len(rep.Attempts), len(rep.Controls), rep.Seconds, time.Since(start).Seconds(), filepath.Join(e.OutDir(), "intruder.json"))
	return rep, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}
