package main

import (
	"fmt"
	"slices"
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
}

func summarise(lat []time.Duration) latencies {
	if len(lat) == 0 {
		return latencies{}
	}
	slices.Sort(lat)
	at := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	return latencies{N: len(lat), Max: lat[len(lat)-1], P99: at(0.99), P50: at(0.50)}
}

// apply pushes one artifact and returns how long Apply took. Encoding is
// the proposer's work and is not timed.
func (a *applier) apply() (time.Duration, error) {
	data, err := putCommand(a.next).Encode()
	if err != nil {
		return 0, fmt.Errorf("encode artifact %d: %w", a.next, err)
	}
	l := &raft.Log{Index: uint64(a.next + 1), Type: raft.LogCommand, Data: data}
	start := time.Now()
	r := a.f.Apply(l)
	took := time.Since(start)
	if res, ok := r.(fsm.Result); !ok || res.Status != fsm.StatusCreated {
		return 0, fmt.Errorf("apply artifact %d: %v", a.next, r)
	}
	a.next++
	return took, nil
}

// runCount applies n entries at the applier's pace.
func (a *applier) runCount(n int) (latencies, error) {
	tick := time.NewTicker(a.interval)
	defer tick.Stop()
	lat := make([]time.Duration, 0, n)
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
	tick := time.NewTicker(a.interval)
	defer tick.Stop()
	var lat []time.Duration
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
