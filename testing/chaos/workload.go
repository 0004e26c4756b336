package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pier-registry/pier/testing/invariants"
	"github.com/pier-registry/pier/transport/apiclient"
)

const (
	kib = 1 << 10
	mib = 1 << 20
)

// poolTags are the tags the workload adds to and removes from each
// scenario's tag pool.
var poolTags = []string{"alpha", "beta", "gamma"}

// Node is one cluster node as the driver reaches it: through its port
// published on 127.0.0.1, with a client that talks to that node only, so
// every operation is attributed to the node that answered it.
type Node struct {
	Name   string // service name and node ID
	Addr   string // 127.0.0.1:port
	Client *apiclient.Client
}

func newNode(name, addr string) (*Node, error) {
	c, err := apiclient.New([]string{addr},
		apiclient.WithDialTimeout(2*time.Second),
		apiclient.WithResponseHeaderTimeout(20*time.Second),
		apiclient.WithUserAgent("pier-chaos"))
	if err != nil {
		return nil, err
	}
	return &Node{Name: name, Addr: addr, Client: c}, nil
}

// WorkloadConfig bounds the load; the defaults suit 2 cores shared with 5
// nodes.
type WorkloadConfig struct {
	Workers int           // concurrent clients
	MaxOps  int           // per scenario
	Think   time.Duration // mean pause between one client's operations
	// MaxLarge caps the pushes of 8 MiB or more per scenario; at most one is
	// in flight at a time.
	MaxLarge int
}

// Workload drives the cluster with pushes (a few of them conflicting),
// pulls, tag changes, tag reads and latest queries, and records each
// operation in the history. Acknowledged pushes stay pullable targets for
// later scenarios.
type Workload struct {
	cfg   WorkloadConfig
	h     *invariants.History
	nodes func() []*Node // the nodes to spread requests over, read per operation
	seed  uint64

	mu      sync.Mutex
	acked   []artifactRef // every name acknowledged so far, once
	ackedBy map[string]bool
	seq     atomic.Int64
	large   atomic.Int32 // large pushes in flight
}

type artifactRef struct {
	name    string
	digest  string
	content Content
}

// NewWorkload returns a workload over the nodes that nodes returns.
func NewWorkload(cfg WorkloadConfig, h *invariants.History, nodes func() []*Node, seed uint64) *Workload {
	return &Workload{cfg: cfg, h: h, nodes: nodes, seed: seed, ackedBy: map[string]bool{}}
}

// TagPool names the artifacts whose tags the workload changes during
// scenario; they are created without tags, as CheckTags requires.
func TagPool(scenario string) []string {
	return []string{"chaos/" + scenario + "/tagged-0", "chaos/" + scenario + "/tagged-1", "chaos/" + scenario + "/tagged-2"}
}

// Run drives the cluster until ctx ends or MaxOps operations are done, and
// returns once every operation in flight has finished (each is bounded by
// its own timeout).
func (w *Workload) Run(ctx context.Context, scenario string) {
	var ops atomic.Int64
	var largeUsed atomic.Int32
	setup := rand.New(rand.NewPCG(w.seed, uint64(w.seq.Add(1))))
	for _, name := range TagPool(scenario) {
		w.ensurePushed(ctx, scenario, setup, name)
	}
	var wg sync.WaitGroup
	for c := range w.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(w.seed+uint64(c)+1, uint64(w.seq.Add(1))))
			for ctx.Err() == nil && ops.Add(1) <= int64(w.cfg.MaxOps) {
				w.step(ctx, scenario, c, r, &largeUsed)
				think := time.Duration(r.Int64N(int64(2*w.cfg.Think) + 1))
				select {
				case <-ctx.Done():
				case <-time.After(think):
				}
			}
		}()
	}
	wg.Wait()
}

// ensurePushed pushes a small artifact under name, retrying for a while
// until it is acknowledged.
func (w *Workload) ensurePushed(ctx context.Context, scenario string, r *rand.Rand, name string) {
	content := Content{Seed: r.Uint64(), Size: 1*kib + r.Int64N(4*kib)}
	for try := 0; try < 10 && ctx.Err() == nil; try++ {
		if w.push(ctx, scenario, -1, w.pick(r), name, content).Outcome == invariants.OK {
			return
		}
		sleep(ctx, time.Second)
	}
}

