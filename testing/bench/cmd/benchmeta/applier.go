package main

import (
	"fmt"
	"runtime"
	"slices"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	"github.com/pier-registry/pier/fsm"
)

// applier pushes new artifacts through Apply, as raft's FSM goroutine
// would, one entry every interval, and times each call.
type applier struct {
	f        *fsm.FSM
	next     int // the next artifact to push; its index is next+1
	interval time.Duration
}

// latencies summarises the Apply calls of one run.
type latencies struct {
	N   int
	Max time.Duration
	P99 time.Duration
	P50 time.Duration
	// Preempted counts the calls during which the kernel switched the
	// applier's thread out, for another process (an involuntary context
	// switch) or because it blocked (a voluntary one: a lock, a
	// stop-the-world pause, the Go scheduler parking it), and MaxOwn is
	// the longest of the others: calls that ran on their core from start
	// to end, so what the FSM and the collector's assists cost.
	Preempted int
	MaxOwn    time.Duration
}

// sample is one Apply call.
type sample struct {
	took      time.Duration
	preempted bool
}

func summarise(samples []sample) latencies {
	if len(samples) == 0 {
		return latencies{}
	}
	var l latencies
	lat := make([]time.Duration, len(samples))
	for i, s := range samples {
		lat[i] = s.took
		if s.preempted {
			l.Preempted++
		} else {
			l.MaxOwn = max(l.MaxOwn, s.took)
		}
	}
	slices.Sort(lat)
	at := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	l.N, l.Max, l.P99, l.P50 = len(lat), lat[len(lat)-1], at(0.99), at(0.50)
	return l
}

// rusageThread is RUSAGE_THREAD (Linux): the calling thread's usage.
const rusageThread = 1

// contextSwitches returns how often the kernel switched the calling
// thread out, either way; the caller is locked to its thread.
func contextSwitches() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return ru.Nivcsw + ru.Nvcsw
}

// apply pushes one artifact and times Apply. Encoding is the proposer's
// work and is not timed. The caller is locked to its OS thread.
func (a *applier) apply() (sample, error) {
	data, err := putCommand(a.next).Encode()
	if err != nil {
		return sample{}, fmt.Errorf("encode artifact %d: %w", a.next, err)
	}
	l := &raft.Log{Index: uint64(a.next + 1), Type: raft.LogCommand, Data: data}
	switches := contextSwitches()
	start := time.Now()
	r := a.f.Apply(l)
	took := time.Since(start)
	preempted := contextSwitches() != switches
	if res, ok := r.(fsm.Result); !ok || res.Status != fsm.StatusCreated {
		return sample{}, fmt.Errorf("apply artifact %d: %v", a.next, r)
	}
	a.next++
	return sample{took, preempted}, nil
}

// runCount applies n entries at the applier's pace.
func (a *applier) runCount(n int) (latencies, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tick := time.NewTicker(a.interval)
	defer tick.Stop()
	lat := make([]sample, 0, n)
	for range n {
		<-tick.C
		d, err := a.apply()
		if err != nil {
			return latencies{}, err
		}
		lat = append(lat, d)
	}
	return summarise(lat), nil
}

// runUntil applies entries at the applier's pace until stop is closed,
// after signalling started once the first entry is in. The result arrives
// on done.
func (a *applier) runUntil(stop <-chan struct{}, started chan<- struct{}, done chan<- applyRun) {
	// Locked, so that the thread's context switches are the applier's.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tick := time.NewTicker(a.interval)
	defer tick.Stop()
	var lat []sample
	for {
		d, err := a.apply()
		if err != nil {
			done <- applyRun{err: err}
			return
		}
		lat = append(lat, d)
		if len(lat) == 1 {
			close(started)
		}
		select {
		case <-stop:
			done <- applyRun{lat: summarise(lat)}
			return
		case <-tick.C:
		}
	}
}

type applyRun struct {
	lat latencies
	err error
}
