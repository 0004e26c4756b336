package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/pier-registry/pier/fsm"
)

// result is what one size measured; the child prints it as JSON.
type result struct {
	N     int
	Build time.Duration
	// Built is the footprint of the built state after a collection,
	// Restored that of the same state restored from its snapshot.
	Built, Restored memory
	Baseline        memory
	// SnapshotCall is the Snapshot call on a quiet FSM; under raft it runs
	// on the FSM goroutine, so Apply waits for all of it.
	SnapshotCall time.Duration
	// PersistDiscard is Persist to io.Discard: encoding alone.
	PersistDiscard time.Duration
	// SnapshotBusy and PersistFile are a second snapshot, taken and
	// persisted to a synced file while the applier pushes artifacts.
	SnapshotBusy time.Duration
	PersistFile  time.Duration
	FileBytes    int64
	// Quiet is Apply with no snapshot running; During is Apply while the
	// second snapshot is taken and persisted.
	Quiet, During latencies
	// GCPause and RunWait are the longest stop-the-world GC pause and
	// the longest a runnable goroutine waited for a CPU while the second
	// snapshot was taken and persisted (upper bounds of the runtime's
	// histogram buckets): Apply stalls that no lock of the FSM causes.
	GCPause, RunWait time.Duration
	ListPrefix       time.Duration
	ListAll          time.Duration
	LatestTag        time.Duration
	Restore          time.Duration
	PeakRSS          int64
	// The peak RSS of each phase (VmHWM, reset at the phase's start):
	// building the state, the two snapshots, and the restore (with the
	// built state released).
	PeakBuild, PeakSnapshot, PeakRestore int64
	// Load is the machine's load average (1 minute) when the snapshot
	// under load ended: Apply latencies on a busy machine count the
	// time the kernel ran other processes on its cores.
	Load string
}

// measureOne runs every measurement on n artifacts in this process, writing
// the snapshot file under dir; progress goes to the log.
func measureOne(n int, dir string, quietApplies int, prof *profiler) (*result, error) {
	r := &result{N: n, Baseline: settle()}
	if err := resetPeak(); err != nil {
		log.Print(err)
	}
	f := fsm.New()
	prof.start("build")
	start := time.Now()
	for i := range n {
		res := f.ApplyCommand(uint64(i+1), putCommand(i))
		if res.Status != fsm.StatusCreated {
			return nil, fmt.Errorf("build: artifact %d: %s %s", i, res.Status, res.Message)
		}
	}
	r.Build = time.Since(start)
	r.PeakBuild = procStatus("VmHWM")
	prof.stop("build")
	r.Built = settle()
	_ = resetPeak() // a failure was logged at the start
	log.Printf("%d: built in %v, %v", n, r.Build.Round(time.Millisecond), r.Built)

	// The applier's pace: a busy registry, well under what the FSM takes.
	app := &applier{f: f, next: n, interval: 500 * time.Microsecond}
	var err error
	if r.Quiet, err = app.runCount(quietApplies); err != nil {
		return nil, err
	}

	start = time.Now()
	snap, err := f.Snapshot()
	r.SnapshotCall = time.Since(start)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	discard := &discardSink{}
	start = time.Now()
	if err := snap.Persist(discard); err != nil {
		return nil, fmt.Errorf("persist to io.Discard: %w", err)
	}
	r.PersistDiscard = time.Since(start)
	snap.Release()
	log.Printf("%d: snapshot %v, persist to io.Discard %v (%s)", n, r.SnapshotCall, r.PersistDiscard.Round(time.Millisecond), fmtBytes(discard.n))

	path := filepath.Join(dir, fmt.Sprintf("meta-%d.snap", n))
	defer os.Remove(path)
	if err := persistWhileApplying(r, f, app, path); err != nil {
		return nil, err
	}
	log.Printf("%d: under load: snapshot %v, persist to file %v, worst apply %v over %d, %v of those not switched out (%d were; GC pause %v, run queue wait %v, load %s)",
		n, r.SnapshotBusy, r.PersistFile.Round(time.Millisecond), r.During.Max, r.During.N, r.During.MaxOwn, r.During.Preempted, r.GCPause, r.RunWait, r.Load)

	r.PeakSnapshot = procStatus("VmHWM")

	r.ListPrefix = timeQuery(func() { mustList(f, fsm.Query{Prefix: "team-07/svc-0042/", Limit: 100}) })
	r.ListAll = timeQuery(func() { mustList(f, fsm.Query{Limit: 100}) })
	r.LatestTag = timeQuery(func() { f.Latest("team-07/", "prod") })

	// Let the built state go before restoring, so the two never add up.
	f, snap = nil, nil
	settle()
	_ = resetPeak() // a failure was logged at the start
	g := fsm.New()
	rc, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open snapshot: %w", err)
	}
	prof.start("restore")
	start = time.Now()
	if err := g.Restore(rc); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	r.Restore = time.Since(start)
	r.PeakRestore = procStatus("VmHWM")
	prof.stop("restore")
	r.Restored = settle()
	if c := g.Counts(); c.Artifacts < n {
		return nil, fmt.Errorf("restored %d artifacts, want at least %d", c.Artifacts, n)
	}
	log.Printf("%d: restore %v, %v", n, r.Restore.Round(time.Millisecond), r.Restored)
	r.PeakRSS = max(r.PeakBuild, r.PeakSnapshot, r.PeakRestore, procStatus("VmHWM"))
	log.Printf("%d: peak RSS %s: build %s, snapshots %s, restore %s", n, fmtBytes(r.PeakRSS),
		fmtBytes(r.PeakBuild), fmtBytes(r.PeakSnapshot), fmtBytes(r.PeakRestore))
	return r, nil
}

