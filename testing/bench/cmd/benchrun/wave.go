package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A wave is a deployment: n clients pull the same freshly pushed artifact
// at once. Pier's clients are spread evenly over the three nodes (client
// i asks node i%3), so every node serves a third of the wave; nginx and
// each peer serve the same n clients from their one process.
//
// What it shows of Pier: the first pull on each node decodes the object
// from shards once and fills the node's pull cache, the others follow that
// fill, so each node reads each stripe from its peers at most once while
// the wave runs (checked against the bytes one cold pull of the object
// on that node reads from its peers, measured before the wave).

// waveResult is one system's wave.
type waveResult struct {
	wall       time.Duration // first request sent to last byte read
	pulls      sample        // each client's pull, request to last byte
	cpu        cpuUse
	bytesTotal int64
}

func (w waveResult) aggregate() float64 { return mbps(w.bytesTotal, w.wall) }

// percentile is the p-th percentile (0..100) of s, nearest rank.
func (s sample) percentile(p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	c := append(sample(nil), s...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	i := int(p/100*float64(len(c))+0.5) - 1
	return c[min(max(i, 0), len(c)-1)]
}

// cpuPerGiB is the servers' CPU seconds per GiB the clients received.
func (w waveResult) cpuPerGiB(prefix string) float64 {
	if w.bytesTotal == 0 {
		return 0
	}
	return w.cpu.total(prefix) / (float64(w.bytesTotal) / (1 << 30))
}

// waveBound bounds a whole wave: a minute plus 10 MB/s for all its bytes.
func waveBound(n int, size int64) time.Duration {
	return time.Minute + time.Duration(int64(n)*size/10e6)*time.Second
}

// runWave has n clients GET urls[i%len(urls)] at once, each reading the
// whole body and dropping it.
func runWave(ctx context.Context, n int, urls []string, size int64) (waveResult, error) {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		DisableCompression:  true,
		MaxIdleConnsPerHost: n,
		ReadBufferSize:      256 << 10,
		IdleConnTimeout:     10 * time.Second,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	bound := waveBound(n, size)
	var (
		mu    sync.Mutex
		res   = waveResult{bytesTotal: int64(n) * size}
		first error
		wg    sync.WaitGroup
	)
	startGate := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256<<10)
			<-startGate
			d, err := getWith(ctx, hc, urls[i%len(urls)], nil, size, nil, bound, buf)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = fmt.Errorf("client %d: %w", i, err)
				}
				return
			}
			res.pulls = append(res.pulls, d)
		}()
	}
	start := time.Now()
	close(startGate)
	wg.Wait()
	res.wall = time.Since(start)
	return res, first
}

