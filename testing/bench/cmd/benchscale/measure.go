package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pier-registry/pier/cluster"
)

// params bound one size's run.
type params struct {
	n           int
	seeds       int // nodes that bootstrap raft together; the rest join
	perNode     int // objects pushed per node
	maxObjects  int
	objectSize  int
	concurrency int
	lose        int // nodes lost in the repair phase
	wait        time.Duration
	pushTimeout time.Duration
	dir         string
	log         io.Writer
	timings     timingSet
}

// result is one size's measurements; durations are in seconds.
type result struct {
	N       int `json:"n"`
	Seeds   int `json:"seeds"`
	Joiners int `json:"joiners"`
	// StartSpan is how long starting all joiners but the last, one after
	// another, took; BurstGossip and BurstReconcile are from the first
	// one's start until every gossip view holds them all alive and the
	// leader's raft configuration holds them all.
	StartSpan      float64 `json:"start_span_s"`
	BurstGossip    float64 `json:"burst_gossip_s"`
	BurstReconcile float64 `json:"burst_reconcile_s"`
	// Then the last node joins alone: Gossip is until every node's view
	// holds it alive, Reconcile until the leader's raft configuration
	// holds it, Ready until it (and every node) knows the leader.
	Gossip    float64 `json:"gossip_converge_s"`
	Reconcile float64 `json:"leader_reconcile_s"`
	// IdleCPU is the cores the process used over 5 s with the cluster
	// settled and no client: gossip, raft heartbeats, maintenance.
	IdleCPU   float64 `json:"idle_cpu_cores"`
	Voters    int     `json:"voters"`
	Nonvoters int     `json:"nonvoters"`
	Ready     float64 `json:"all_ready_s"`

	Objects      int     `json:"objects"`
	ObjectSize   int     `json:"object_size"`
	PushFailures int     `json:"push_failures"`
	PushSeconds  float64 `json:"push_s"`
	Scheme       string  `json:"scheme"`
	// Width is the most shards an object has (K+M): with fewer survivors
	// than that, repair must re-encode objects for fewer nodes.
	Width int `json:"width"`
	// Shards* count object shards per node from the leader's placements;
	// Bytes* the shard bytes in each node's store.
	ShardsMin  int     `json:"shards_min"`
	ShardsMax  int     `json:"shards_max"`
	ShardsMean float64 `json:"shards_mean"`
	BytesMin   int64   `json:"shard_bytes_min"`
	BytesMax   int64   `json:"shard_bytes_max"`
	BytesMean  float64 `json:"shard_bytes_mean"`

	Lost int `json:"lost"`
	// Waves are the groups killed at once: at most M nodes, the parity an
	// object has, so no object is lost; the next wave goes after repair.
	Waves     [][]string `json:"waves"`
	WaveTimes []float64  `json:"wave_repair_s"`
	// Detect is, per wave, until the leader's gossip view no longer holds
	// a lost node alive.
	Detect []float64 `json:"wave_detect_s"`
	// WaveLost and WaveMoved are each wave's lost shard bytes and the
	// bytes its repair wrote.
	WaveLost   []int64 `json:"wave_lost_bytes"`
	WaveMoved  []int64 `json:"wave_moved_bytes"`
	LostBytes  int64   `json:"lost_shard_bytes"`
	MovedBytes int64   `json:"moved_bytes"`
	RepairTime float64 `json:"repair_s"`
	// RepairedShards sums Stats().RepairedShards over survivors.
	RepairedShards int64  `json:"repaired_shards"`
	Unavailable    int    `json:"unavailable_after"`
	RepairDone     bool   `json:"repair_done"`
	RepairState    string `json:"repair_state,omitempty"`

	PeakRSS       int64   `json:"peak_rss"`
	RSSAfterPush  int64   `json:"rss_after_push"`
	PeakFDs       int     `json:"peak_fds"`
	PeakGoroutine int     `json:"peak_goroutines"`
	Stop          float64 `json:"stop_s"`

	Errors []string `json:"errors,omitempty"`
	// Load is the machine's load averages (1, 5, 15 min) before and after
	// the size ran; the parent fills it in.
	Load [2]string `json:"load"`
}

