// Command benchrun is `make bench`: it starts a local 3-node Pier cluster of
// real `pier serve` processes and, in the same run on the same machine, an
// nginx with PUT enabled as the single-node baseline, then measures big
// pushes and pulls, a pull with one node down, and 10 KiB request rates
// with wrk, and prints one table comparing the two.
//
// Everything listens on 127.0.0.1 only, every wait and loop is bounded, and
// every child is stopped at the end, on error and on Ctrl-C. It exits 0
// when it ran to the end (missed targets are reported, not failures) and
// non-zero when something broke: a process would not start, a transfer
// failed or returned the wrong bytes, wrk saw no results.
//
// See BENCHMARKS.md at the repository root.
package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pier-registry/pier/cmd/pier/bytesize"
)

//go:embed lua/*.lua
var luaFS embed.FS

type config struct {
	pierBin, nginxBin  string
	big, medium        int64
	reps, bigReps      int
	objects, objSize   int
	wrkDur             time.Duration
	wrkThreads         int
	getConns, putConns int
	mdPath, workParent string
	keep               bool
	readyTimeout       time.Duration
	// The peers (empty: not run) and the wave.
	minioBin, seaweedBin string
	waveSize             int64
	waveClients          []int
	// profileDir, when set, gets CPU profiles of the nodes (--pprof) for
	// each of Pier's phases, profileSecs long at most.
	profileDir  string
	profileSecs int
	// only, when not empty, names the phases to run; the others are
	// skipped (a quick measurement of one change, not a full report).
	only map[string]bool
}

// phases are the parts of a run that -only can pick.
var phases = []string{"transfers", "waves", "small", "degraded"}

// runs reports whether phase is part of this run.
func (c *config) runs(phase string) bool { return len(c.only) == 0 || c.only[phase] }

