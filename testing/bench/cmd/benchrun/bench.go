package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// testFile is one of the big files and what was measured with it.
type testFile struct {
	label, path, digest string
	size                int64
	reps                int
	pierPath, ngPath    string // the copy that is pulled
	key                 string // its key on the peers
	// cold is each system's median cold pull, the healthy figure the
	// degraded rows compare with.
	cold map[string]time.Duration
}

type bench struct {
	ctx        context.Context
	cfg        config
	rep        *report
	ng         *nginxServer
	cl         *pierCluster
	peers      []*peerServer
	push, pull *pierNode
	work       string
	step       func(string, ...any)
	// cleanupWait sums the waits for Pier's deletions of deduplicated
	// re-pushes' shards before timed transfers (waitCleanups).
	cleanupWait time.Duration
}

// limit bounds one transfer of size bytes: 30 s plus 10 MB/s.
func limit(size int64) time.Duration {
	return 30*time.Second + time.Duration(size/10e6)*time.Second
}

// noCache is the header of Pier's cold pulls: the node reads the shards
// instead of its pull cache, and does not fill it.
var noCache = http.Header{"Cache-Control": {"no-cache"}}

// peerSamples is one sample (and CPU account) per peer, by name.
type peerSamples struct {
	s   map[string]*sample
	cpu map[string]*cpuUse
}

func newPeerSamples(peers []*peerServer) peerSamples {
	ps := peerSamples{s: map[string]*sample{}, cpu: map[string]*cpuUse{}}
	for _, p := range peers {
		ps.s[p.name], ps.cpu[p.name] = &sample{}, &cpuUse{}
	}
	return ps
}

// rates is each peer's median as MB/s, for a row.
func (ps peerSamples) rates(size int64) peerVals {
	v := peerVals{}
	for k, s := range ps.s {
		v[k] = mbps(size, s.median())
	}
	return v
}

// notes is each peer's runs and server CPU, for the notes.
func (ps peerSamples) notes(size int64, peers []*peerServer) string {
	var parts []string
	for _, p := range peers {
		parts = append(parts, fmt.Sprintf("%s %s (CPU %s)", p.name, ps.s[p.name].rates(size), ps.cpu[p.name].String(p.name)))
	}
	return strings.Join(parts, "; ")
}