func (r *result) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	log.Print(msg)
	r.Errors = append(r.Errors, msg)
}

// measure runs one size: start, convergence, pushes and placement, repair.
// Every node is stopped before it returns.
func measure(ctx context.Context, p params) (r result) {
	r = result{N: p.n, Seeds: min(p.seeds, p.n), ObjectSize: p.objectSize}
	r.Joiners = p.n - r.Seeds
	h := &harness{t: p.timings, dir: p.dir, log: p.log}
	res := startSampler()
	defer func() {
		t := time.Now()
		h.stopAll()
		r.Stop = time.Since(t).Seconds()
		s := res.stop()
		r.PeakRSS, r.PeakFDs, r.PeakGoroutine = s.hwm, s.fds, s.goroutines
	}()
	if err := converge(ctx, p, h, &r); err != nil {
		r.fail("n=%d: membership: %v", p.n, err)
		return r
	}
	r.IdleCPU = idleCPU(ctx, 5*time.Second)
	log.Printf("n=%d: idle, the nodes use %.2f cores", p.n, r.IdleCPU)
	if err := push(ctx, p, h, &r); err != nil {
		r.fail("n=%d: push: %v", p.n, err)
		return r
	}
	r.RSSAfterPush = rss()
	if err := balance(h, &r); err != nil {
		r.fail("n=%d: placement: %v", p.n, err)
		return r
	}
	if err := repair(ctx, p, h, &r); err != nil {
		r.fail("n=%d: repair: %v", p.n, err)
	}
	return r
}

// converge starts the seeds with bootstrap-expect, waits for their leader,
// then starts the joiners one after another, all joining through the first
// node, and times gossip and raft membership from the last start.
func converge(ctx context.Context, p params, h *harness, r *result) error {
	ctx, cancel := context.WithTimeout(ctx, p.wait)
	defer cancel()
	var first string
	for i := range r.Seeds {
		var join []string
		if i > 0 {
			join = []string{first}
		}
		n, err := h.newNode(r.Seeds, join)
		if err != nil {
			return err
		}
		if i == 0 {
			first = n.cfg.Node.GossipBind
		}
	}
	if _, err := poll(ctx, time.Now(), func() bool { return h.leader() != nil }); err != nil {
		return fmt.Errorf("no leader among the %d seeds: %w", r.Seeds, err)
	}
	// The joiners but the last, one after another: the burst.
	t0 := time.Now()
	for range r.Joiners - 1 {
		if _, err := h.newNode(0, []string{first}); err != nil {
			return err
		}
	}
	r.StartSpan = time.Since(t0).Seconds()
	g, rc, rd, err := settle(ctx, h, t0, r)
	r.BurstGossip, r.BurstReconcile = g.Seconds(), rc.Seconds()
	log.Printf("n=%d: %d joiners started in %.2fs; from the first start: gossip %.2fs, leader reconcile %.2fs, all ready %.2fs",
		p.n, r.Joiners-1, r.StartSpan, g.Seconds(), rc.Seconds(), rd.Seconds())
	if err != nil {
		return fmt.Errorf("%d nodes not settled within %s: %w", len(h.nodes), p.wait, err)
	}
	// Then the last one, alone: how long one join takes to reach every
	// node's gossip view and the leader's raft configuration.
	if r.Joiners > 0 {
		tLast := time.Now()
		if _, err := h.newNode(0, []string{first}); err != nil {
			return err
		}
		g, rc, rd, err = settle(ctx, h, tLast, r)
		r.Gossip, r.Reconcile, r.Ready = g.Seconds(), rc.Seconds(), rd.Seconds()
		log.Printf("n=%d: the last join: gossip %.2fs, leader reconcile %.2fs (%d voters, %d non-voters), all ready %.2fs",
			p.n, r.Gossip, r.Reconcile, r.Voters, r.Nonvoters, r.Ready)
		if err != nil {
			return fmt.Errorf("%d nodes not settled within %s: %w", len(h.nodes), p.wait, err)
		}
	}
	return nil
}

