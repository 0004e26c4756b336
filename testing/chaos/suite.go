package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pier-registry/pier/testing/invariants"
)

// Timing bounds every wait of a scenario.
type Timing struct {
	Warmup     time.Duration // workload alone before the fault
	Cooldown   time.Duration // workload on the converged cluster before it stops
	Converge   time.Duration // healed cluster back to one leader, all alive, redundancy restored
	Checkpoint time.Duration // pulling every acknowledged push from every node
	// VerifyTries and VerifyBackoff: a checkpoint pull that fails is tried
	// again after VerifyBackoff, 2*VerifyBackoff, ..., VerifyTries times in
	// all, so a node busy electing a leader is not taken for one that lost
	// data.
	VerifyTries   int
	VerifyBackoff time.Duration
	MaxWorkload   time.Duration // hard stop for one scenario's workload
}

// Suite runs scenarios one after the other against one cluster, with the
// workload running throughout each, and checks the invariants after each.
type Suite struct {
	cl     *Cluster
	wl     *Workload
	h      *invariants.History
	timing Timing
	outDir string
	pier   string // host path of the pier binary in the image
	seed   uint64
	logf   func(format string, args ...any)

	reported map[string]bool // cumulative violations already reported
	runs     uint64

	intruderImage string // image of testing/chaos/intruder
	intruderKey   string // the key the intruder attacks with; empty: its own wrong one

	// The federation scenarios' second datacenter (federation.go): its
	// nodes publish HTTP on 127.0.0.1:<dc2Prefix>N; started by the first
	// scenario that needs it.
	dc2Prefix  string
	dc2        dc2
	fedBigSize int64 // the artifact fed-kill-leader copies
}

// Result is one row of the report.
type Result struct {
	Scenario   string
	Skipped    string // why, when the scenario did not run
	Ops        int    // workload operations
	Acked      int    // pushes acknowledged during the scenario
	Lost       int    // acknowledged pushes not pulled back intact
	Wrong      int    // reads that delivered wrong bytes
	Errors     map[string]int
	Recover    time.Duration // heal to converged; negative: never
	Redundancy string
	Violations []invariants.Violation
	Notes      []string // a scenario's own figures, printed below the table
	LogDir     string
	Took       time.Duration
}

// Failed reports whether any invariant was violated.
func (r *Result) Failed() bool { return len(r.Violations) > 0 }

// Count returns the number of violations of one check.
func (r *Result) Count(check string) int {
	n := 0
	for _, v := range r.Violations {
		if v.Check == check {
			n++
		}
	}
	return n
}

// Env is what a scenario works with.
type Env struct {
	Cluster  *Cluster
	Rand     *rand.Rand
	suite    *Suite
	scenario string
	res      *Result

	mu          sync.Mutex
	healed      time.Duration
	checkpoints []checkpoint
	gone        []string
	start       time.Duration // the history's clock when the scenario began
}

type checkpoint struct {
	phase  string
	nodes  []string
	before time.Duration
	since  time.Duration // the scenario's start: older pushes go to one node each
}

// Logf prints a progress line.
func (e *Env) Logf(format string, args ...any) {
	e.suite.logf("%s: %s", e.scenario, fmt.Sprintf(format, args...))
}

// Hold lets the workload run for d (less if the run is cancelled).
func (e *Env) Hold(ctx context.Context, d time.Duration) {
	e.Logf("holding %s", d)
	sleep(ctx, d)
}

// Healed marks the moment the fault was removed; recovery time counts from
// here.
func (e *Env) Healed() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.healed = e.suite.h.Now()
	e.suite.logf("%s: healed", e.scenario)
}

// Violate records a broken invariant found by the scenario itself.
func (e *Env) Violate(check, format string, args ...any) {
	v := invariants.Violation{Check: check, Detail: fmt.Sprintf(format, args...)}
	e.mu.Lock()
	e.res.Violations = append(e.res.Violations, v)
	e.mu.Unlock()
	e.Logf("VIOLATION %s", v)
}

// Note records a line of the scenario's own figures for the report.
func (e *Env) Note(line string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.res.Notes = append(e.res.Notes, line)
}

// Left records that node left the cluster for good.
func (e *Env) Left(node string) {
	e.mu.Lock()
	e.gone = append(e.gone, node)
	e.mu.Unlock()
	e.Cluster.remove(node)
}

// Push pushes content under name to n, as the workload would, and returns
// the recorded operation.
func (e *Env) Push(ctx context.Context, n *Node, name string, c Content) invariants.Op {
	return e.suite.wl.push(ctx, e.scenario, -2, n, name, c)
}

// Ops returns the operations of this scenario so far.
func (e *Env) Ops() []invariants.Op { return e.suite.h.Scenario(e.scenario) }

// Now reads the history's clock.
func (e *Env) Now() time.Duration { return e.suite.h.Now() }