// step runs one randomly chosen operation.
func (w *Workload) step(ctx context.Context, scenario string, client int, r *rand.Rand, largeUsed *atomic.Int32) {
	pool := TagPool(scenario)
	switch x := r.IntN(100); {
	case x < 30:
		size := w.pickSize(r, largeUsed)
		if size >= 8*mib {
			defer w.large.Add(-1)
		}
		name := fmt.Sprintf("chaos/%s/c%d-%d.bin", scenario, client, w.seq.Add(1))
		w.push(ctx, scenario, client, w.pick(r), name, Content{Seed: r.Uint64(), Size: size})
	case x < 33:
		w.conflict(ctx, scenario, client, r)
	case x < 35:
		if a, ok := w.randomAcked(r); ok {
			// Identical bytes again: a harmless success (invariant 3).
			w.push(ctx, scenario, client, w.pick(r), a.name, a.content)
		}
	case x < 68:
		if a, ok := w.randomAcked(r); ok {
			w.pull(ctx, scenario, "", invariants.KindPull, client, w.pick(r), a.name, a.content.Size)
		}
	case x < 83:
		kind := invariants.KindTag
		if r.IntN(2) == 0 {
			kind = invariants.KindUntag
		}
		w.tag(ctx, scenario, client, w.pick(r), kind, pool[r.IntN(len(pool))], poolTags[r.IntN(len(poolTags))])
	case x < 95:
		w.info(ctx, scenario, client, w.pick(r), pool[r.IntN(len(pool))])
	default:
		w.latest(ctx, scenario, client, w.pick(r), "chaos/"+scenario+"/tagged-", poolTags[r.IntN(len(poolTags))])
	}
}

// conflict pushes two different contents under one fresh name to two
// nodes at once: at most one may be acknowledged.
func (w *Workload) conflict(ctx context.Context, scenario string, client int, r *rand.Rand) {
	name := fmt.Sprintf("chaos/%s/conflict-c%d-%d.bin", scenario, client, w.seq.Add(1))
	contents := []Content{{Seed: r.Uint64(), Size: 1*kib + r.Int64N(63*kib)}, {Seed: r.Uint64(), Size: 1*kib + r.Int64N(63*kib)}}
	nodes := []*Node{w.pick(r), w.pick(r)}
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.push(ctx, scenario, client+i*w.cfg.Workers, nodes[i], name, contents[i])
		}()
	}
	wg.Wait()
}

// pickSize draws a push size: mostly up to 64 KiB, some up to 1 MiB, a few
// up to 8 MiB and, within MaxLarge and one at a time, up to 64 MiB.
func (w *Workload) pickSize(r *rand.Rand, largeUsed *atomic.Int32) int64 {
	switch x := r.Float64(); {
	case x < 0.75:
		return 1*kib + r.Int64N(63*kib+1)
	case x < 0.95:
		return 64*kib + r.Int64N(960*kib+1)
	case x < 0.985:
		return 1*mib + r.Int64N(7*mib)
	}
	if largeUsed.Load() >= int32(w.cfg.MaxLarge) || !w.large.CompareAndSwap(0, 1) {
		return 1*mib + r.Int64N(7*mib)
	}
	largeUsed.Add(1)
	if r.IntN(4) == 0 {
		return 64 * mib
	}
	return 8*mib + r.Int64N(56*mib+1)
}

func (w *Workload) pick(r *rand.Rand) *Node {
	ns := w.nodes()
	return ns[r.IntN(len(ns))]
}

func (w *Workload) randomAcked(r *rand.Rand) (artifactRef, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.acked) == 0 {
		return artifactRef{}, false
	}
	// Favour recent pushes: half the picks come from the newest 50.
	if n := len(w.acked); n > 50 && r.IntN(2) == 0 {
		return w.acked[n-1-r.IntN(50)], true
	}
	return w.acked[r.IntN(len(w.acked))], true
}

// opTimeout bounds one request, allowing 8 MiB/s for its body.
func opTimeout(size int64) time.Duration {
	return 10*time.Second + time.Duration(size/(8*mib))*time.Second
}

func (w *Workload) push(ctx context.Context, scenario string, client int, n *Node, name string, c Content) invariants.Op {
	digest := c.Digest()
	ctx, cancel := context.WithTimeout(ctx, opTimeout(c.Size))
	defer cancel()
	op := invariants.Op{Scenario: scenario, Kind: invariants.KindPush, Client: client, Node: n.Name, Name: name, Size: c.Size, Sent: digest, Start: w.h.Now()}
	art, _, err := n.Client.Push(ctx, name, c.Body, c.Size, apiclient.PushOptions{
		SHA256: strings.TrimPrefix(digest, "sha256:"), Labels: map[string]string{"chaos": scenario},
	})
	// The end time is taken under the lock that Barrier takes, so a push
	// acknowledged before a barrier is in the history when the barrier
	// returns.
	w.mu.Lock()
	defer w.mu.Unlock()
	op.End = w.h.Now()
	op.Outcome, op.Status, op.ErrKind = classify(err)
	if err != nil {
		op.Err = err.Error()
	} else {
		op.Digest = art.Digest
		if art.Digest == digest && !w.ackedBy[name] {
			w.ackedBy[name] = true
			w.acked = append(w.acked, artifactRef{name: name, digest: digest, content: c})
		}
	}
	return w.h.Add(op)
}

// Barrier returns a time on the history's clock such that every push that
// ended before it is already recorded.
func (w *Workload) Barrier() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.h.Now()
}