// settle waits until every node's gossip view holds every node alive, the
// leader's raft configuration holds every node, and every node is ready
// (knows the leader); it returns how long each took from start.
func settle(ctx context.Context, h *harness, start time.Time, r *result) (gossip, reconcile, ready time.Duration, err error) {
	want := len(h.nodes)
	var wg sync.WaitGroup
	var gossipErr, raftErr, readyErr error
	wg.Add(3)
	go func() {
		defer wg.Done()
		gossip, gossipErr = poll(ctx, start, func() bool {
			for _, n := range h.nodes {
				_, ms := n.srv.Node.Members()
				alive := 0
				for _, m := range ms {
					if m.State == cluster.StateAlive {
						alive++
					}
				}
				if alive < want {
					return false
				}
			}
			return true
		})
	}()
	go func() {
		defer wg.Done()
		reconcile, raftErr = poll(ctx, start, func() bool {
			l := h.leader()
			if l == nil {
				return false
			}
			_, ms := l.srv.Node.Members()
			voters, nonvoters := 0, 0
			for _, m := range ms {
				switch m.Role {
				case cluster.RoleLeader, cluster.RoleVoter:
					voters++
				case cluster.RoleNonvoter:
					nonvoters++
				}
			}
			r.Voters, r.Nonvoters = voters, nonvoters
			return voters+nonvoters == want
		})
	}()
	go func() {
		defer wg.Done()
		ready, readyErr = poll(ctx, start, func() bool {
			return !slices.ContainsFunc(h.nodes, func(n *node) bool { return !n.srv.Node.Ready() })
		})
	}()
	wg.Wait()
	return gossip, reconcile, ready, errors.Join(gossipErr, raftErr, readyErr)
}

// push PUTs distinct random objects through the HTTP API of every node in
// turn, a few at a time.
func push(ctx context.Context, p params, h *harness, r *result) error {
	ctx, cancel := context.WithTimeout(ctx, p.pushTimeout)
	defer cancel()
	count := min(p.perNode*p.n, p.maxObjects)
	client := &http.Client{Timeout: time.Minute}
	var next, ok, failed atomic.Int64
	var firstErr error
	var mu sync.Mutex
	start := time.Now()
	var wg sync.WaitGroup
	for range p.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, p.objectSize)
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= count {
					return
				}
				rng := rand.NewChaCha8([32]byte{byte(i), byte(i >> 8), byte(i >> 16), 's', 'c', 'a', 'l', 'e'})
				_, _ = rng.Read(buf)
				var err error
				for try := range 5 {
					// A retry goes through the next node, after a pause
					// (a 503 while the cluster is starved of CPU).
					if try > 0 {
						select {
						case <-ctx.Done():
						case <-time.After(time.Duration(try) * 500 * time.Millisecond):
						}
					}
					n := h.nodes[(i+try)%len(h.nodes)]
					if err = put(ctx, client, n.url, fmt.Sprintf("scale/obj-%05d.bin", i), buf); err == nil {
						break
					}
				}
				if err != nil {
					failed.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	r.PushSeconds = time.Since(start).Seconds()
	r.Objects, r.PushFailures = int(ok.Load()), int(failed.Load())
	log.Printf("n=%d: pushed %d of %d objects of %d bytes in %.1fs (%.1f MB/s), %d failed",
		p.n, r.Objects, count, p.objectSize, r.PushSeconds, float64(r.Objects)*float64(p.objectSize)/r.PushSeconds/1e6, r.PushFailures)
	// A failed push or two of a thousand (answered 503 five times on a
	// starved machine) is reported, and the rest measured.
	if firstErr != nil {
		r.fail("n=%d: %d pushes failed after 5 tries; the first: %v", p.n, r.PushFailures, firstErr)
	}
	if r.Objects < count-count/100 {
		return fmt.Errorf("%d of %d pushes failed or were not made (first error: %v, context: %v)", count-r.Objects, count, firstErr, ctx.Err())
	}
	return nil
}

