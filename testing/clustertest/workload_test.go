package clustertest

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pier-registry/pier/testing/invariants"
)

// mix is the share, in percent, of each kind of operation a workload
// step draws; what is left of 100 pulls an acknowledged artifact.
type mix struct {
	push, conflict, repush, tag, info int
}

// chaosMix is the chaos suite's workload (testing/chaos/workload.go,
// without latest queries).
var chaosMix = mix{push: 30, conflict: 3, repush: 2, tag: 15, info: 12}

// pushMix only pushes, with a conflicting pair now and then.
var pushMix = mix{push: 95, conflict: 5}

// workload runs operations against every node from a few clients, as the
// chaos suite's workload does, bounded in count (maxOps) and by its
// context, and remembers what was acknowledged.
type workload struct {
	d       *driver
	prefix  string
	mix     mix
	workers int
	maxOps  int64
	pool    []string // artifacts whose tags change, created untagged

	seq   atomic.Int64
	ops   atomic.Int64
	mu    sync.Mutex
	acked []ackRef
}

type ackRef struct {
	name string
	body []byte
}

var poolTags = []string{"staging-validated", "production-ready", "qa"}

func newWorkload(d *driver, prefix string, m mix, workers int, maxOps int64) *workload {
	w := &workload{d: d, prefix: prefix, mix: m, workers: workers, maxOps: maxOps}
	if m.tag+m.info > 0 {
		for i := range 3 {
			w.pool = append(w.pool, fmt.Sprintf("%s/tagged-%d", prefix, i))
		}
	}
	return w
}

// setup pushes the tag pool's artifacts, each until acknowledged.
func (w *workload) setup(t *testing.T) {
	t.Helper()
	for i, name := range w.pool {
		body := content(uint64(1000+i), 2048)
		Eventually(t, Wait(), func() error {
			if o := w.push(t.Context(), -1, i%len(w.d.c.Nodes), name, body); o.Outcome != invariants.OK {
				return fmt.Errorf("push %s: %s %s", name, o.Outcome, o.Err)
			}
			return nil
		})
	}
}

// run drives the cluster until ctx ends or maxOps operations are done,
// and returns when every operation in flight has ended (each is bounded
// by opTimeout).
func (w *workload) run(ctx context.Context, seed uint64) {
	var wg sync.WaitGroup
	for c := range w.workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(c)))
			for ctx.Err() == nil && w.ops.Add(1) <= w.maxOps {
				w.step(ctx, c, r)
				// A little think time keeps the two cores from starving
				// raft's heartbeats; it paces, it waits for nothing.
				t := time.NewTimer(time.Duration(r.Int64N(int64(20 * time.Millisecond))))
				select {
				case <-ctx.Done():
				case <-t.C:
				}
				t.Stop()
			}
		})
	}
	wg.Wait()
}

func (w *workload) step(ctx context.Context, client int, r *rand.Rand) {
	node := func() int { return r.IntN(len(w.d.c.Nodes)) }
	m := w.mix
	switch x := r.IntN(100); {
	case x < m.push:
		name := fmt.Sprintf("%s/c%d-%d.bin", w.prefix, client, w.seq.Add(1))
		w.push(ctx, client, node(), name, content(r.Uint64(), pickSize(r)))
	case x < m.push+m.conflict:
		w.conflict(ctx, client, node(), node(), r)
	case x < m.push+m.conflict+m.repush:
		if a, ok := w.randomAcked(r); ok {
			w.push(ctx, client, node(), a.name, a.body)
		}
	case x < m.push+m.conflict+m.repush+m.tag:
		kind := invariants.KindTag
		if r.IntN(2) == 0 {
			kind = invariants.KindUntag
		}
		w.d.meta(ctx, kind, client, node(), w.pool[r.IntN(len(w.pool))], poolTags[r.IntN(len(poolTags))])
	case x < m.push+m.conflict+m.repush+m.tag+m.info:
		w.d.meta(ctx, invariants.KindInfo, client, node(), w.pool[r.IntN(len(w.pool))], "")
	default:
		if a, ok := w.randomAcked(r); ok {
			w.d.pull(ctx, invariants.KindPull, "", client, node(), a.name)
		}
	}
}