// pull fetches name from n and hashes what arrives. It is also the
// checkpoints' verify.
func (w *Workload) pull(ctx context.Context, scenario, phase string, kind invariants.Kind, client int, n *Node, name string, size int64) invariants.Op {
	ctx, cancel := context.WithTimeout(ctx, opTimeout(size))
	defer cancel()
	op := invariants.Op{Scenario: scenario, Phase: phase, Kind: kind, Client: client, Node: n.Name, Name: name, Start: w.h.Now()}
	rc, info, err := n.Client.Get(ctx, name)
	if err == nil {
		h := sha256.New()
		var read int64
		read, err = io.Copy(h, rc)
		rc.Close()
		op.Size, op.Announced = read, info.Digest
		op.Digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
		op.Complete = err == nil && (info.Size < 0 || read == info.Size)
		if err == nil && !op.Complete {
			err = fmt.Errorf("read %d of %d announced bytes", read, info.Size)
		}
		if err != nil {
			err = fmt.Errorf("%w: %w", errTruncated, err)
		}
	}
	op.End = w.h.Now()
	op.Outcome, op.Status, op.ErrKind = classify(err)
	if err != nil {
		op.Err = err.Error()
	}
	return w.h.Add(op)
}

func (w *Workload) tag(ctx context.Context, scenario string, client int, n *Node, kind invariants.Kind, name, tag string) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout(0))
	defer cancel()
	op := invariants.Op{Scenario: scenario, Kind: kind, Client: client, Node: n.Name, Name: name, Tag: tag, Start: w.h.Now()}
	var art apiclient.Artifact
	var err error
	if kind == invariants.KindTag {
		art, err = n.Client.Tag(ctx, name, tag)
	} else {
		art, err = n.Client.Untag(ctx, name, tag)
	}
	op.End = w.h.Now()
	w.finishMeta(op, art, err)
}

func (w *Workload) info(ctx context.Context, scenario string, client int, n *Node, name string) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout(0))
	defer cancel()
	op := invariants.Op{Scenario: scenario, Kind: invariants.KindInfo, Client: client, Node: n.Name, Name: name, Start: w.h.Now()}
	art, err := n.Client.Info(ctx, name, false)
	op.End = w.h.Now()
	w.finishMeta(op, art, err)
}

func (w *Workload) finishMeta(op invariants.Op, art apiclient.Artifact, err error) {
	op.Outcome, op.Status, op.ErrKind = classify(err)
	if err != nil {
		op.Err = err.Error()
	} else {
		op.Digest, op.Tags = art.Digest, art.Tags
		if op.Tags == nil {
			op.Tags = []string{}
		}
	}
	w.h.Add(op)
}

func (w *Workload) latest(ctx context.Context, scenario string, client int, n *Node, prefix, tag string) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout(0))
	defer cancel()
	op := invariants.Op{Scenario: scenario, Kind: invariants.KindLatest, Client: client, Node: n.Name, Tag: tag, Start: w.h.Now()}
	name, err := n.Client.Latest(ctx, prefix, tag)
	op.End = w.h.Now()
	op.Outcome, op.Status, op.ErrKind = classify(err)
	if err != nil {
		op.Err = err.Error()
	}
	op.Result = name
	w.h.Add(op)
}

var errTruncated = errors.New("transfer cut short")

// classify sorts an error into an outcome, the HTTP status if one came
// back, and a kind for the report's error counts.
func classify(err error) (invariants.Outcome, int, string) {
	if err == nil {
		return invariants.OK, 0, ""
	}
	var ae *apiclient.APIError
	var ne net.Error
	switch {
	case errors.As(err, &ae):
		if ae.Status >= 400 && ae.Status < 500 && ae.Status != 408 && ae.Status != 429 {
			return invariants.Fail, ae.Status, fmt.Sprintf("http-%d", ae.Status)
		}
		return invariants.Unknown, ae.Status, fmt.Sprintf("http-%d", ae.Status)
	case errors.Is(err, errTruncated):
		return invariants.Unknown, 0, "truncated"
	case errors.Is(err, syscall.ECONNREFUSED):
		return invariants.Fail, 0, "refused"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return invariants.Unknown, 0, "timeout"
	case errors.Is(err, context.Canceled):
		return invariants.Unknown, 0, "cancelled"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return invariants.Unknown, 0, "conn-lost"
	}
	return invariants.Unknown, 0, "other"
}

// Content is reproducible artifact bytes: Size bytes of a ChaCha8 stream
// seeded with Seed. Nothing is kept in memory; a retry regenerates them.
type Content struct {
	Seed uint64
	Size int64
}

func (c Content) reader() io.Reader {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], c.Seed)
	return io.LimitReader(rand.NewChaCha8(key), c.Size)
}

// Body is a body function for apiclient.Client.Push.
func (c Content) Body() (io.ReadCloser, error) { return io.NopCloser(c.reader()), nil }

// Digest is "sha256:<hex>" of the bytes.
func (c Content) Digest() string {
	h := sha256.New()
	_, _ = io.Copy(h, c.reader())
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
