package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pier-registry/pier/testing/invariants"
)

// Scenario is one fault, injected and healed while the workload runs.
type Scenario struct {
	Name  string
	About string
	// Skip, when set, returns why the scenario cannot run here ("" runs it).
	Skip func(ctx context.Context, s *Suite) string
	// Run injects the fault and heals it, calling e.Healed when the fault
	// is gone (Run returning counts as healed otherwise).
	Run func(ctx context.Context, e *Env) error
}

// Scenarios are the chaos scenarios in the order they run.
var Scenarios = []Scenario{
	{Name: "intruder", About: "a container without the cluster key attacks raft, the peer service and gossip; nothing may change", Skip: skipWithoutIntruder, Run: intrude},
	{Name: "kill-random", About: "SIGKILL a random node, restart it 10s later", Run: killRandom},
	{Name: "kill-leader", About: "SIGKILL the leader, restart it 10s later", Run: killLeader},
	{Name: "isolate", About: "cut one node off from the others with iptables for 15s", Run: isolate},
	{Name: "pause", About: "docker pause a node for 15s, longer than the gossip timeout", Run: pause},
	{Name: "kill-m", About: "SIGKILL m=2 nodes at once, pull everything from the rest, restart them", Run: killM},
	{Name: "corrupt", About: "flip bytes in every shard file on one node's volume, pull everything", Run: corrupt},
	{Name: "rolling-restart", About: "restart every node gracefully, one at a time", Run: rollingRestart},
	{Name: "disk-full", About: "fill pier5's disk for 12s, then free it", Run: diskFull},
	{Name: "leave-join", About: "pier leave one node, join a fresh one, under load", Skip: skipWithoutLeave, Run: leaveJoin},
	// Federation (federation.go): the first of these starts dc2.
	{Name: "fed-cut", About: "dc2 beside dc1: replication lag; the WAN cut while both sides push 50 and one name with other bytes; heal: all 100 on both, the conflict kept and reported", Run: fedCut},
	{Name: "fed-kill-leader", About: "SIGKILL dc2's leader while it copies a large artifact from dc1, restart it 10s later: every dc2 node serves it", Run: fedKillLeader},
}

// m is the number of nodes a 5-node cluster must survive losing.
const m = 2

// smallDiskNode is the node whose data dir is a small tmpfs
// (docker-compose.yml), so that its disk can be filled.
const smallDiskNode = "pier5"

func (e *Env) randomNode() string {
	ns := e.Cluster.Nodes()
	return ns[e.Rand.IntN(len(ns))].Name
}

func killRandom(ctx context.Context, e *Env) error {
	n := e.randomNode()
	e.Logf("SIGKILL %s", n)
	if err := e.Cluster.Kill(ctx, n); err != nil {
		return err
	}
	e.Hold(ctx, 10*time.Second)
	e.Logf("start %s", n)
	if err := e.Cluster.Start(ctx, n); err != nil {
		return err
	}
	e.Healed()
	return nil
}

func killLeader(ctx context.Context, e *Env) error {
	n, err := e.Cluster.Leader(ctx)
	if err != nil {
		return err
	}
	e.Logf("SIGKILL leader %s", n)
	if err := e.Cluster.Kill(ctx, n); err != nil {
		return err
	}
	e.Hold(ctx, 10*time.Second)
	if l, err := e.Cluster.Leader(ctx); err != nil {
		e.Logf("no new leader while %s is down: %v", n, err)
	} else {
		e.Logf("new leader %s", l)
	}
	e.Logf("start %s", n)
	if err := e.Cluster.Start(ctx, n); err != nil {
		return err
	}
	e.Healed()
	return nil
}

func isolate(ctx context.Context, e *Env) error {
	n := e.randomNode()
	heal, err := e.Cluster.Isolate(ctx, n)
	if err != nil {
		return fmt.Errorf("isolate %s: %w", n, err)
	}
	e.Hold(ctx, 15*time.Second)
	e.Logf("heal the partition of %s", n)
	if err := heal(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("heal %s: %w", n, err)
	}
	e.Healed()
	return nil
}