// persistWhileApplying takes and persists a snapshot to a file while the
// applier runs, and records the worst Apply of the whole time.
func persistWhileApplying(r *result, f *fsm.FSM, app *applier, path string) error {
	stop, started, done := make(chan struct{}), make(chan struct{}), make(chan applyRun, 1)
	go app.runUntil(stop, started, done)
	select {
	case <-started:
	case run := <-done:
		return fmt.Errorf("applier: %w", run.err)
	}
	sink, err := newFileSink(path)
	if err != nil {
		close(stop)
		<-done
		return err
	}
	before := readStalls()
	start := time.Now()
	snap, err := f.Snapshot()
	r.SnapshotBusy = time.Since(start)
	if err == nil {
		start = time.Now()
		err = snap.Persist(sink)
		r.PersistFile = time.Since(start)
		snap.Release()
	}
	close(stop)
	run := <-done
	r.GCPause, r.RunWait = readStalls().worstSince(before)
	r.Load = loadAverage()
	if err != nil {
		return fmt.Errorf("snapshot to file: %w", err)
	}
	if run.err != nil {
		return fmt.Errorf("applier: %w", run.err)
	}
	r.During, r.FileBytes = run.lat, sink.n
	return nil
}

func mustList(f *fsm.FSM, q fsm.Query) {
	if _, _, err := f.List(q); err != nil {
		log.Fatalf("list %+v: %v", q, err)
	}
}

// timeQuery returns the fastest of three runs.
func timeQuery(fn func()) time.Duration {
	best := time.Duration(1<<63 - 1)
	for range 3 {
		start := time.Now()
		fn()
		best = min(best, time.Since(start))
	}
	return best
}

// child is the process that measures one size and prints its result.
func child(n int, dir string, quiet int, profile string, out io.Writer) error {
	r, err := measureOne(n, dir, quiet, &profiler{dir: profile})
	if err != nil {
		return err
	}
	return json.NewEncoder(out).Encode(r)
}

// profiler writes a CPU profile of a phase and a heap profile at its end
// into dir; with no dir it does nothing.
type profiler struct {
	dir string
	f   *os.File
}

func (p *profiler) start(phase string) {
	if p.dir == "" {
		return
	}
	f, err := os.Create(filepath.Join(p.dir, phase+".cpu.pprof"))
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		log.Fatalf("profile %s: %v", phase, err)
	}
	p.f = f
}

func (p *profiler) stop(phase string) {
	if p.dir == "" {
		return
	}
	pprof.StopCPUProfile()
	err := p.f.Close()
	if err == nil {
		var h *os.File
		if h, err = os.Create(filepath.Join(p.dir, phase+".heap.pprof")); err == nil {
			err = errors.Join(pprof.WriteHeapProfile(h), h.Close())
		}
	}
	if err != nil {
		log.Fatalf("profile %s: %v", phase, err)
	}
}