// transfers PUTs the file to every system, then GETs it back, reps times
// each, alternating between the systems so drift hits all alike. Pier's
// pulls are measured twice: cold (Cache-Control: no-cache, the node
// decodes shards read from its peers) and hot (from the node's pull cache,
// filled by one untimed pull before). nginx and the peers have no such
// cache: both their rows are plain GETs, the files in the page cache.
func (b *bench) transfers(f *testFile) error {
	size := fmtBytes(f.size)
	var ngPut, prPut, ngCold, prCold, ngHot, prHot sample
	var ngPutCPU, prPutCPU, ngColdCPU, prColdCPU, ngHotCPU, prHotCPU cpuUse
	pPut, pCold, pHot := newPeerSamples(b.peers), newPeerSamples(b.peers), newPeerSamples(b.peers)
	waitedBefore := b.cleanupWait
	prof := b.profile("push-"+f.label, b.cfg.profileSecs)
	for i := 1; i <= f.reps; i++ {
		name := fmt.Sprintf("bench/%s-%d.bin", f.label, i)
		b.step("PUT %s (%d/%d) to nginx, pier %s%s", size, i, f.reps, b.push.id, b.peerList())
		if err := b.timed(&ngPutCPU, &ngPut, func() (time.Duration, error) {
			return putFile(b.ctx, b.ng.base+"/"+name, f.path, f.size, limit(f.size))
		}); err != nil {
			return fmt.Errorf("nginx: %w", err)
		}
		if err := b.timed(&prPutCPU, &prPut, func() (time.Duration, error) {
			return putFile(b.ctx, b.push.base+"/artifacts/"+name, f.path, f.size, limit(f.size))
		}); err != nil {
			return fmt.Errorf("pier: %w", err)
		}
		for _, p := range b.peers {
			if err := b.timed(pPut.cpu[p.name], pPut.s[p.name], func() (time.Duration, error) {
				return putFile(b.ctx, p.url(name), f.path, f.size, limit(f.size))
			}); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
		}
	}
	prof()
	f.ngPath = fmt.Sprintf("/bench/%s-1.bin", f.label)
	f.pierPath = fmt.Sprintf("/artifacts/bench/%s-1.bin", f.label)
	f.key = fmt.Sprintf("bench/%s-1.bin", f.label)
	b.rep.ratioRow("push "+size+" (MB/s)", mbps(f.size, ngPut.median()), mbps(f.size, prPut.median()), "MB/s", 0.5, "", pPut.rates(f.size))

	// pulls runs reps rounds of GETs from every system; pierHdr is noCache
	// for the cold pulls.
	pulls := func(what string, reps int, ng, pr *sample, ngCPU, prCPU *cpuUse, ps peerSamples, pierHdr http.Header) error {
		defer b.profile("pull-"+what+"-"+f.label, b.cfg.profileSecs)()
		for i := 1; i <= reps; i++ {
			b.step("GET %s %s (%d/%d) from nginx, pier %s%s", size, what, i, reps, b.pull.id, b.peerList())
			if err := b.timed(ngCPU, ng, func() (time.Duration, error) {
				return getURL(b.ctx, b.ng.base+f.ngPath, nil, f.size, nil, limit(f.size))
			}); err != nil {
				return fmt.Errorf("nginx: %w", err)
			}
			if err := b.timed(prCPU, pr, func() (time.Duration, error) {
				return getURL(b.ctx, b.pull.base+f.pierPath, pierHdr, f.size, nil, limit(f.size))
			}); err != nil {
				return fmt.Errorf("pier: %w", err)
			}
			for _, p := range b.peers {
				if err := b.timed(ps.cpu[p.name], ps.s[p.name], func() (time.Duration, error) {
					return getURL(b.ctx, p.url(f.key), nil, f.size, nil, limit(f.size))
				}); err != nil {
					return fmt.Errorf("%s: %w", p.name, err)
				}
			}
		}
		return nil
	}

	before := b.pull.metrics(b.ctx)
	if err := pulls("cold", f.reps, &ngCold, &prCold, &ngColdCPU, &prColdCPU, pCold, noCache); err != nil {
		return err
	}
	after := b.pull.metrics(b.ctx)
	f.cold = map[string]time.Duration{"nginx": ngCold.median(), "pier": prCold.median()}
	for k, s := range pCold.s {
		f.cold[k] = s.median()
	}
	b.rep.ratioRow("pull "+size+" cold (MB/s)", mbps(f.size, ngCold.median()), mbps(f.size, prCold.median()), "MB/s", 0.7, "", pCold.rates(f.size))
	coldPeer := after.delta(before, "pier_peer_read_bytes_total") / float64(f.reps)

	b.step("checking the SHA-256 of %s pulled cold from pier %s, nginx%s", size, b.pull.id, b.peerList())
	if err := verifyGet(b.ctx, b.pull.base+f.pierPath, noCache, f.size, f.digest, limit(f.size)); err != nil {
		return fmt.Errorf("pier (cold): %w", err)
	}
	if err := verifyGet(b.ctx, b.ng.base+f.ngPath, nil, f.size, f.digest, limit(f.size)); err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	for _, p := range b.peers {
		if err := verifyGet(b.ctx, p.url(f.key), nil, f.size, f.digest, limit(f.size)); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}

	// The first plain pull fills pier's cache: what a deployment target
	// that comes first sees, timed once (one object fills once: the reps
	// pushes were of the same bytes) against nginx's cold median. The hot
	// pulls come after the fill is committed, and the SHA-256 check after
	// them reads the filled bytes. A build without the pull cache (no
	// pier_pull_cache_fills_total) has neither row.
	fills0, hasCache := b.pull.metrics(b.ctx)["pier_pull_cache_fills_total"]
	var hot0, hot1 metricSet
	if hasCache {
		b.step("GET %s first (fills pier %s's pull cache)", size, b.pull.id)
		var first sample
		var firstCPU cpuUse
		prof := b.profile("pull-first-"+f.label, b.cfg.profileSecs)
		err := b.timed(&firstCPU, &first, func() (time.Duration, error) {
			return getURL(b.ctx, b.pull.base+f.pierPath, nil, f.size, nil, limit(f.size))
		})
		prof()
		if err != nil {
			return fmt.Errorf("pier (filling the pull cache): %w", err)
		}
		if err := b.pull.waitMetric(b.ctx, "pier_pull_cache_fills_total", fills0+1, 30*time.Second); err != nil {
			return fmt.Errorf("pier %s: the pull cache was not filled: %w", b.pull.id, err)
		}
		b.rep.ratioRow("pull "+size+" first, filling the pull cache (MB/s)", mbps(f.size, ngCold.median()), mbps(f.size, first.median()), "MB/s", 0, "none (one pull, against the cold medians)", pCold.rates(f.size))
		b.rep.note("%s first pull (fills the pull cache): %.0f MB/s, server CPU %s", size, mbps(f.size, first.median()), firstCPU.String("node"))
		hot0 = b.pull.metrics(b.ctx)
		// Three times the reps: a hot pull is short, and its median swung
		// by more than the margin the row is judged on with reps alone.
		if err := pulls("hot", 3*f.reps, &ngHot, &prHot, &ngHotCPU, &prHotCPU, pHot, nil); err != nil {
			return err
		}
		hot1 = b.pull.metrics(b.ctx)
		b.rep.ratioRow("pull "+size+" hot (MB/s)", mbps(f.size, ngHot.median()), mbps(f.size, prHot.median()), "MB/s", 0.9, "", pHot.rates(f.size))
		if err := verifyGet(b.ctx, b.pull.base+f.pierPath, nil, f.size, f.digest, limit(f.size)); err != nil {
			return fmt.Errorf("pier (hot): %w", err)
		}
	} else {
		b.rep.note("%s: this pier build exports no pier_pull_cache_fills_total (no pull cache): no hot pull row", size)
	}

	b.rep.note("%s runs, MB/s: push nginx %s, pier %s%s", size, ngPut.rates(f.size), prPut.rates(f.size), prefixed("; ", pPut.notes(f.size, b.peers)))
	b.rep.note("%s cold pulls, MB/s: nginx %s, pier %s (no-cache)%s", size, ngCold.rates(f.size), prCold.rates(f.size), prefixed("; ", pCold.notes(f.size, b.peers)))
	if hasCache {
		b.rep.note("%s hot pulls, MB/s: nginx %s, pier %s (pull cache)%s", size, ngHot.rates(f.size), prHot.rates(f.size), prefixed("; ", pHot.notes(f.size, b.peers)))
	}
	b.rep.note("%s server CPU: push: %s; pier %s. Cold pull: %s; pier %s. Hot pull: %s; pier %s",
		size, ngPutCPU.String("nginx"), prPutCPU.String("node"), ngColdCPU.String("nginx"), prColdCPU.String("node"),
		ngHotCPU.String("nginx"), prHotCPU.String("node"))
	b.rep.note("%s pulls: pier %s holds %s; a cold pull read %s from its peers; the hot pulls: %.0f pull cache hits, %s read from peers",
		size, b.pull.id, shardRole(b.pull, f.size), fmtBytes1(int64(coldPeer)),
		hot1.delta(hot0, "pier_pull_cache_hits_total"), fmtBytes1(int64(hot1.delta(hot0, "pier_peer_read_bytes_total"))))
	b.rep.note("%s: waited %s in all, before timed transfers, for Pier to finish deleting the shards of re-pushes of bytes it had (answered already; not in any timing)",
		size, (b.cleanupWait - waitedBefore).Round(time.Millisecond))
	return nil
}