func pause(ctx context.Context, e *Env) error {
	n := e.randomNode()
	e.Logf("pause %s", n)
	if err := e.Cluster.Pause(ctx, n); err != nil {
		return err
	}
	e.Hold(ctx, 15*time.Second)
	e.Logf("unpause %s", n)
	if err := e.Cluster.Unpause(context.WithoutCancel(ctx), n); err != nil {
		return err
	}
	e.Healed()
	return nil
}

func killM(ctx context.Context, e *Env) error {
	ns := names(e.Cluster.Nodes())
	e.Rand.Shuffle(len(ns), func(i, j int) { ns[i], ns[j] = ns[j], ns[i] })
	victims := ns[:m]
	e.Logf("SIGKILL %v at once", victims)
	if err := e.Cluster.Kill(ctx, victims...); err != nil {
		return err
	}
	e.Hold(ctx, 3*time.Second)
	// Invariant 1: with m nodes gone, everything acknowledged is still
	// served, by every node that is left.
	e.Checkpoint(ctx, "during", e.Cluster.Live())
	e.Logf("start %v", victims)
	if err := e.Cluster.Start(ctx, victims...); err != nil {
		return err
	}
	e.Healed()
	return nil
}

func corrupt(ctx context.Context, e *Env) error {
	n := e.randomNode()
	dir, err := e.Cluster.DataDir(ctx, n)
	if err != nil {
		return err
	}
	files, err := corruptFiles(dir, e.Rand, 4)
	if err != nil {
		return fmt.Errorf("corrupt %s: %w", n, err)
	}
	if len(files) == 0 {
		return fmt.Errorf("no shard files to corrupt under %s's /data (%s)", n, dir)
	}
	e.Logf("flipped 4 bytes in each of %d files on %s (list in %s)", len(files), n, filepath.Join(e.OutDir(), "corrupted.txt"))
	if err := os.MkdirAll(e.OutDir(), 0o755); err == nil {
		_ = os.WriteFile(filepath.Join(e.OutDir(), "corrupted.txt"), []byte(n+"\n"+strings.Join(files, "\n")+"\n"), 0o644)
	}
	// The corruption stays: the checkpoint after the scenario pulls
	// everything from every node, this one included.
	e.Hold(ctx, 8*time.Second)
	return nil
}

func rollingRestart(ctx context.Context, e *Env) error {
	for _, n := range e.Cluster.Nodes() {
		e.Logf("restart %s", n.Name)
		t := time.Now()
		if err := e.Cluster.Restart(ctx, n.Name); err != nil {
			return err
		}
		if v := e.Cluster.Converge(ctx, time.Now().Add(time.Minute), nil); len(v) > 0 {
			return fmt.Errorf("cluster did not converge within 1m after restarting %s: %s", n.Name, v[0].Detail)
		}
		e.Logf("%s back and converged in %.1fs", n.Name, time.Since(t).Seconds())
	}
	e.Healed()
	return nil
}

// diskFull fills the small-disk node's data dir, keeps pushing to it, and
// frees the space. Every request to the node while its disk is full must
// get an HTTP answer (507 or another 5xx for pushes), never a hang or a
// dropped connection, and pushes must succeed again once space returns.
func diskFull(ctx context.Context, e *Env) error {
	node := e.Cluster.Node(smallDiskNode)
	if node == nil {
		return fmt.Errorf("no node %s", smallDiskNode)
	}
	dir, err := e.Cluster.DataDir(ctx, node.Name)
	if err != nil {
		return err
	}
	filler, size, err := fillDisk(dir)
	if filler != "" {
		defer os.Remove(filler)
	}
	if err != nil {
		return err
	}
	e.Logf("filled %s's disk with %d MiB", node.Name, size>>20)
	// Besides the workload's, a push to the full node every second or so.
	from, until := e.Now(), time.Now().Add(12*time.Second)
	for i := 0; time.Now().Before(until) && ctx.Err() == nil; i++ {
		e.Push(ctx, node, fmt.Sprintf("chaos/disk-full/full-%d.bin", i), Content{Seed: e.Rand.Uint64(), Size: 256*kib + e.Rand.Int64N(mib)})
		sleep(ctx, time.Second)
	}
	to := e.Now()
	if err := os.Remove(filler); err != nil {
		return fmt.Errorf("free %s's disk: %w", node.Name, err)
	}
	e.Logf("freed %s's disk", node.Name)

	var pushes, refused int
	kinds := map[string]int{}
	for _, o := range e.Ops() {
		if o.Node != node.Name || o.Start < from || o.Start > to || o.Kind == invariants.KindLatest {
			continue
		}
		if o.Kind == invariants.KindPush {
			pushes++
		}
		if o.Outcome == invariants.OK {
			continue
		}
		if o.Kind == invariants.KindPush && o.Status >= 500 {
			refused++
		}
		if o.Status == 0 {
			kinds[o.ErrKind]++
		}
	}
	e.Logf("%d pushes to %s while full, %d refused with 5xx", pushes, node.Name, refused)
	for k, n := range kinds {
		e.Violate(invariants.CheckDiskFullName, "%d requests to %s failed without an HTTP answer (%s) while its disk was full", n, node.Name, k)
	}

	// Space is back: pushes to the node must succeed again.
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		op := e.Push(ctx, node, fmt.Sprintf("chaos/disk-full/after-%d.bin", i), Content{Seed: e.Rand.Uint64(), Size: 64 * kib})
		if op.Outcome == invariants.OK {
			e.Logf("%s takes pushes again", node.Name)
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			e.Violate(invariants.CheckDiskFullName, "%s still refuses pushes 30s after its disk was freed: %s", node.Name, op.Err)
			break
		}
		sleep(ctx, time.Second)
	}
	e.Healed()
	return nil
}

