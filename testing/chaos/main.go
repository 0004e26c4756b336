// Command chaos runs Pier's chaos suite against a docker-compose cluster:
// it starts the 5-node cluster of the repository's docker-compose.yml,
// runs each scenario (a fault injected and healed while a workload pushes,
// pulls and tags), checks the invariants of DESIGN.md on the recorded
// history, prints a report and tears the cluster down, also on failure and
// Ctrl-C. `make chaos` builds the image and runs it; plain `go test` only
// runs the checkers' unit tests.
//
// It must run as root on the Docker host: it reads volumes on the host and
// enters the containers' network namespaces.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/pier-registry/pier/testing/invariants"
)

func main() { os.Exit(runMain()) }

func runMain() int {
	var (
		composeBin = flag.String("compose", "docker-compose", "docker-compose binary")
		file       = flag.String("file", "docker-compose.yml", "compose file")
		project    = flag.String("project", "pier-chaos", "compose project name")
		image      = flag.String("image", "pier:dev", "node image")
		pierBin    = flag.String("pier", "bin/image/pier-none", "host path of the pier binary packed in the image")
		intruder   = flag.String("intruder-image", "pier-intruder:dev", "image of testing/chaos/intruder (make intruder-image)")
		leakKey    = flag.Bool("intruder-leak-key", false, "planted fault: hand the intruder the cluster key, so that scenario intruder must fail")
		prefix     = flag.String("http-prefix", "1808", "nodes publish HTTP on 127.0.0.1:<prefix>N")
		dc2Prefix  = flag.String("dc2-http-prefix", "1809", "dc2's nodes (federation scenarios) publish HTTP on 127.0.0.1:<prefix>N")
		fedBig     = flag.Int64("fed-big-size", 256<<20, "bytes of the artifact fed-kill-leader copies")
		fault      = flag.String("fault", "", "PIER_FAULT for every node (builds with -tags faults)")
		list       = flag.String("scenarios", "all", "comma-separated scenarios: "+strings.Join(scenarioNames(), ","))
		out        = flag.String("out", "testing/chaos/out", "folder for reports, histories and logs")
		seed       = flag.Uint64("seed", 0, "random seed (0: from the clock)")
		workers    = flag.Int("workers", 6, "concurrent workload clients")
		maxOps     = flag.Int("max-ops", 3000, "workload operations per scenario at most")
		think      = flag.Duration("think", 100*time.Millisecond, "mean pause between one client's operations")
		maxLarge   = flag.Int("max-large", 1, "pushes of 8-64 MiB per scenario at most")
		warmup     = flag.Duration("warmup", 3*time.Second, "workload alone before each fault")
		expect     = flag.String("expect-violations", "", "planted-fault mode: succeed only if every scenario violates one of these checks (comma-separated)")
		keep       = flag.Bool("keep", false, "leave the cluster running at the end")
		timeout    = flag.Duration("timeout", 18*time.Minute, "stop the run (it fails) after this long")
	)
	flag.Parse()
	scenarios, err := selectScenarios(*list)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}

	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(sigCtx, *timeout)
	defer cancel()
	start := time.Now()
	outDir := filepath.Join(*out, start.Format("20060102-150405"))
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	logf := func(format string, args ...any) {
		fmt.Printf("[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	preflight(logf)

	key := make([]byte, 16)
	_, _ = rand.Read(key)
	compose := Compose{Bin: *composeBin, File: *file, Project: *project, Env: []string{
		"PIER_IMAGE=" + *image, "PIER_HTTP_PREFIX=" + *prefix, "PIER_DC2_HTTP_PREFIX=" + *dc2Prefix, "PIER_FAULT=" + *fault,
		"PIER_CLUSTER_KEY=" + hex.EncodeToString(key), "PIER_LOG_LEVEL=info",
	}}
	logf("seed %d, image %s, PIER_FAULT=%q, output in %s", *seed, *image, *fault, outDir)

	// Leftovers of an interrupted run would hold the ports.
	if err := compose.Down(ctx); err != nil {
		logf("removing leftovers: %v", err)
	}
	defer func() {
		if *keep {
			logf("cluster left running (-keep); remove it with: %s -f %s -p %s --profile spare --profile dc2 down -v", *composeBin, *file, *project)
			return
		}
		tctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		logf("tearing down")
		if err := compose.Down(tctx); err != nil {
			logf("tear down: %v", err)
		}
	}()

	logf("starting the cluster")
	if err := compose.Up(ctx, "pier1", "pier2", "pier3", "pier4", "pier5"); err != nil {
		logf("compose up: %v", err)
		return 2
	}
	cl, err := NewCluster(compose, *prefix, 5, logf)
	if err != nil {
		logf("%v", err)
		return 2
	}
	up := time.Now()
	if v := cl.Converge(ctx, up.Add(2*time.Minute), nil); len(v) > 0 {
		logf("cluster did not come up: %v", v)
		startup := &Result{Scenario: "startup", Violations: v, LogDir: filepath.Join(outDir, "startup")}
		s := &Suite{cl: cl}
		if err := s.saveEvidence(context.WithoutCancel(ctx), startup); err == nil {
			logf("logs in %s", startup.LogDir)
		}
		return 2
	}
	logf("cluster up in %.1fs", time.Since(up).Seconds())

	h := invariants.NewHistory()
	wl := NewWorkload(WorkloadConfig{Workers: *workers, MaxOps: *maxOps, Think: *think, MaxLarge: *maxLarge}, h, cl.Nodes, *seed)
	suite := &Suite{cl: cl, wl: wl, h: h, outDir: outDir, pier: *pierBin, intruderImage: *intruder, dc2Prefix: *dc2Prefix, fedBigSize: *fedBig, seed: *seed, logf: logf, reported: map[string]bool{},
		timing: Timing{Warmup: *warmup, Cooldown: 2 * time.Second, Converge: time.Minute,
			Checkpoint: 2 * time.Minute, VerifyTries: 4, VerifyBackoff: 500 * time.Millisecond, MaxWorkload: 4 * time.Minute}}
	if *leakKey {
		suite.intruderKey = hex.EncodeToString(key)
		logf("planted fault: the intruder gets the cluster key")
	}
	var results []*Result
	for _, sc := range scenarios {
		if ctx.Err() != nil {
			break
		}
		results = append(results, suite.Run(ctx, sc))
	}

	if err := h.WriteJSONL(filepath.Join(outDir, "history.jsonl")); err != nil {
		logf("write history: %v", err)
	}
	var report strings.Builder
	WriteReport(&report, results, time.Since(start))
	fmt.Print("\n" + report.String())
	_ = os.WriteFile(filepath.Join(outDir, "report.txt"), []byte(report.String()), 0o644)
	fmt.Printf("report, history and logs: %s\n", outDir)

	switch {
	case sigCtx.Err() != nil:
		fmt.Println("interrupted")
		return 130
	case ctx.Err() != nil:
		fmt.Printf("FAIL: the run took longer than -timeout %s\n", *timeout)
		return 1
	case *expect != "":
		return plantedVerdict(results, strings.Split(*expect, ","))
	}
	for _, r := range results {
		if r.Failed() {
			return 1
		}
	}
	return 0
}

// plantedVerdict is the exit code of a run against planted faults: 0 only
// if every scenario that ran found a violation of one of the expected
// checks, that is, the suite failed as it should.
func plantedVerdict(results []*Result, expect []string) int {
	code := 0
	for _, r := range results {
		if r.Skipped != "" {
			continue
		}
		if slices.ContainsFunc(r.Violations, func(v invariants.Violation) bool { return slices.Contains(expect, v.Check) }) {
			fmt.Printf("planted fault detected in %s (%v): the suite failed as expected\n", r.Scenario, expect)
			continue
		}
		fmt.Printf("planted fault NOT detected in %s: no %v violation\n", r.Scenario, expect)
		code = 1
	}
	if len(results) == 0 {
		code = 1
	}
	return code
}

// preflight warns about what some scenarios need from the host.
func preflight(logf func(string, ...any)) {
	if os.Geteuid() != 0 {
		logf("WARNING: not root; corrupt, disk-full and isolate need root on the Docker host")
	}
	for _, tool := range []string{"docker", "nsenter", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			logf("WARNING: %s not found; scenarios that need it will fail", tool)
		}
	}
}
