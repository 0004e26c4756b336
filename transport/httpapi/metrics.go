package httpapi

import (
	"fmt"

	"github.com/pier-registry/pier/cluster"
	"net/http"
	"sort"
	"sync"
)

// metrics counts requests for /metrics in the Prometheus text format. The
// set is small enough that a dependency on a metrics library buys nothing.
type metrics struct {
	mu       sync.Mutex
	requests map[[2]string]uint64
}

func newMetrics() *metrics { return &metrics{requests: map[[2]string]uint64{}} }

func (m *metrics) observe(method string, status int) {
	m.mu.Lock()
	m.requests[[2]string{method, fmt.Sprint(status)}]++
	m.mu.Unlock()
}

func (a *API) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	c := a.reg.Counts()
	leader := 0
	if a.reg.IsLeader() {
		leader = 1
	}
	ready := 0
	if a.reg.Ready() {
		ready = 1
	}
	fmt.Fprintf(w, "# HELP pier_artifacts Live artifacts in the cluster.\n# TYPE pier_artifacts gauge\npier_artifacts %d\n", c.Artifacts)
	fmt.Fprintf(w, "# HELP pier_objects Distinct stored objects.\n# TYPE pier_objects gauge\npier_objects %d\n", c.Objects)
	fmt.Fprintf(w, "# HELP pier_object_bytes Bytes of distinct stored objects.\n# TYPE pier_object_bytes gauge\npier_object_bytes %d\n", c.Bytes)
	fmt.Fprintf(w, "# HELP pier_tombstones Deleted names kept bound to their digest.\n# TYPE pier_tombstones gauge\npier_tombstones %d\n", c.Tombstones)
	fmt.Fprintf(w, "# HELP pier_is_leader 1 on the raft leader.\n# TYPE pier_is_leader gauge\npier_is_leader %d\n", leader)
	fmt.Fprintf(w, "# HELP pier_ready 1 when the node serves.\n# TYPE pier_ready gauge\npier_ready %d\n", ready)

	st := a.reg.Stats()
	fmt.Fprintf(w, "# HELP pier_corrupt_blocks_total Shard blocks that failed their checksum on read and were rebuilt from parity.\n# TYPE pier_corrupt_blocks_total counter\npier_corrupt_blocks_total %d\n", st.CorruptBlocks)
	fmt.Fprintf(w, "# HELP pier_degraded_reads_total Reads that needed parity because a shard was missing, slow or corrupt.\n# TYPE pier_degraded_reads_total counter\npier_degraded_reads_total %d\n", st.DegradedReads)
	fmt.Fprintf(w, "# HELP pier_shard_files Shards on this node, files and packed records.\n# TYPE pier_shard_files gauge\npier_shard_files %d\n", st.ShardFiles)
	fmt.Fprintf(w, "# HELP pier_shard_bytes Bytes of shards on this node.\n# TYPE pier_shard_bytes gauge\npier_shard_bytes %d\n", st.ShardBytes)

	fmt.Fprintf(w, "# HELP pier_repaired_shards_total Shards this node rebuilt or moved as leader.\n# TYPE pier_repaired_shards_total counter\npier_repaired_shards_total %d\n", st.RepairedShards)
	fmt.Fprintf(w, "# HELP pier_repair_failures_total Repair attempts that failed and will be retried.\n# TYPE pier_repair_failures_total counter\npier_repair_failures_total %d\n", st.RepairFailures)
	fmt.Fprintf(w, "# HELP pier_moved_bytes_total Shard bytes written by repair and rebalance.\n# TYPE pier_moved_bytes_total counter\npier_moved_bytes_total %d\n", st.MovedBytes)
	fmt.Fprintf(w, "# HELP pier_scrubbed_bytes_total Shard bytes re-read and verified by the scrubber.\n# TYPE pier_scrubbed_bytes_total counter\npier_scrubbed_bytes_total %d\n", st.ScrubbedBytes)
	fmt.Fprintf(w, "# HELP pier_scrub_bad_shards_total Shards the scrubber found absent or corrupt.\n# TYPE pier_scrub_bad_shards_total counter\npier_scrub_bad_shards_total %d\n", st.ScrubCorrupt)
	fmt.Fprintf(w, "# HELP pier_gc_removed_shards_total Unreferenced shard files removed.\n# TYPE pier_gc_removed_shards_total counter\npier_gc_removed_shards_total %d\n", st.GCRemoved)
	fmt.Fprintf(w, "# HELP pier_cache_hits_total Small-object reads served from memory.\n# TYPE pier_cache_hits_total counter\npier_cache_hits_total %d\n", st.CacheHits)
	fmt.Fprintf(w, "# HELP pier_cache_bytes Content held by the small-object cache.\n# TYPE pier_cache_bytes gauge\npier_cache_bytes %d\n", st.CacheBytes)
	fmt.Fprintf(w, "# HELP pier_pack_failures_total Copies carried in raft entries (logs from older builds) this node failed to pack (they are rebuilt by repair).\n# TYPE pier_pack_failures_total counter\npier_pack_failures_total %d\n", st.PackFailures)
	fmt.Fprintf(w, "# HELP pier_cleanups_running Deletions of refused or deduplicated pushes' shards still running after their answer.\n# TYPE pier_cleanups_running gauge\npier_cleanups_running %d\n", st.Cleanups)
	status := a.reg.Status()
	fmt.Fprintf(w, "# HELP pier_objects_by_redundancy Objects by redundancy state.\n# TYPE pier_objects_by_redundancy gauge\n")
	for _, r := range []cluster.Redundancy{cluster.Full, cluster.Degraded, cluster.AtRisk, cluster.Unavailable} {
		fmt.Fprintf(w, "pier_objects_by_redundancy{state=%q} %d\n", r, status.Redundancy[r])
	}
	halted := 0
	if status.Halted != "" {
		halted = 1
	}
	fmt.Fprintf(w, "# HELP pier_fsm_halted 1 when the state machine stopped at a raft log entry this build cannot read (writes are refused).\n# TYPE pier_fsm_halted gauge\npier_fsm_halted %d\n", halted)
	_, members := a.reg.Members()
	byState := map[string]int{}
	for _, m := range members {
		byState[m.State]++
	}
	fmt.Fprintf(w, "# HELP pier_members Known members by gossip state.\n# TYPE pier_members gauge\n")
	for _, s := range []string{cluster.StateAlive, cluster.StateSuspect, cluster.StateDead, cluster.StateLeft} {
		fmt.Fprintf(w, "pier_members{state=%q} %d\n", s, byState[s])
	}

	a.m.mu.Lock()
	keys := make([][2]string, 0, len(a.m.requests))
	for k := range a.m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
	fmt.Fprintf(w, "# HELP pier_http_requests_total HTTP requests by method and status.\n# TYPE pier_http_requests_total counter\n")
	for _, k := range keys {
		fmt.Fprintf(w, "pier_http_requests_total{method=%q,code=%q} %d\n", k[0], k[1], a.m.requests[k])
	}
	a.m.mu.Unlock()
}