// skipWithoutLeave skips the leave-join scenario while pier has no leave
// command.
func skipWithoutLeave(ctx context.Context, s *Suite) string {
	if _, err := run(ctx, 30*time.Second, nil, s.pier, "leave", "--help"); err != nil {
		return "pier leave not available"
	}
	return ""
}

// leaveJoin makes a random node leave gracefully with `pier leave`, run on
// the host against the node's published port (the node's process exits when
// it has left, which would kill a command running inside its container),
// then joins a fresh node (the compose service pier6) while the workload
// runs.
func leaveJoin(ctx context.Context, e *Env) error {
	n := e.Cluster.Node(e.randomNode())
	id, err := e.Cluster.compose.Container(ctx, n.Name)
	if err != nil {
		return err
	}
	e.Logf("pier leave --server %s (%s)", n.Addr, n.Name)
	_, leaveErr := run(ctx, 2*time.Minute, nil, e.suite.pier, "leave", "--server", n.Addr)
	// Whatever the command said, a node that left stops by itself.
	exited := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; sleep(ctx, time.Second) {
		if st, err := inspect(ctx, id); err == nil && st.Status != "running" {
			exited = true
			break
		}
	}
	switch {
	case !exited && leaveErr != nil:
		return fmt.Errorf("pier leave on %s (bounded at 2m): %w", n.Name, leaveErr)
	case !exited:
		e.Violate(invariants.CheckScenarioName, "pier leave on %s succeeded but its process still runs 30s later; stopping it", n.Name)
		if err := docker(ctx, "stop", "-t", "10", id); err != nil {
			return err
		}
	case leaveErr != nil:
		e.Violate(invariants.CheckScenarioName, "%s left, but pier leave failed: %v", n.Name, leaveErr)
	}
	e.Left(n.Name)
	e.Logf("%s left", n.Name)

	fresh := "pier6"
	e.Logf("join fresh node %s", fresh)
	if err := e.Cluster.compose.UpProfile(ctx, "spare", fresh); err != nil {
		return err
	}
	if _, err := e.Cluster.add(fresh); err != nil {
		return err
	}
	e.Healed()
	return nil
}

// selectScenarios picks scenarios by name, in the order given.
func selectScenarios(list string) ([]Scenario, error) {
	if list == "" || list == "all" {
		return Scenarios, nil
	}
	var out []Scenario
	for _, name := range strings.Split(list, ",") {
		i := slices.IndexFunc(Scenarios, func(s Scenario) bool { return s.Name == strings.TrimSpace(name) })
		if i < 0 {
			return nil, errors.New("unknown scenario " + name + "; known: " + strings.Join(scenarioNames(), ", "))
		}
		out = append(out, Scenarios[i])
	}
	return out, nil
}

func scenarioNames() []string {
	out := make([]string, len(Scenarios))
	for i, s := range Scenarios {
		out[i] = s.Name
	}
	return out
}
