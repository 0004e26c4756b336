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
	ngGet               time.Duration
}

type bench struct {
	ctx        context.Context
	cfg        config
	rep        *report
	ng         *nginxServer
	cl         *pierCluster
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

// transfers PUTs the file to both targets, then GETs it back, reps times
// each, alternating between the targets so drift hits both alike.
func (b *bench) transfers(f *testFile) error {
	size := fmtBytes(f.size)
	var ngPut, prPut, ngGet, prGet sample
	var ngPutCPU, prPutCPU, ngGetCPU, prGetCPU cpuUse
	waitedBefore := b.cleanupWait
	for i := 1; i <= f.reps; i++ {
		name := fmt.Sprintf("bench/%s-%d.bin", f.label, i)
		b.step("PUT %s (%d/%d) to nginx and pier %s", size, i, f.reps, b.push.id)
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
	}
	f.ngPath = fmt.Sprintf("/bench/%s-1.bin", f.label)
	f.pierPath = fmt.Sprintf("/artifacts/bench/%s-1.bin", f.label)
	b.rep.ratioRow("push "+size+" (MB/s)", mbps(f.size, ngPut.median()), mbps(f.size, prPut.median()), "MB/s", 0.5, "")

	for i := 1; i <= f.reps; i++ {
		b.step("GET %s (%d/%d) from nginx and pier %s", size, i, f.reps, b.pull.id)
		if err := b.timed(&ngGetCPU, &ngGet, func() (time.Duration, error) {
			return getURL(b.ctx, b.ng.base+f.ngPath, f.size, nil, limit(f.size))
		}); err != nil {
			return fmt.Errorf("nginx: %w", err)
		}
		if err := b.timed(&prGetCPU, &prGet, func() (time.Duration, error) {
			return getURL(b.ctx, b.pull.base+f.pierPath, f.size, nil, limit(f.size))
		}); err != nil {
			return fmt.Errorf("pier: %w", err)
		}
	}
	f.ngGet = ngGet.median()
	b.rep.ratioRow("pull "+size+" (MB/s)", mbps(f.size, ngGet.median()), mbps(f.size, prGet.median()), "MB/s", 0.7, "")
	b.rep.note("%s runs, MB/s: push nginx %s, pier %s; pull nginx %s, pier %s",
		size, ngPut.rates(f.size), prPut.rates(f.size), ngGet.rates(f.size), prGet.rates(f.size))
	b.rep.note("%s server CPU: push: %s; pier %s. Pull: %s; pier %s",
		size, ngPutCPU.String("nginx"), prPutCPU.String("node"), ngGetCPU.String("nginx"), prGetCPU.String("node"))
	b.rep.note("%s pulls: pier %s holds %s", size, b.pull.id, shardRole(b.pull, f.size))
	b.rep.note("%s: waited %s in all, before timed transfers, for Pier to finish deleting the shards of re-pushes of bytes it had (answered already; not in any timing)",
		size, (b.cleanupWait - waitedBefore).Round(time.Millisecond))

	b.step("checking the SHA-256 of %s pulled from pier %s and nginx", size, b.pull.id)
	if err := verifyGet(b.ctx, b.pull.base+f.pierPath, f.size, f.digest, limit(f.size)); err != nil {
		return fmt.Errorf("pier: %w", err)
	}
	if err := verifyGet(b.ctx, b.ng.base+f.ngPath, f.size, f.digest, limit(f.size)); err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	return nil
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

// smallObjects seeds objects into both targets, then runs the wrk loads.
func (b *bench) smallObjects() error {
	n, size := b.cfg.objects, b.cfg.objSize
	sz := fmtBytes(int64(size))
	b.step("seeding %d %s objects into nginx and pier %s", n, sz, b.push.id)
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Minute)
	defer cancel()
	start := time.Now()
	err := parallel(ctx, 16, n, func(ctx context.Context, i int) error {
		body := objectBody(i, size)
		if err := putBytes(ctx, fmt.Sprintf("%s/small/obj-%d", b.ng.base, i), body); err != nil {
			return fmt.Errorf("seed nginx: %w", err)
		}
		if err := putBytes(ctx, fmt.Sprintf("%s/artifacts/small/obj-%d", b.push.base, i), body); err != nil {
			return fmt.Errorf("seed pier: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	b.rep.note("seeding %d %s objects into both (16 workers, nginx then pier per object) took %s",
		n, sz, time.Since(start).Round(time.Millisecond))

	// The pull node serves what was pushed to another node, byte for byte.
	last := fmt.Sprintf("%s/artifacts/small/obj-%d", b.pull.base, n-1)
	if err := waitHTTP(ctx, quickClient, last, http.StatusOK, b.pull.p, 15*time.Second); err != nil {
		return fmt.Errorf("pier %s: %w", b.pull.id, err)
	}
	for k := range min(n, 20) {
		i := k * n / min(n, 20)
		if err := checkSmall(ctx, fmt.Sprintf("%s/artifacts/small/obj-%d", b.pull.base, i), objectBody(i, size)); err != nil {
			return fmt.Errorf("pier %s: %w", b.pull.id, err)
		}
	}

	t, dur := b.cfg.wrkThreads, b.cfg.wrkDur
	var ngGet, prGet, ngPut, prPut wrkResult
	runs := []struct {
		what, script, url, prefix, arg string
		conns                          int
		out                            *wrkResult
	}{
		{"GET nginx", "get.lua", b.ng.base + "/", "/small/obj-", strconv.Itoa(n), b.cfg.getConns, &ngGet},
		{"GET pier " + b.pull.id, "get.lua", b.pull.base + "/", "/artifacts/small/obj-", strconv.Itoa(n), b.cfg.getConns, &prGet},
		{"PUT nginx", "put.lua", b.ng.base + "/", "/wput/w-", strconv.Itoa(size), b.cfg.putConns, &ngPut},
		{"PUT pier " + b.push.id, "put.lua", b.push.base + "/", "/artifacts/wput/w-", strconv.Itoa(size), b.cfg.putConns, &prPut},
	}
	for _, r := range runs {
		b.step("wrk %s: %d connections for %s", r.what, r.conns, dur)
		var res wrkResult
		var use cpuUse
		b.settle()
		err := b.measure(&use, func() (err error) {
			res, err = runWrk(b.ctx, b.work, r.script, t, r.conns, dur, r.url, r.prefix, r.arg)
			return err
		})
		_ = os.WriteFile(filepath.Join(b.work, "wrk-"+strings.ReplaceAll(r.what, " ", "-")+".txt"), []byte(res.Raw), 0o644)
		if err != nil {
			return fmt.Errorf("%s: %w", r.what, err)
		}
		prefix := "node"
		if r.url == b.ng.base+"/" {
			prefix = "nginx"
		}
		b.rep.note("wrk %s: %.0f req/s; server CPU %s, %.0f µs per request",
			r.what, res.ReqPerSec, use.String(prefix), 1e6*use.total(prefix)/float64(res.Requests))
		if res.Requests == 0 {
			return fmt.Errorf("%s: wrk completed no requests\n%s", r.what, res.Raw)
		}
		if res.failed() > 0 {
			b.rep.note("wrk %s: %d of %d requests failed (non-2xx %d, first status %d; %s)",
				r.what, res.failed(), res.Requests, max(res.Non2xx, res.LuaNon2xx), res.FirstBad, orNone(res.SockLine))
		}
		*r.out = res
	}
	get := fmt.Sprintf("%s GET, %d conns", sz, b.cfg.getConns)
	b.rep.ratioRow(get+" (req/s)", ngGet.ReqPerSec, prGet.ReqPerSec, "req/s", 0.3, "")
	b.rep.latencyRow(get+" p50", ngGet.P50, prGet.P50, 0)
	b.rep.latencyRow(get+" p99", ngGet.P99, prGet.P99, 20*time.Millisecond)
	b.errorRow(get+" failed requests", ngGet, prGet)
	put := fmt.Sprintf("%s PUT, %d conns", sz, b.cfg.putConns)
	b.rep.ratioRow(put+" (req/s)", ngPut.ReqPerSec, prPut.ReqPerSec, "req/s", 0.25, "")
	b.rep.latencyRow(put+" p50", ngPut.P50, prPut.P50, 0)
	b.rep.latencyRow(put+" p99", ngPut.P99, prPut.P99, 0)
	b.errorRow(put+" failed requests", ngPut, prPut)
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "no socket errors"
	}
	return s
}

func (b *bench) errorRow(test string, ng, pr wrkResult) {
	f := func(r wrkResult) string { return fmt.Sprintf("%s of %s", commas(r.failed()), commas(r.Requests)) }
	b.rep.rows = append(b.rep.rows, row{test, f(ng), f(pr), "-", "0", yesNo(ng.failed() == 0 && pr.failed() == 0)})
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
	b.rep.note("degraded: SIGKILLed %s (%s at start); the first ranged GET from %s succeeded %s later; nginx column is its healthy GET (nginx has no degraded mode)",
		victim.id, role, b.pull.id, time.Since(start).Round(time.Millisecond))
	for _, f := range files {
		size := fmtBytes(f.size)
		var s sample
		var use cpuUse
		for i := 1; i <= f.reps; i++ {
			b.step("GET %s (%d/%d) from pier %s with %s down", size, i, f.reps, b.pull.id, victim.id)
			if err := b.timed(&use, &s, func() (time.Duration, error) {
				return getURL(b.ctx, b.pull.base+f.pierPath, f.size, nil, limit(f.size))
			}); err != nil {
				return err
			}
		}
		b.rep.ratioRow("pull "+size+", 1 of 3 nodes down (MB/s)", mbps(f.size, f.ngGet), mbps(f.size, s.median()), "MB/s", 0, "none (nginx: healthy)")
		b.rep.note("%s degraded pull runs, MB/s: %s; server CPU %s", size, s.rates(f.size), use.String("node"))
		if err := verifyGet(b.ctx, b.pull.base+f.pierPath, f.size, f.digest, limit(f.size)); err != nil {
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
