package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pier-registry/pier/cluster"
)

// metrics is one API's Prometheus registry: request counts and durations,
// and the node's own figures, read when scraped. Each API has a registry of
// its own because tests run many nodes in one process; what is one per
// process (the Go runtime, raft's metrics through go-metrics, see
// transport/telemetry) is in the default registry, served next to it.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	handler  http.Handler // serves reg and the default registry
}

func newMetrics(r Registry) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pier_http_requests_total", Help: "HTTP requests by method and status.",
		}, []string{"method", "code"}),
		// Routes are the API's patterns, never raw paths: a label per
		// artifact name would grow without bound.
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pier_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, body included, by route and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"route", "method"}),
	}
	m.reg.MustRegister(m.requests, m.duration, nodeCollector{r})
	// A family that fails to gather (a go-metrics name clash, say) is left
	// out rather than failing the whole scrape.
	m.handler = promhttp.HandlerFor(prometheus.Gatherers{m.reg, prometheus.DefaultGatherer},
		promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return m
}

func (m *metrics) observe(route, method string, status int, took time.Duration) {
	m.requests.WithLabelValues(method, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route, method).Observe(took.Seconds())
}

// metrics serves GET /metrics: this API's registry and the process's.
func (a *API) metrics(w http.ResponseWriter, r *http.Request) { a.m.handler.ServeHTTP(w, r) }

// nodeCollector reads the node's figures when /metrics is scraped.
type nodeCollector struct{ r Registry }

type figure struct {
	name, help string
	kind       prometheus.ValueType
}

var (
	figArtifacts      = figure{"pier_artifacts", "Live artifacts in the cluster.", prometheus.GaugeValue}
	figObjects        = figure{"pier_objects", "Distinct stored objects.", prometheus.GaugeValue}
	figObjectBytes    = figure{"pier_object_bytes", "Bytes of distinct stored objects.", prometheus.GaugeValue}
	figTombstones     = figure{"pier_tombstones", "Deleted names kept bound to their digest.", prometheus.GaugeValue}
	figLeader         = figure{"pier_is_leader", "1 on the raft leader.", prometheus.GaugeValue}
	figReady          = figure{"pier_ready", "1 when the node serves.", prometheus.GaugeValue}
	figCorruptBlocks  = figure{"pier_corrupt_blocks_total", "Shard blocks that failed their checksum on read and were rebuilt from parity.", prometheus.CounterValue}
	figDegraded       = figure{"pier_degraded_reads_total", "Reads that needed parity because a shard was missing, slow or corrupt.", prometheus.CounterValue}
	figShardFiles     = figure{"pier_shard_files", "Shards on this node, files and packed records.", prometheus.GaugeValue}
	figShardBytes     = figure{"pier_shard_bytes", "Bytes of shards on this node.", prometheus.GaugeValue}
	figRepaired       = figure{"pier_repaired_shards_total", "Shards this node rebuilt or moved as leader.", prometheus.CounterValue}
	figRepairFailures = figure{"pier_repair_failures_total", "Repair attempts that failed and will be retried.", prometheus.CounterValue}
	figMovedBytes     = figure{"pier_moved_bytes_total", "Shard bytes written by repair and rebalance.", prometheus.CounterValue}
	figScrubbed       = figure{"pier_scrubbed_bytes_total", "Shard bytes re-read and verified by the scrubber.", prometheus.CounterValue}
	figScrubBad       = figure{"pier_scrub_bad_shards_total", "Shards the scrubber found absent or corrupt.", prometheus.CounterValue}
	figGCRemoved      = figure{"pier_gc_removed_shards_total", "Unreferenced shard files removed.", prometheus.CounterValue}
	figCacheHits      = figure{"pier_cache_hits_total", "Small-object reads served from memory.", prometheus.CounterValue}
	figCacheBytes     = figure{"pier_cache_bytes", "Content held by the small-object cache.", prometheus.GaugeValue}
	figPullHits       = figure{"pier_pull_cache_hits_total", "Big-object reads served from the pull cache or a fill in progress.", prometheus.CounterValue}
	figPullBytes      = figure{"pier_pull_cache_bytes", "Content held by the pull cache on disk.", prometheus.GaugeValue}
	figPullFills      = figure{"pier_pull_cache_fills_total", "Objects written whole into the pull cache and verified.", prometheus.CounterValue}
	figPullFillFails  = figure{"pier_pull_cache_fill_failures_total", "Pull cache fills dropped (read failed, digest mismatch, disk error).", prometheus.CounterValue}
	figPullCorrupt    = figure{"pier_pull_cache_corrupt_total", "Pull cache entries dropped because a block no longer matched its checksum (the pull went on from the shards).", prometheus.CounterValue}
	figPeerReadBytes  = figure{"pier_peer_read_bytes_total", "Shard bytes this node's reads streamed from other nodes.", prometheus.CounterValue}
	figPackFailures   = figure{"pier_pack_failures_total", "Copies carried in raft entries (logs from older builds) this node failed to pack (they are rebuilt by repair).", prometheus.CounterValue}
	figCleanups       = figure{"pier_cleanups_running", "Deletions of refused or deduplicated pushes' shards still running after their answer.", prometheus.GaugeValue}
	figRedundancy     = figure{"pier_objects_by_redundancy", "Objects by redundancy state.", prometheus.GaugeValue}
	figHalted         = figure{"pier_fsm_halted", "1 when the state machine stopped at a raft log entry this build cannot read (writes are refused).", prometheus.GaugeValue}
	figMembers        = figure{"pier_members", "Known members by gossip state.", prometheus.GaugeValue}
)