func main() {
	var cfg config
	fs := flag.NewFlagSet("benchrun", flag.ExitOnError)
	fs.StringVar(&cfg.pierBin, "pier", env("BENCH_PIER", "bin/pier"), "pier binary (copied into the work dir for the run) [BENCH_PIER]")
	fs.StringVar(&cfg.nginxBin, "nginx", env("BENCH_NGINX", "nginx"), "nginx binary, built with the dav module [BENCH_NGINX]")
	big := fs.String("big", env("BENCH_BIG", "1G"), "size of the big file, e.g. 1G, 256M [BENCH_BIG]")
	medium := fs.String("medium", env("BENCH_MEDIUM", "64M"), "size of the medium file [BENCH_MEDIUM]")
	fs.IntVar(&cfg.reps, "reps", envInt("BENCH_REPS", 5), "runs of each medium-file transfer; the median is reported [BENCH_REPS]")
	fs.IntVar(&cfg.bigReps, "big-reps", envInt("BENCH_BIG_REPS", 3), "runs of each big-file transfer [BENCH_BIG_REPS]")
	fs.IntVar(&cfg.objects, "objects", envInt("BENCH_OBJECTS", 1000), "small objects seeded for the GET load [BENCH_OBJECTS]")
	objSize := fs.String("object-size", env("BENCH_OBJECT_SIZE", "10K"), "small object size [BENCH_OBJECT_SIZE]")
	fs.DurationVar(&cfg.wrkDur, "duration", envDur("BENCH_WRK_DURATION", 10*time.Second), "each wrk run, whole seconds [BENCH_WRK_DURATION]")
	fs.IntVar(&cfg.wrkThreads, "wrk-threads", envInt("BENCH_WRK_THREADS", 2), "wrk -t [BENCH_WRK_THREADS]")
	fs.IntVar(&cfg.getConns, "get-conns", envInt("BENCH_GET_CONNS", 64), "connections of the small GET load")
	fs.IntVar(&cfg.putConns, "put-conns", envInt("BENCH_PUT_CONNS", 16), "connections of the small PUT load")
	fs.StringVar(&cfg.mdPath, "md", env("BENCH_MD", ""), "also write the report as markdown to this file [BENCH_MD]")
	fs.StringVar(&cfg.workParent, "workdir", env("BENCH_WORKDIR", os.TempDir()), "parent of the temporary work dir [BENCH_WORKDIR]")
	fs.BoolVar(&cfg.keep, "keep", os.Getenv("BENCH_KEEP") == "1", "keep the work dir (data, logs) at the end [BENCH_KEEP=1]")
	fs.DurationVar(&cfg.readyTimeout, "ready-timeout", 60*time.Second, "wait at most this long for each node's /readyz")
	fs.StringVar(&cfg.minioBin, "minio", os.Getenv("BENCH_MINIO"), "a minio binary: run every row against MinIO too (4 drives, EC:2); never downloaded [BENCH_MINIO]")
	fs.StringVar(&cfg.seaweedBin, "seaweedfs", os.Getenv("BENCH_SEAWEEDFS"), "a weed binary: run every row against SeaweedFS too (weed server with filer); never downloaded [BENCH_SEAWEEDFS]")
	waveSize := fs.String("wave-size", env("BENCH_WAVE_SIZE", "256M"), "size of the wave's artifact [BENCH_WAVE_SIZE]")
	waveClients := fs.String("wave-clients", env("BENCH_WAVE_CLIENTS", "32,128"), "clients of each wave, comma-separated; none for no wave [BENCH_WAVE_CLIENTS]")
	fs.StringVar(&cfg.profileDir, "profile", os.Getenv("BENCH_PROFILE"), "write CPU profiles of the nodes (run with --pprof) for each of Pier's phases to this directory [BENCH_PROFILE]")
	fs.IntVar(&cfg.profileSecs, "profile-seconds", envInt("BENCH_PROFILE_SECONDS", 8), "length of each phase's profile, at most [BENCH_PROFILE_SECONDS]")
	only := fs.String("only", os.Getenv("BENCH_ONLY"), "run only these phases, comma-separated: "+strings.Join(phases, ",")+" [BENCH_ONLY]")
	_ = fs.Parse(os.Args[1:])

	var err error
	if cfg.big, err = parseSize(*big); err == nil {
		if cfg.medium, err = parseSize(*medium); err == nil {
			var n int64
			n, err = parseSize(*objSize)
			cfg.objSize = int(n)
		}
	}
	if err == nil {
		cfg.waveSize, err = parseSize(*waveSize)
	}
	if err == nil {
		cfg.waveClients, err = parseClients(*waveClients)
	}
	if err == nil && *only != "" {
		cfg.only = map[string]bool{}
		for _, p := range strings.Split(*only, ",") {
			if p = strings.TrimSpace(p); !slices.Contains(phases, p) {
				err = fmt.Errorf("-only: unknown phase %q (phases: %s)", p, strings.Join(phases, ", "))
				break
			}
			cfg.only[p] = true
		}
		if err == nil && cfg.only["degraded"] && !cfg.only["transfers"] {
			err = errors.New("-only: degraded pulls the files transfers pushes; name both")
		}
	}
	switch {
	case err != nil:
	case cfg.reps < 1 || cfg.reps > 20 || cfg.bigReps < 1 || cfg.bigReps > 10:
		err = errors.New("-reps must be 1..20 and -big-reps 1..10")
	case cfg.objects < 1 || cfg.objects > 1_000_000 || cfg.objSize < 1 || cfg.objSize > 16<<20:
		err = errors.New("-objects must be 1..1000000 and -object-size 1B..16M")
	case cfg.wrkDur < time.Second || cfg.wrkDur > 10*time.Minute:
		err = errors.New("-duration must be 1s..10m")
	case cfg.big == cfg.medium:
		err = errors.New("-big and -medium must differ")
	case cfg.big > 64<<30:
		err = errors.New("-big over 64G is not a benchmark this driver should run")
	case cfg.profileSecs < 1 || cfg.profileSecs > 120:
		err = errors.New("-profile-seconds must be 1..120")
	case cfg.waveSize > 4<<30:
		err = errors.New("-wave-size over 4G is not a benchmark this driver should run")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg)
	interrupted := ctx.Err() != nil
	stop()
	if err != nil {
		if interrupted {
			fmt.Fprintln(os.Stderr, "benchrun: interrupted")
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		os.Exit(1)
	}
}

var errFailed = errors.New("some measurements failed (see FAILURES above)")

func run(ctx context.Context, cfg config) (err error) {
	rep := &report{}
	for _, tool := range []string{cfg.nginxBin, "wrk"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (testing/bench/bench.sh installs it): %w", tool, err)
		}
	}
	for _, bin := range []string{cfg.minioBin, cfg.seaweedBin} {
		if bin == "" {
			continue
		}
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("peer binary %s (the bench runs what it is given and downloads nothing): %w", bin, err)
		}
	}
	// The files, nginx's copies (one per run), Pier's shards (1.5x per run
	// with 2+1 erasure coding), MinIO's (2x, EC:2 on 4 drives), SeaweedFS's
	// (one copy), the waves' files and the 10 KiB loads; and each node's
	// pull cache (a copy of the big and medium files, one of each wave's).
	perRun := int64(5)
	if cfg.minioBin != "" {
		perRun += 4
	}
	if cfg.seaweedBin != "" {
		perRun += 2
	}
	waves := int64(len(cfg.waveClients)) * cfg.waveSize
	need := cfg.big*(1+int64(cfg.bigReps)*perRun/2) + cfg.medium*(1+int64(cfg.reps)*perRun/2) +
		waves*(2+perRun/2+3) + 3*(cfg.big+cfg.medium) + 2<<30
	var st syscall.Statfs_t
	if err := syscall.Statfs(cfg.workParent, &st); err == nil && int64(st.Bavail)*st.Bsize < need {
		return fmt.Errorf("%s has %s free, the run needs about %s (set BENCH_WORKDIR or a smaller BENCH_BIG)",
			cfg.workParent, fmtBytes1(int64(st.Bavail)*st.Bsize), fmtBytes1(need))
	}
	work, err := os.MkdirTemp(cfg.workParent, "pier-bench-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil && !cfg.keep && ctx.Err() == nil {
			fmt.Fprintln(os.Stderr, "bench: the work dir and its logs are removed; BENCH_KEEP=1 (or -keep) keeps them")
		}
		if cfg.keep {
			fmt.Fprintf(os.Stderr, "bench: work dir kept: %s\n", work)
			return
		}
		if rerr := os.RemoveAll(work); rerr != nil {
			fmt.Fprintf(os.Stderr, "bench: removing %s: %v\n", work, rerr)
		}
	}()
	fmt.Fprintf(os.Stderr, "bench: work dir %s\n", work)

	busy := idleCheck(2 * time.Second)
	if busy > 0.1 {
		fmt.Fprintf(os.Stderr, "bench: WARNING: other processes keep %.0f%% of the CPUs busy; the numbers will be low and noisy\n", 100*busy)
	}
	ledger := newLedger()

	// Run a copy, so a rebuild of bin/pier during the run changes nothing.
	pierBin := filepath.Join(work, "pier-under-test")
	if err := copyFile(cfg.pierBin, pierBin, 0o755); err != nil {
		return fmt.Errorf("pier binary: %w", err)
	}
	machineMeta(ctx, rep, cfg, pierBin)
	if pc, err := pageCacheGrowth(work, 256<<20, 4*time.Second); err == nil {
		rep.addMeta("page cache", pc)
	} else {
		rep.addMeta("page cache", err.Error())
	}
	if fl, err := fsyncLatency(work, 200, 10<<10); err == nil {
		rep.addMeta("fdatasync", fl)
	} else {
		rep.addMeta("fdatasync", err.Error())
	}

	step := func(f string, a ...any) { fmt.Fprintf(os.Stderr, "bench: "+f+"\n", a...) }

	step("writing the %s and %s files", fmtBytes(cfg.big), fmtBytes(cfg.medium))
	src := filepath.Join(work, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	files := []*testFile{
		{label: "medium", size: cfg.medium, reps: cfg.reps, path: filepath.Join(src, "medium.bin")},
		{label: "big", size: cfg.big, reps: cfg.bigReps, path: filepath.Join(src, "big.bin")},
	}
	for i, f := range files {
		if f.digest, err = genFile(f.path, f.size, uint64(i+1)); err != nil {
			return fmt.Errorf("write %s: %w", f.path, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}

	step("starting nginx")
	ng, err := startNginx(ctx, cfg.nginxBin, work)
	if err != nil {
		return err
	}
	defer func() {
		ng.stop()
	}()
	step("starting 3 pier nodes")
	if cfg.profileDir != "" {
		if err := os.MkdirAll(cfg.profileDir, 0o755); err != nil {
			return fmt.Errorf("profile dir: %w", err)
		}
	}
	cl, err := startPier(ctx, pierBin, work, 3, cfg.readyTimeout, cfg.profileDir != "")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "bench: last lines of the node logs:\n%s", cl.tails(15))
		}
		for _, nd := range cl.nodes {
			if !nd.p.exited() {
				step("stopping pier and nginx")
				break
			}
		}
		cl.stop()
	}()
	var peers []*peerServer
	defer func() {
		for _, p := range peers {
			p.stop()
		}
	}()
	if cfg.minioBin != "" {
		step("starting minio (4 drives, EC:2)")
		p, err := startMinio(ctx, cfg.minioBin, work)
		if err != nil {
			return err
		}
		peers = append(peers, p)
	}
	if cfg.seaweedBin != "" {
		step("starting seaweedfs (weed server with filer)")
		p, err := startSeaweed(ctx, cfg.seaweedBin, work)
		if err != nil {
			return err
		}
		peers = append(peers, p)
	}
	for _, p := range peers {
		rep.peers = append(rep.peers, p.name)
		rep.addMeta(p.name, p.version+"; "+p.setup)
	}
	leader := cl.leader(ctx)
	pushNode, pullNode := cl.nodes[0], cl.nodes[1]
	rep.addMeta("cluster", fmt.Sprintf("3 nodes on 127.0.0.1, leader at start %s; pushes and the wrk PUT load go to %s, pulls and the wrk GET load to %s", leader, pushNode.id, pullNode.id))

	b := &bench{ctx: ctx, cfg: cfg, rep: rep, ng: ng, cl: cl, peers: peers, push: pushNode, pull: pullNode, work: work, step: step}

	// Big transfers, healthy cluster.
	for _, f := range files {
		if !cfg.runs("transfers") {
			break
		}
		if err := b.transfers(f); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			rep.fail(fmt.Sprintf("push/pull %s", fmtBytes(f.size)), err)
		}
	}
	// Deployment waves, healthy cluster.
	for i, n := range cfg.waveClients {
		if !cfg.runs("waves") {
			break
		}
		if err := b.wave(n, uint64(100+i)); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			rep.fail(fmt.Sprintf("wave of %d clients", n), err)
		}
	}
	// Small objects with wrk, healthy cluster.
	if cfg.runs("small") {
		if err := b.smallObjects(); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			rep.fail(fmt.Sprintf("%s objects", fmtBytes(int64(cfg.objSize))), err)
		}
	}
	// One node down.
	if cfg.runs("degraded") {
		if err := b.degraded(files, leader); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			rep.fail("pull with 1 of 3 nodes down", err)
		}
	}

	// Peak RSS, read while the processes are still up.
	cl.recordRSS()
	for _, nd := range cl.nodes {
		role := "follower at start"
		if nd.id == leader {
			role = "leader at start"
		}
		switch nd {
		case pushNode:
			role += "; push target"
		case pullNode:
			role += "; pull target"
		}
		if nd.down {
			role += "; SIGKILLed for the degraded pull (peak read before the kill)"
		}
		peak := "?"
		if nd.hwm > 0 {
			peak = fmtBytes1(nd.hwm)
		}
		rep.rss = append(rep.rss, rssRow{"pier " + nd.id, role, peak})
	}
	m, ws := ng.peakRSS()
	rep.rss = append(rep.rss, rssRow{"nginx master", "reference", fmtBytes1(m)})
	for i, w := range ws {
		rep.rss = append(rep.rss, rssRow{fmt.Sprintf("nginx worker %d", i+1), "reference", fmtBytes1(w)})
	}
	for _, p := range peers {
		v, _ := vmHWM(p.p.pid())
		rep.rss = append(rep.rss, rssRow{p.name, "peer", fmtBytes1(v)})
	}

	// Stop everything now (the deferred stops are then no-ops), so that
	// every child is reaped and its CPU time counted as ours.
	step("stopping pier, nginx and the peers")
	cl.stop()
	ng.stop()
	for _, p := range peers {
		p.stop()
	}
	desc, frac := ledger.other()
	quiet := "yes"
	if busy > 0.1 || frac > 0.1 {
		quiet = "NO: the numbers are low and noisy; rerun on an idle machine"
	}
	rep.addMeta("idle machine?", fmt.Sprintf("%s (other processes: %.0f%% of the CPUs busy just before the start, %s)", quiet, 100*busy, desc))

	fmt.Println()
	rep.text(os.Stdout)
	if cfg.mdPath != "" {
		if werr := writeMarkdown(cfg.mdPath, rep); werr != nil {
			return werr
		}
		step("markdown report written to %s", cfg.mdPath)
	}
	if len(rep.fails) > 0 {
		return errFailed
	}
	return nil
}