func put(ctx context.Context, c *http.Client, base, name string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/artifacts/"+name, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PUT %s on %s: %s: %s", name, base, resp.Status, strings.Join(strings.Fields(string(msg)), " "))
	}
	return nil
}

// balance counts shards per node from the leader's object placements, and
// shard bytes from each node's store.
func balance(h *harness, r *result) error {
	l := h.leader()
	if l == nil {
		return errors.New("no leader")
	}
	per := map[string]int{}
	for _, n := range h.nodes {
		per[n.id] = 0
	}
	schemes := map[string]int{}
	objects := 0
	for obj := range l.srv.Node.FSM().AllObjects() {
		objects++
		schemes[fmt.Sprintf("%d+%d", obj.K, obj.M)]++
		r.Width = max(r.Width, obj.K+obj.M)
		for _, id := range obj.Placement {
			per[id]++
		}
	}
	if objects != r.Objects {
		// A push answered with an error may still have committed.
		log.Printf("n=%d: the leader holds %d objects, %d pushes were acknowledged", r.N, objects, r.Objects)
		r.Objects = objects
	}
	var keys []string
	for k := range schemes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if r.Scheme != "" {
			r.Scheme += ", "
		}
		r.Scheme += fmt.Sprintf("%s x%d", k, schemes[k])
	}
	r.ShardsMin = -1
	total := 0
	for _, c := range per {
		total += c
		r.ShardsMax = max(r.ShardsMax, c)
		if r.ShardsMin < 0 || c < r.ShardsMin {
			r.ShardsMin = c
		}
	}
	r.ShardsMean = float64(total) / float64(len(per))
	var bsum int64
	r.BytesMin = -1
	for _, n := range h.nodes {
		b := n.srv.Node.Stats().ShardBytes
		bsum += b
		r.BytesMax = max(r.BytesMax, b)
		if r.BytesMin < 0 || b < r.BytesMin {
			r.BytesMin = b
		}
	}
	r.BytesMean = float64(bsum) / float64(len(h.nodes))
	log.Printf("n=%d: scheme %s; shards per node min %d, mean %.1f, max %d (max/mean %.2f); shard bytes max/mean %.2f",
		r.N, r.Scheme, r.ShardsMin, r.ShardsMean, r.ShardsMax, float64(r.ShardsMax)/r.ShardsMean, float64(r.BytesMax)/r.BytesMean)
	return nil
}