func (f figure) desc(labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(f.name, f.help, labels, nil)
}

// Describe sends nothing: the collector is unchecked, its figures are
// read from the node at each scrape.
func (nodeCollector) Describe(chan<- *prometheus.Desc) {}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	emit := func(f figure, v float64, labels ...string) {
		var names []string
		if len(labels) > 0 {
			names = []string{"state"}
		}
		ch <- prometheus.MustNewConstMetric(f.desc(names...), f.kind, v, labels...)
	}
	bit := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	counts := c.r.Counts()
	emit(figArtifacts, float64(counts.Artifacts))
	emit(figObjects, float64(counts.Objects))
	emit(figObjectBytes, float64(counts.Bytes))
	emit(figTombstones, float64(counts.Tombstones))
	emit(figLeader, bit(c.r.IsLeader()))
	emit(figReady, bit(c.r.Ready()))

	st := c.r.Stats()
	emit(figCorruptBlocks, float64(st.CorruptBlocks))
	emit(figDegraded, float64(st.DegradedReads))
	emit(figShardFiles, float64(st.ShardFiles))
	emit(figShardBytes, float64(st.ShardBytes))
	emit(figRepaired, float64(st.RepairedShards))
	emit(figRepairFailures, float64(st.RepairFailures))
	emit(figMovedBytes, float64(st.MovedBytes))
	emit(figScrubbed, float64(st.ScrubbedBytes))
	emit(figScrubBad, float64(st.ScrubCorrupt))
	emit(figGCRemoved, float64(st.GCRemoved))
	emit(figCacheHits, float64(st.CacheHits))
	emit(figCacheBytes, float64(st.CacheBytes))
	emit(figPullHits, float64(st.PullCacheHits))
	emit(figPullBytes, float64(st.PullCacheBytes))
	emit(figPullFills, float64(st.PullCacheFills))
	emit(figPullFillFails, float64(st.PullCacheFillFails))
	emit(figPullCorrupt, float64(st.PullCacheCorrupt))
	emit(figPeerReadBytes, float64(st.PeerReadBytes))
	emit(figPackFailures, float64(st.PackFailures))
	emit(figCleanups, float64(st.Cleanups))

	status := c.r.Status()
	for _, r := range []cluster.Redundancy{cluster.Full, cluster.Degraded, cluster.AtRisk, cluster.Unavailable} {
		emit(figRedundancy, float64(status.Redundancy[r]), string(r))
	}
	emit(figHalted, bit(status.Halted != ""))
	_, members := c.r.Members()
	byState := map[string]int{}
	for _, m := range members {
		byState[m.State]++
	}
	for _, s := range []string{cluster.StateAlive, cluster.StateSuspect, cluster.StateDead, cluster.StateLeft} {
		emit(figMembers, float64(byState[s]), s)
	}
}