// wchar is the bytes pid has written through write-like calls (sockets,
// files and sendfile alike), from /proc/<pid>/io.
func wchar(pid int) int64 {
	for _, l := range strings.Split(readFile(fmt.Sprintf("/proc/%d/io", pid)), "\n") {
		if v, ok := strings.CutPrefix(l, "wchar:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// wave pushes a file of its own (a new object: every node's pull cache is
// cold for it) to every system and runs an n-client wave against each.
func (b *bench) wave(n int, seed uint64) error {
	size := b.cfg.waveSize
	label := fmt.Sprintf("wave %d x %s", n, fmtBytes(size))
	path := filepath.Join(b.work, "src", fmt.Sprintf("wave-%d.bin", n))
	b.step("%s: writing the file and pushing it to nginx, pier %s%s", label, b.push.id, b.peerList())
	digest, err := genFile(path, size, seed)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(path)
	key := fmt.Sprintf("wave/w%d.bin", n)
	b.settle()
	if _, err := putFile(b.ctx, b.ng.base+"/"+key, path, size, limit(size)); err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	if _, err := putFile(b.ctx, b.push.base+"/artifacts/"+key, path, size, limit(size)); err != nil {
		return fmt.Errorf("pier: %w", err)
	}
	for _, p := range b.peers {
		if _, err := putFile(b.ctx, p.url(key), path, size, limit(size)); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}

	// One cold pull on each node (no-cache: it neither reads nor fills the
	// pull cache), its digest checked: what reading each stripe once
	// costs that node in peer reads.
	once := map[string]float64{}
	for _, nd := range b.cl.nodes {
		m0 := nd.metrics(b.ctx)
		if err := verifyGet(b.ctx, nd.base+"/artifacts/"+key, noCache, size, digest, limit(size)); err != nil {
			return fmt.Errorf("pier %s: %w", nd.id, err)
		}
		m1 := nd.metrics(b.ctx)
		once[nd.id] = m1.delta(m0, "pier_peer_read_bytes_total")
		if d := m1.delta(m0, "pier_pull_cache_fills_total"); d != 0 {
			return fmt.Errorf("pier %s: a no-cache pull filled the pull cache (%g fills): the wave would not start cold", nd.id, d)
		}
	}
	if err := verifyGet(b.ctx, b.ng.base+"/"+key, nil, size, digest, limit(size)); err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	for _, p := range b.peers {
		if err := verifyGet(b.ctx, p.url(key), nil, size, digest, limit(size)); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}

	run := func(what, cpuKey string, urls []string) (waveResult, error) {
		b.step("%s: %s", label, what)
		b.settle()
		var res waveResult
		var use cpuUse
		err := b.measure(&use, func() (err error) {
			res, err = runWave(b.ctx, n, urls, size)
			return err
		})
		res.cpu = use
		if err != nil {
			return res, fmt.Errorf("%s: %w", what, err)
		}
		return res, nil
	}

	ng, err := run("nginx", "nginx", []string{b.ng.base + "/" + key})
	if err != nil {
		return err
	}
	var pierURLs []string
	for _, nd := range b.cl.nodes {
		pierURLs = append(pierURLs, nd.base+"/artifacts/"+key)
	}
	m0, w0 := map[string]metricSet{}, map[string]int64{}
	for _, nd := range b.cl.nodes {
		m0[nd.id], w0[nd.id] = nd.metrics(b.ctx), wchar(nd.p.pid())
	}
	prof := b.profile(fmt.Sprintf("wave-%d", n), b.cfg.profileSecs)
	pr, err := run(fmt.Sprintf("pier, clients spread over %d nodes", len(b.cl.nodes)), "node", pierURLs)
	prof()
	if err != nil {
		return err
	}
	m1, w1 := map[string]metricSet{}, map[string]int64{}
	for _, nd := range b.cl.nodes {
		m1[nd.id], w1[nd.id] = nd.metrics(b.ctx), wchar(nd.p.pid())
	}
	peers := map[string]waveResult{}
	for _, p := range b.peers {
		r, err := run(p.name, p.name, []string{p.url(key)})
		if err != nil {
			return err
		}
		peers[p.name] = r
	}

	agg, p50, p99, cpu := peerVals{}, map[string]time.Duration{}, map[string]time.Duration{}, peerVals{}
	for name, r := range peers {
		agg[name], p50[name], p99[name], cpu[name] = r.aggregate(), r.pulls.percentile(50), r.pulls.percentile(99), r.cpuPerGiB(name)
	}
	b.rep.ratioRow(label+": aggregate (MB/s)", ng.aggregate(), pr.aggregate(), "MB/s", 0.8, "", agg)
	b.rep.latencyRow(label+": p50 per pull", ng.pulls.percentile(50), pr.pulls.percentile(50), 0, p50)
	b.rep.latencyRow(label+": p99 per pull", ng.pulls.percentile(99), pr.pulls.percentile(99), 0, p99)
	b.rep.costRow(label+": server CPU per GiB pulled", ng.cpuPerGiB("nginx"), pr.cpuPerGiB("node"), "s", 0, cpu)

	// Each stripe from peers at most once per node; the load even.
	var reads []string
	readsOK := true
	var written []float64
	var perNode []string
	for i, nd := range b.cl.nodes {
		got := m1[nd.id].delta(m0[nd.id], "pier_peer_read_bytes_total")
		x := 0.0
		if once[nd.id] > 0 {
			x = got / once[nd.id]
		}
		// A hundredth over a single read allows for rounding, not for a
		// second read of any stripe (that would be at least 1/stripes
		// more, and the wave's object has hundreds of stripes).
		if got > once[nd.id]*1.01 {
			readsOK = false
		}
		reads = append(reads, fmt.Sprintf("%s %.2f", nd.id, x))
		wrote := float64(w1[nd.id] - w0[nd.id])
		written = append(written, wrote)
		clients := (n - i + len(b.cl.nodes) - 1) / len(b.cl.nodes)
		perNode = append(perNode, fmt.Sprintf("%s: %d clients, read %s from peers (one cold pull: %s), pull cache fills %.0f hits %.0f, wrote %s (sockets, sendfile, files), CPU %.2f s",
			nd.id, clients, fmtBytes1(int64(got)), fmtBytes1(int64(once[nd.id])),
			m1[nd.id].delta(m0[nd.id], "pier_pull_cache_fills_total"), m1[nd.id].delta(m0[nd.id], "pier_pull_cache_hits_total"),
			fmtBytes1(int64(wrote)), pr.cpu.secs[nd.id]))
	}
	if _, ok := m1[b.cl.nodes[0].id]["pier_peer_read_bytes_total"]; !ok {
		b.rep.pierRow(label+": peer reads per node (x one read of each stripe)", "not exported by this build", "<= 1.00 each", false)
	} else {
		b.rep.pierRow(label+": peer reads per node (x one read of each stripe)", strings.Join(reads, ", "), "<= 1.00 each", readsOK)
	}
	mean, most := 0.0, 0.0
	for _, w := range written {
		mean += w / float64(len(written))
		most = max(most, w)
	}
	balance := 0.0
	if mean > 0 {
		balance = most / mean
	}
	b.rep.pierRow(label+": busiest node's bytes written / mean", fmt.Sprintf("%.2f", balance), "<= 1.50", balance <= 1.5)

	b.rep.note("%s: nginx %.0f MB/s in %s (CPU %s); pier %.0f MB/s in %s (CPU %s)%s", label,
		ng.aggregate(), ng.wall.Round(time.Millisecond), ng.cpu.String("nginx"),
		pr.aggregate(), pr.wall.Round(time.Millisecond), pr.cpu.String("node"), prefixed("; ", b.wavePeerNotes(peers)))
	b.rep.note("%s, pier per node: %s", label, strings.Join(perNode, "; "))
	return nil
}

func (b *bench) wavePeerNotes(peers map[string]waveResult) string {
	var parts []string
	for _, p := range b.peers {
		r := peers[p.name]
		parts = append(parts, fmt.Sprintf("%s %.0f MB/s in %s (CPU %s)", p.name, r.aggregate(), r.wall.Round(time.Millisecond), r.cpu.String(p.name)))
	}
	return strings.Join(parts, "; ")
}