// repair loses p.lose nodes, never the leader, in waves of at most M (the
// parity of the objects: more at once would lose data, which is not what
// is measured), and after each wave waits until every object is back to
// full redundancy in the leader's status.
func repair(ctx context.Context, p params, h *harness, r *result) error {
	l := h.leader()
	if l == nil {
		return errors.New("no leader")
	}
	m := -1
	for obj := range l.srv.Node.FSM().AllObjects() {
		if m < 0 || obj.M < m {
			m = obj.M
		}
	}
	if m < 1 {
		return fmt.Errorf("objects have no parity (M=%d)", m)
	}
	var cands []*node
	for _, n := range h.running() {
		if n != l {
			cands = append(cands, n)
		}
	}
	rng := rand.New(rand.NewPCG(uint64(p.n), 18))
	rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	victims := cands[:min(p.lose, len(cands))]
	r.Lost = len(victims)
	r.RepairDone = true
	lostIDs := map[string]bool{}
	for len(victims) > 0 {
		wave := victims[:min(m, len(victims))]
		victims = victims[len(wave):]
		var ids []string
		var lostBytes int64
		for _, v := range wave {
			ids = append(ids, v.id)
			lostIDs[v.id] = true
			lostBytes += v.srv.Node.Stats().ShardBytes
		}
		r.LostBytes += lostBytes
		r.WaveLost = append(r.WaveLost, lostBytes)
		r.Waves = append(r.Waves, ids)
		var survivors []*node
		for _, n := range h.running() {
			if !slices.Contains(wave, n) {
				survivors = append(survivors, n)
			}
		}
		movedBefore, shardsBefore := counters(survivors)
		start := time.Now()
		for _, v := range wave {
			v.kill()
		}
		wctx, cancel := context.WithTimeout(ctx, p.wait)
		// Done when gossip has told the leader of the loss (so "full" is
		// not the view from before it), no placement names a lost node,
		// and every object is full.
		var last cluster.Status
		var detected time.Duration
		d, err := poll(wctx, start, func() bool {
			l := h.leader()
			if l == nil {
				return false
			}
			if detected == 0 {
				_, ms := l.srv.Node.Members()
				for _, m := range ms {
					if slices.Contains(ids, m.ID) && m.State == cluster.StateAlive {
						return false
					}
				}
				detected = time.Since(start)
			}
			for obj := range l.srv.Node.FSM().AllObjects() {
				if slices.ContainsFunc(obj.Placement, func(id string) bool { return lostIDs[id] }) {
					return false
				}
			}
			last = l.srv.Node.Status()
			total := 0
			for _, c := range last.Redundancy {
				total += c
			}
			return total == r.Objects && last.Redundancy[cluster.Full] == r.Objects
		})
		r.Detect = append(r.Detect, detected.Seconds())
		cancel()
		movedAfter, shardsAfter := counters(survivors)
		r.MovedBytes += movedAfter - movedBefore
		r.WaveMoved = append(r.WaveMoved, movedAfter-movedBefore)
		r.RepairedShards += shardsAfter - shardsBefore
		r.WaveTimes = append(r.WaveTimes, d.Seconds())
		r.RepairTime += d.Seconds()
		r.Unavailable = last.Redundancy[cluster.Unavailable]
		log.Printf("n=%d: lost %v: back to full redundancy in %.2fs (%v), moved %d bytes", p.n, ids, d.Seconds(), last.Redundancy, movedAfter-movedBefore)
		if err != nil {
			r.RepairDone = false
			r.RepairState = fmt.Sprint(last.Redundancy)
			return fmt.Errorf("after losing %v: not back to full redundancy within %s: %v", ids, p.wait, last.Redundancy)
		}
		// Once repaired, the lost nodes are removed (pier remove), as an
		// operator does with nodes gone for good, outside the timing. A
		// dead node still counts among the raft servers a push needs a
		// majority of, and so does a re-encode for fewer nodes: without
		// this, the fifth loss of ten nodes is never repaired ("5 of 10
		// nodes reachable, a push needs a majority").
		if err := removeLost(ctx, h, ids); err != nil {
			return err
		}
	}
	return nil
}

// removeLost removes ids through the leader and waits (bounded) until the
// leader's raft configuration no longer holds them.
func removeLost(ctx context.Context, h *harness, ids []string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, id := range ids {
		if _, err := poll(ctx, time.Now(), func() bool {
			l := h.leader()
			return l != nil && l.srv.Node.Remove(ctx, id) == nil
		}); err != nil {
			return fmt.Errorf("remove %s: %w", id, err)
		}
	}
	_, err := poll(ctx, time.Now(), func() bool {
		l := h.leader()
		if l == nil {
			return false
		}
		_, ms := l.srv.Node.Members()
		return !slices.ContainsFunc(ms, func(m cluster.Member) bool {
			return slices.Contains(ids, m.ID) && m.Role != cluster.RoleNone
		})
	})
	if err != nil {
		return fmt.Errorf("removed %v still in raft: %w", ids, err)
	}
	return nil
}

// counters sums MovedBytes and the total of RepairedShards over nodes.
func counters(nodes []*node) (moved, repaired int64) {
	for _, n := range nodes {
		s := n.srv.Node.Stats()
		moved += s.MovedBytes
		repaired += s.RepairedShards
	}
	return moved, repaired
}

// idleCPU returns the cores this process used over d.
func idleCPU(ctx context.Context, d time.Duration) float64 {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return 0
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	c0, t0 := cpu(), time.Now()
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
	return float64(cpu()-c0) / float64(time.Since(t0))
}