func writeMarkdown(path string, rep *report) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	rep.markdown(f)
	return f.Close()
}

func fmtBytes1(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// machineMeta notes what the numbers came from.
func machineMeta(ctx context.Context, rep *report, cfg config, pierBin string) {
	rep.addMeta("date", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	commit := cmdOut(ctx, "git", "rev-parse", "--short", "HEAD")
	if s := cmdOut(ctx, "git", "status", "--porcelain", "--untracked-files=no"); s != "" && s != "unknown" {
		commit += " (work tree has uncommitted changes)"
	}
	rep.addMeta("commit", "HEAD "+commit)
	rep.addMeta("pier binary", pierVersion(pierBin))
	rep.addMeta("machine", fmt.Sprintf("%d CPUs (%s), %s RAM, kernel %s, %s",
		runtime.NumCPU(), cpuModel(), memTotal(), strings.TrimSpace(readFile("/proc/sys/kernel/osrelease")), runtime.Version()))
	if thp := strings.TrimSpace(readFile("/sys/kernel/mm/transparent_hugepage/shmem_enabled")); thp != "" {
		// Pier's pinned pull cache entries are shared memory: huge pages
		// there make writing them out cheaper (docs/operations.md).
		rep.addMeta("shared memory huge pages", thp)
	}
	rep.addMeta("baseline", strings.TrimPrefix(cmdOut(ctx, cfg.nginxBin, "-v"), "nginx version: ")+
		", worker_processes 2, sendfile on, access_log off, PUT via dav_methods")
	rep.addMeta("load", fmt.Sprintf("%s, wrk -t%d -d%s --latency, GET at %d connections over %d seeded %s objects, PUT at %d connections (a new name and body per request)",
		strings.SplitN(firstLine(cmdOut(ctx, "wrk", "-v")), " [", 2)[0], cfg.wrkThreads, cfg.wrkDur, cfg.getConns, cfg.objects, fmtBytes(int64(cfg.objSize)), cfg.putConns))
	rep.addMeta("transfers", fmt.Sprintf("Go net/http client, PUT streamed from a file in the page cache with Content-Length, GET read and dropped; median of %d runs (%s) and %d run(s) (%s), of three times as many hot pulls; MB = 10^6 bytes",
		cfg.reps, fmtBytes(cfg.medium), cfg.bigReps, fmtBytes(cfg.big)))
}

func cmdOut(ctx context.Context, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func firstLine(s string) string { return strings.SplitN(s, "\n", 2)[0] }

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func cpuModel() string {
	for _, l := range strings.Split(readFile("/proc/cpuinfo"), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func memTotal() string {
	for _, l := range strings.Split(readFile("/proc/meminfo"), "\n") {
		if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil {
				return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	return "unknown"
}

func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func envInt(k string, def int) int {
	if v := os.Getenv(k); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			fmt.Fprintf(os.Stderr, "benchrun: %s=%q: %v\n", k, v, err)
			os.Exit(2)
		}
		return n
	}
	return def
}

func envDur(k string, def time.Duration) time.Duration {
	if v := os.Getenv(k); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			fmt.Fprintf(os.Stderr, "benchrun: %s=%q: %v\n", k, v, err)
			os.Exit(2)
		}
		return d
	}
	return def
}

// parseClients reads the waves' client counts: "32,128", or "none".
func parseClients(s string) ([]int, error) {
	if s = strings.TrimSpace(s); s == "" || s == "none" || s == "0" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1024 {
			return nil, fmt.Errorf("wave clients %q: want counts of 1..1024, comma-separated", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// parseSize reads 1G, 64M, 10K, 512 (binary multiples, as pier's flags
// read them); a benchmark size must be positive.
func parseSize(s string) (int64, error) {
	n, err := bytesize.Parse(s)
	if err != nil {
		return 0, err
	}
	if n <= 0 {
		return 0, fmt.Errorf("size %q: want a positive size", s)
	}
	return n, nil
}