// peerList is ", minio, seaweedfs" for the progress lines.
func (b *bench) peerList() string {
	var s string
	for _, p := range b.peers {
		s += ", " + p.name
	}
	return s
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

// timed runs one transfer, adding its duration to s and the servers' CPU to u,
// after the servers settle (untimed): what nginx writes without fsync is
// not written back during Pier's turn, nor Pier's cleanups run in nginx's.
func (b *bench) timed(u *cpuUse, s *sample, fn func() (time.Duration, error)) error {
	b.settle()
	return b.measure(u, func() error {
		d, err := fn()
		if err == nil {
			*s = append(*s, d)
		}
		return err
	})
}

// settle comes before every measurement: it waits for Pier's cleanups
// (waitCleanups) and flushes dirty pages, so that neither server's leftover
// work lands in the other's turn.
func (b *bench) settle() {
	b.cleanupWait += b.waitCleanups()
	syscall.Sync()
}

// objectBody is small object i: random bytes, the same for both targets.
func objectBody(i, size int) []byte {
	rng := rand.NewChaCha8([32]byte{byte(i), byte(i >> 8), byte(i >> 16), 's', 'm', 'a', 'l', 'l'})
	buf := make([]byte, size)
	_, _ = rng.Read(buf)
	return buf
}

// parallel runs fn(0..n-1) on workers goroutines, stopping at the first error.
func parallel(ctx context.Context, workers, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}

// smallObjects seeds objects into every system, then runs the wrk loads.
func (b *bench) smallObjects() error {
	n, size := b.cfg.objects, b.cfg.objSize
	sz := fmtBytes(int64(size))
	b.step("seeding %d %s objects into nginx, pier %s%s", n, sz, b.push.id, b.peerList())
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Minute)
	defer cancel()
	start := time.Now()
	err := parallel(ctx, 16, n, func(ctx context.Context, i int) error {
		body := objectBody(i, size)
		key := fmt.Sprintf("small/obj-%d", i)
		if err := putBytes(ctx, b.ng.base+"/"+key, body); err != nil {
			return fmt.Errorf("seed nginx: %w", err)
		}
		if err := putBytes(ctx, b.push.base+"/artifacts/"+key, body); err != nil {
			return fmt.Errorf("seed pier: %w", err)
		}
		for _, p := range b.peers {
			if err := putBytes(ctx, p.url(key), body); err != nil {
				return fmt.Errorf("seed %s: %w", p.name, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	b.rep.note("seeding %d %s objects into every system (16 workers, one system after the other per object) took %s",
		n, sz, time.Since(start).Round(time.Millisecond))

	// The pull node serves what was pushed to another node, byte for byte;
	// each peer serves what it took.
	last := fmt.Sprintf("%s/artifacts/small/obj-%d", b.pull.base, n-1)
	if err := waitHTTP(ctx, quickClient, last, http.StatusOK, b.pull.p, 15*time.Second); err != nil {
		return fmt.Errorf("pier %s: %w", b.pull.id, err)
	}
	for k := range min(n, 20) {
		i := k * n / min(n, 20)
		if err := checkSmall(ctx, fmt.Sprintf("%s/artifacts/small/obj-%d", b.pull.base, i), objectBody(i, size)); err != nil {
			return fmt.Errorf("pier %s: %w", b.pull.id, err)
		}
		for _, p := range b.peers {
			if err := checkSmall(ctx, p.url(fmt.Sprintf("small/obj-%d", i)), objectBody(i, size)); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
		}
	}

	t, dur := b.cfg.wrkThreads, b.cfg.wrkDur
	type wrkRun struct {
		what, cpuKey, script, url, prefix, arg string
		query                                  string // after each PUT's name
		conns                                  int
		res                                    wrkResult
	}
	var gets, puts []*wrkRun
	gets = append(gets, &wrkRun{what: "GET nginx", cpuKey: "nginx", url: b.ng.base + "/", prefix: "/small/obj-"},
		&wrkRun{what: "GET pier " + b.pull.id, cpuKey: "node", url: b.pull.base + "/", prefix: "/artifacts/small/obj-"})
	puts = append(puts, &wrkRun{what: "PUT nginx", cpuKey: "nginx", url: b.ng.base + "/", prefix: "/wput/w-"},
		&wrkRun{what: "PUT pier " + b.push.id, cpuKey: "node", url: b.push.base + "/", prefix: "/artifacts/wput/w-"})
	// SeaweedFS answers a PUT before any fsync; with ?fsync=true its volume
	// server fsyncs the needle first, which is closer to what Pier does
	// (Pier also fsyncs a second copy and a raft entry on two nodes).
	var syncedPut *wrkRun
	for _, p := range b.peers {
		gets = append(gets, &wrkRun{what: "GET " + p.name, cpuKey: p.name, url: p.base + "/", prefix: p.prefix + "/small/obj-"})
		puts = append(puts, &wrkRun{what: "PUT " + p.name, cpuKey: p.name, url: p.base + "/", prefix: p.prefix + "/wput/w-"})
		if p.name == "seaweedfs" {
			syncedPut = &wrkRun{what: "PUT seaweedfs fsync=true", cpuKey: p.name, url: p.base + "/",
				prefix: p.prefix + "/wputsync/w-", query: "?fsync=true"}
		}
	}
	if syncedPut != nil {
		puts = append(puts, syncedPut)
	}
	for _, r := range gets {
		r.script, r.arg, r.conns = "get.lua", strconv.Itoa(n), b.cfg.getConns
	}
	for _, r := range puts {
		r.script, r.arg, r.conns = "put.lua", strconv.Itoa(size), b.cfg.putConns
	}
	for _, r := range append(append([]*wrkRun{}, gets...), puts...) {
		b.step("wrk %s: %d connections for %s", r.what, r.conns, dur)
		var res wrkResult
		var use cpuUse
		b.settle()
		prof := func() {}
		if r.cpuKey == "node" {
			prof = b.profile("wrk-"+strings.ToLower(strings.Fields(r.what)[0]), int(dur.Seconds())-1)
		}
		err := b.measure(&use, func() (err error) {
			args := []string{r.prefix, r.arg}
			if r.query != "" {
				args = append(args, r.query)
			}
			res, err = runWrk(b.ctx, b.work, r.script, t, r.conns, dur, r.url, args...)
			return err
		})
		prof()
		_ = os.WriteFile(filepath.Join(b.work, "wrk-"+strings.ReplaceAll(r.what, " ", "-")+".txt"), []byte(res.Raw), 0o644)
		if err != nil {
			return fmt.Errorf("%s: %w", r.what, err)
		}
		if res.Requests == 0 {
			return fmt.Errorf("%s: wrk completed no requests\n%s", r.what, res.Raw)
		}
		b.rep.note("wrk %s: %.0f req/s; server CPU %s, %.0f µs per request",
			r.what, res.ReqPerSec, use.String(r.cpuKey), 1e6*use.total(r.cpuKey)/float64(res.Requests))
		if res.failed() > 0 {
			b.rep.note("wrk %s: %d of %d requests failed (non-2xx %d, first status %d; %s)",
				r.what, res.failed(), res.Requests, max(res.Non2xx, res.LuaNon2xx), res.FirstBad, orNone(res.SockLine))
		}
		r.res = res
	}
	rows := func(label string, runs []*wrkRun, min float64, p99 time.Duration) {
		ng, pr := runs[0].res, runs[1].res
		rps, p50s, p99s := peerVals{}, map[string]time.Duration{}, map[string]time.Duration{}
		fails := map[string]wrkResult{}
		for i, p := range b.peers {
			r := runs[2+i].res
			rps[p.name], p50s[p.name], p99s[p.name], fails[p.name] = r.ReqPerSec, r.P50, r.P99, r
		}
		b.rep.ratioRow(label+" (req/s)", ng.ReqPerSec, pr.ReqPerSec, "req/s", min, "", rps)
		b.rep.latencyRow(label+" p50", ng.P50, pr.P50, 0, p50s)
		b.rep.latencyRow(label+" p99", ng.P99, pr.P99, p99, p99s)
		b.errorRow(label+" failed requests", ng, pr, fails)
	}
	rows(fmt.Sprintf("%s GET, %d conns", sz, b.cfg.getConns), gets, 0.3, 20*time.Millisecond)
	putLabel := fmt.Sprintf("%s PUT, %d conns", sz, b.cfg.putConns)
	rows(putLabel, puts, 0.25, 0)
	if syncedPut != nil {
		ng, pr, sw := puts[0].res, puts[1].res, syncedPut.res
		label := putLabel + ", SeaweedFS with ?fsync=true"
		b.rep.ratioRow(label+" (req/s)", ng.ReqPerSec, pr.ReqPerSec, "req/s", 0, "", peerVals{"seaweedfs": sw.ReqPerSec})
		b.rep.latencyRow(label+" p50", ng.P50, pr.P50, 0, map[string]time.Duration{"seaweedfs": sw.P50})
		b.errorRow(label+" failed requests", ng, pr, map[string]wrkResult{"seaweedfs": sw})
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "no socket errors"
	}
	return s
}

func (b *bench) errorRow(test string, ng, pr wrkResult, peers map[string]wrkResult) {
	f := func(r wrkResult) string { return fmt.Sprintf("%s of %s", commas(r.failed()), commas(r.Requests)) }
	x := row{test: test, nginx: f(ng), pier: f(pr), ratio: "-", target: "0", met: yesNo(ng.failed() == 0 && pr.failed() == 0)}
	if len(b.rep.peers) > 0 {
		x.peer = make([]peerCell, len(b.rep.peers))
		for i, name := range b.rep.peers {
			if r, ok := peers[name]; ok {
				x.peer[i] = peerCell{val: f(r), has: true, noAdv: true}
			}
		}
	}
	b.rep.rows = append(b.rep.rows, x)
}

func checkSmall(ctx context.Context, url string, want []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := quickClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(io.LimitReader(resp.Body, int64(len(want))+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("GET %s: SHA-256 %x, want %x", url, sha256.Sum256(got), sha256.Sum256(want))
	}
	return nil
}

// degraded SIGKILLs one node other than the pull node (a follower when it
// can) and pulls the big files again from the pull node.
func (b *bench) degraded(files []*testFile, leader string) error {
	var victim *pierNode
	for _, nd := range b.cl.nodes {
		if nd == b.pull {
			continue
		}
		if victim == nil || victim.id == leader || (nd.id != leader && nd != b.push) {
			victim = nd
		}
	}
	for _, f := range files {
		if f.pierPath == "" {
			return fmt.Errorf("%s was not pushed", fmtBytes(f.size))
		}
	}
	role := "a follower"
	if victim.id == leader {
		role = "the leader"
	}
	b.step("SIGKILL pier %s (%s); pulling again from %s", victim.id, role, b.pull.id)
	b.cl.killNode(victim)
	start := time.Now()
	if err := b.probe(files[0].pierPath, 60*time.Second); err != nil {
		return fmt.Errorf("after SIGKILL of %s: %w", victim.id, err)
	}
	b.rep.note("degraded: SIGKILLed %s (%s at start); the first ranged GET from %s succeeded %s later; Pier pulls with Cache-Control: no-cache (the shards, not the pull cache); the nginx and peer columns are their healthy cold pulls (no degraded mode measured for them)",
		victim.id, role, b.pull.id, time.Since(start).Round(time.Millisecond))
	for _, f := range files {
		size := fmtBytes(f.size)
		var s sample
		var use cpuUse
		for i := 1; i <= f.reps; i++ {
			b.step("GET %s (%d/%d) from pier %s with %s down", size, i, f.reps, b.pull.id, victim.id)
			if err := b.timed(&use, &s, func() (time.Duration, error) {
				return getURL(b.ctx, b.pull.base+f.pierPath, noCache, f.size, nil, limit(f.size))
			}); err != nil {
				return err
			}
		}
		pv := peerVals{}
		for _, p := range b.peers {
			pv[p.name] = mbps(f.size, f.cold[p.name])
		}
		b.rep.ratioRow("pull "+size+" cold, 1 of 3 nodes down (MB/s)", mbps(f.size, f.cold["nginx"]), mbps(f.size, s.median()), "MB/s", 0, "none (others: healthy cold pull)", pv)
		b.rep.note("%s degraded pull runs (no-cache), MB/s: %s; server CPU %s", size, s.rates(f.size), use.String("node"))
		if err := verifyGet(b.ctx, b.pull.base+f.pierPath, noCache, f.size, f.digest, limit(f.size)); err != nil {
			return err
		}
	}
	return nil
}

// probe waits (bounded) until a one-byte ranged GET of path on the pull node works.
func (b *bench) probe(path string, deadline time.Duration) error {
	ctx, cancel := context.WithTimeout(b.ctx, deadline)
	defer cancel()
	last := "no answer"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.pull.base+path, nil)
		req.Header.Set("Range", "bytes=0-0")
		// From the shards: the pull cache would answer with a peer down.
		req.Header.Set("Cache-Control", "no-cache")
		resp, err := quickClient.Do(req)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode == http.StatusPartialContent || resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			if b.ctx.Err() != nil {
				return b.ctx.Err()
			}
			return fmt.Errorf("no successful GET of %s from %s within %s (last: %s)", path, b.pull.id, deadline, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