// OutDir is where the scenario may leave files for the reader.
func (e *Env) OutDir() string { return filepath.Join(e.suite.outDir, e.scenario) }

// Checkpoint pulls every push acknowledged so far and records the pulls;
// CheckLost judges them after the scenario. The scenario's own pushes are
// pulled from each of nodes, older ones from one of them each
// (invariants.CheckpointNodes).
func (e *Env) Checkpoint(ctx context.Context, phase string, nodes []*Node) {
	phase = e.scenario + ":" + phase
	nodeNames := names(nodes)
	before := e.suite.wl.Barrier()
	var due []invariants.Op
	own := 0
	for _, a := range invariants.SortedAcks(e.suite.h.Ops()) {
		if a.End <= before {
			due = append(due, a)
			if a.End >= e.start {
				own++
			}
		}
	}
	e.Logf("checkpoint %s: pulling %d acknowledged pushes, this scenario's %d from each of %v and the others from one each",
		phase, len(due), own, nodeNames)
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, e.suite.timing.Checkpoint)
	defer cancel()
	// Each node has workers of its own, so a node that hangs delays only
	// its own pulls.
	var wg sync.WaitGroup
	for _, n := range nodes {
		jobs := make(chan invariants.Op)
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ack := range jobs {
					for try := 1; ctx.Err() == nil; try++ {
						op := e.suite.wl.pull(ctx, e.scenario, phase, invariants.KindVerify, -1, n, ack.Name, ack.Size)
						if (op.Outcome == invariants.OK && op.Complete && op.Digest == ack.Sent) || try >= e.suite.timing.VerifyTries {
							break
						}
						sleep(ctx, time.Duration(try)*e.suite.timing.VerifyBackoff)
					}
				}
			}()
		}
		go func() {
			defer close(jobs)
			for _, a := range due {
				if !slices.Contains(invariants.CheckpointNodes(a, phase, nodeNames, e.start), n.Name) {
					continue
				}
				select {
				case jobs <- a:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	wg.Wait()
	e.Logf("checkpoint %s took %.1fs", phase, time.Since(start).Seconds())
	e.mu.Lock()
	e.checkpoints = append(e.checkpoints, checkpoint{phase: phase, nodes: nodeNames, before: before, since: e.start})
	e.mu.Unlock()
}

// Run runs one scenario: it waits for a healthy cluster, starts the
// workload, lets the scenario inject and heal its fault, waits for the
// cluster to converge, stops the workload, pulls everything back from every
// node and checks the history.
func (s *Suite) Run(ctx context.Context, sc Scenario) *Result {
	start := time.Now()
	res := &Result{Scenario: sc.Name, Errors: map[string]int{}, Recover: -1}
	defer func() { res.Took = time.Since(start) }()
	s.logf("=== %s: %s", sc.Name, sc.About)
	if sc.Skip != nil {
		if why := sc.Skip(ctx, s); why != "" {
			res.Skipped = why
			s.logf("SKIP: %s", why)
			return res
		}
	}
	s.runs++
	env := &Env{Cluster: s.cl, Rand: rand.New(rand.NewPCG(s.seed, s.runs)), suite: s, scenario: sc.Name, res: res, start: s.h.Now()}

	// The cluster must be healthy to start; redundancy an earlier scenario
	// left degraded is this one's baseline, which it must not make worse.
	for _, v := range s.cl.Converge(ctx, time.Now().Add(s.timing.Converge), nil) {
		if v.Check == invariants.CheckCrashName {
			res.Violations = append(res.Violations, v)
			continue
		}
		res.Violations = append(res.Violations, invariants.Violation{Check: invariants.CheckScenarioName, Detail: "cluster not healthy before the scenario: " + v.Detail})
	}
	if res.Failed() {
		s.finish(ctx, env)
		return res
	}
	base := s.cl.Baseline(ctx, 20*time.Second)
	if base != nil {
		s.logf("%s: redundancy before the scenario is not full (%s); the scenario must not make it worse", sc.Name, base)
	}

	wctx, stopWorkload := context.WithTimeout(ctx, s.timing.MaxWorkload)
	defer stopWorkload()
	workloadDone := make(chan struct{})
	go func() {
		defer close(workloadDone)
		s.wl.Run(wctx, sc.Name)
	}()
	sleep(ctx, s.timing.Warmup)

	if err := sc.Run(ctx, env); err != nil {
		env.Violate(invariants.CheckScenarioName, "%v", err)
	}
	env.mu.Lock()
	if env.healed == 0 {
		env.healed = s.h.Now()
	}
	healed, gone := env.healed, slices.Clone(env.gone)
	env.mu.Unlock()

	deadline := time.Now().Add(s.timing.Converge)
	conv := s.cl.Converge(ctx, deadline, gone)
	res.Violations = append(res.Violations, conv...)
	if !slices.ContainsFunc(conv, func(v invariants.Violation) bool { return v.Check != invariants.CheckCrashName }) {
		members := s.h.Now() - healed
		var red []invariants.Violation
		res.Redundancy, red = s.cl.WaitRedundancy(ctx, deadline, base)
		res.Violations = append(res.Violations, red...)
		if len(red) == 0 {
			res.Recover = s.h.Now() - healed
			s.logf("%s: converged %.1fs after healing: members %.1fs, redundancy %s", sc.Name, res.Recover.Seconds(), members.Seconds(), res.Redundancy)
		}
	}
	if res.Redundancy == "endpoint not available" {
		s.logf("redundancy check: endpoint not available")
	}
	sleep(ctx, s.timing.Cooldown)
	stopWorkload()
	<-workloadDone

	env.Checkpoint(ctx, "after", s.cl.Nodes())
	s.finish(ctx, env)
	return res
}

// finish checks the scenario's history and keeps the logs of a failure. A
// scenario cut short by Ctrl-C or the run's timeout is not judged: its
// checkpoints never ran.
func (s *Suite) finish(ctx context.Context, env *Env) {
	res := env.res
	if ctx.Err() != nil {
		res.Skipped, res.Violations = "interrupted", nil
		return
	}
	Evaluate(res, s.h.Ops(), env.checkpoints, s.reported, env.OutDir())
	if res.Failed() {
		res.LogDir = env.OutDir()
		if err := s.saveEvidence(ctx, res); err != nil {
			s.logf("%s: saving logs: %v", res.Scenario, err)
		}
	}
	s.logf("%s: %d ops, %d acked, %d lost, %d wrong, %d violations", res.Scenario, res.Ops, res.Acked, res.Lost, res.Wrong, len(res.Violations))
}

// Evaluate fills res from the history: counts of the scenario's
// operations, and the violations of every check. all is the whole history
// so far; checkpoints are the scenario's. What stays broken across
// scenarios (a lost artifact, one served wrong, a name with two digests) is
// reported by the first scenario that finds it, remembered in reported.
func Evaluate(res *Result, all []invariants.Op, checkpoints []checkpoint, reported map[string]bool, visDir string) {
	ops := slices.DeleteFunc(slices.Clone(all), func(o invariants.Op) bool { return o.Scenario != res.Scenario })
	acks := invariants.Acks(all)
	for _, o := range ops {
		if o.Kind == invariants.KindVerify {
			continue
		}
		res.Ops++
		if o.Acked() {
			res.Acked++
		}
		// A latest query that matches nothing is an answer, not an error,
		// and a request cut off by the workload's own stop is no error of
		// the cluster's.
		if o.Outcome != invariants.OK && !(o.Kind == invariants.KindLatest && o.Status == 404) && o.ErrKind != "cancelled" {
			res.Errors[o.ErrKind]++
		}
	}

	// An artifact lost, or served wrong, stays so in later checkpoints; it
	// is reported by the first scenario that finds it.
	var v []invariants.Violation
	lost := map[string]bool{}
	for _, cp := range checkpoints {
		for _, l := range invariants.CheckLost(all, cp.phase, cp.nodes, cp.before, cp.since) {
			if l.Check == invariants.CheckUnverifiedName {
				v = append(v, l)
				continue
			}
			if !reported["lost "+l.Name] || lost[l.Name] {
				reported["lost "+l.Name] = true
				lost[l.Name] = true
				v = append(v, l)
			}
		}
	}
	res.Lost = len(lost)
	wrongNames := map[string]bool{}
	for _, w := range invariants.CheckWrongBytes(ops, acks) {
		if !reported["wrong "+w.Name] || wrongNames[w.Name] {
			reported["wrong "+w.Name] = true
			wrongNames[w.Name] = true
			res.Wrong++
			v = append(v, w)
		}
	}
	v = append(v, invariants.CheckReadAfterWrite(ops, acks)...)
	for _, b := range invariants.CheckBindings(all) {
		if !reported[b.Detail] {
			reported[b.Detail] = true
			v = append(v, b)
		}
	}
	pool := map[string]bool{}
	for _, n := range TagPool(res.Scenario) {
		pool[n] = true
	}
	v = append(v, invariants.CheckTags(ops, pool, visDir, time.Minute)...)
	res.Violations = append(res.Violations, v...)
}

// saveEvidence writes every container's log and the violations to the
// scenario's folder.
func (s *Suite) saveEvidence(ctx context.Context, res *Result) error {
	if err := os.MkdirAll(res.LogDir, 0o755); err != nil {
		return err
	}
	var b strings.Builder
	for _, v := range res.Violations {
		b.WriteString(v.String() + "\n")
	}
	if err := os.WriteFile(filepath.Join(res.LogDir, "violations.txt"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	svcs, err := s.cl.compose.Services(ctx)
	if err != nil {
		return err
	}
	for svc, id := range svcs {
		if err := saveLogs(ctx, id, filepath.Join(res.LogDir, svc+".log")); err != nil {
			return err
		}
	}
	return nil
}