// conflict pushes two different bodies under one new name to nodes a and
// b at once: at most one may be bound.
func (w *workload) conflict(ctx context.Context, client, a, b int, r *rand.Rand) {
	name := fmt.Sprintf("%s/conflict-c%d-%d.bin", w.prefix, client, w.seq.Add(1))
	bodies := [][]byte{content(r.Uint64(), 1024+r.IntN(16<<10)), content(r.Uint64(), 1024+r.IntN(16<<10))}
	var wg sync.WaitGroup
	for i, n := range []int{a, b} {
		wg.Go(func() { w.push(ctx, client+100*(i+1), n, name, bodies[i]) })
	}
	wg.Wait()
}

func (w *workload) push(ctx context.Context, client, node int, name string, body []byte) op {
	o := w.d.push(ctx, client, node, name, body)
	if o.Acked() && o.Digest == o.Sent {
		w.mu.Lock()
		if !slices.ContainsFunc(w.acked, func(a ackRef) bool { return a.name == name }) {
			w.acked = append(w.acked, ackRef{name, body})
		}
		w.mu.Unlock()
	}
	return o
}

func (w *workload) randomAcked(r *rand.Rand) (ackRef, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.acked) == 0 {
		return ackRef{}, false
	}
	return w.acked[r.IntN(len(w.acked))], true
}

// pickSize: mostly small enough to be packed, some erasure-coded, a few
// of several stripes; about 30 KiB on average, so that a bounded run
// holds its bodies in memory.
func pickSize(r *rand.Rand) int {
	switch x := r.IntN(100); {
	case x < 80:
		return 1024 + r.IntN(15<<10)
	case x < 98:
		return 16<<10 + r.IntN(112<<10)
	}
	return 128<<10 + r.IntN(1<<20)
}

// content is n reproducible bytes for seed.
func content(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

// ackedSince counts pushes acknowledged by any of nodes (IDs) that were
// sent at or after from.
func ackedSince(h *history, from time.Duration, nodes ...string) int {
	n := 0
	for _, o := range h.Ops() {
		if o.Acked() && o.Start >= from && slices.Contains(nodes, o.Node) {
			n++
		}
	}
	return n
}

// checkpoint pulls every push acknowledged so far from every node, each
// pull tried up to 3 times, with two workers per node, and returns what
// checkLost needs to judge it. It runs after the workload stopped, so
// every acknowledgement is in the history.
func checkpoint(ctx context.Context, d *driver, phase string) (string, []string, time.Duration) {
	before := d.h.Now()
	var due []op
	for _, a := range invariants.SortedAcks(d.h.Ops()) {
		due = append(due, a)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*Wait())
	defer cancel()
	var ids []string
	var wg sync.WaitGroup
	for n := range d.c.Nodes {
		ids = append(ids, d.c.Nodes[n].ID)
		jobs := make(chan op)
		for range 2 {
			wg.Go(func() {
				for ack := range jobs {
					for try := 1; ctx.Err() == nil; try++ {
						v := d.pull(ctx, invariants.KindVerify, phase, -1, n, ack.Name)
						if (v.Outcome == invariants.OK && v.Complete && v.Digest == ack.Sent) || try >= 3 {
							break
						}
						backoff(ctx, time.Duration(try)*500*time.Millisecond)
					}
				}
			})
		}
		wg.Go(func() {
			defer close(jobs)
			for _, a := range due {
				select {
				case jobs <- a:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	wg.Wait()
	return phase, ids, before
}

// backoff waits d before a retry, or less if ctx ends.
func backoff(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// judge runs every check of the chaos suite on the history and fails the
// test with the violations.
func judge(t *testing.T, w *workload, phase string, nodes []string, before time.Duration) {
	t.Helper()
	ops := w.d.h.Ops()
	acks := invariants.Acks(ops)
	var v []invariants.Violation
	v = append(v, invariants.CheckLost(ops, phase, nodes, before, 0)...)
	v = append(v, invariants.CheckWrongBytes(ops, acks)...)
	v = append(v, invariants.CheckBindings(ops)...)
	v = append(v, invariants.CheckReadAfterWrite(ops, acks)...)
	pool := map[string]bool{}
	for _, n := range w.pool {
		pool[n] = true
	}
	v = append(v, invariants.CheckTags(ops, pool, "", time.Minute)...)
	counts := map[string]int{}
	for _, o := range ops {
		counts[string(o.Kind)+" "+string(o.Outcome)]++
	}
	t.Logf("%d operations, %d names acknowledged: %v", len(ops), len(acks), counts)
	for _, x := range v {
		t.Error(x)
	}
}
