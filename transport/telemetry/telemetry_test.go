package telemetry

import (
	"testing"
	"time"

	armon "github.com/armon/go-metrics"
	metrics "github.com/hashicorp/go-metrics"
	"github.com/prometheus/client_golang/prometheus"
)

func TestRaftAndBoltMetricsReachTheDefaultRegistry(t *testing.T) {
	for range 2 { // once per process; a second call is harmless
		if err := Install(); err != nil {
			t.Fatal(err)
		}
	}
	metrics.IncrCounter([]string{"raft", "apply"}, 1)
	metrics.SetGauge([]string{"raft", "state", "leader"}, 1)
	armon.MeasureSince([]string{"raft", "boltdb", "storeLogs"}, time.Now())
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range families {
		seen[f.GetName()] = true
	}
	for _, want := range []string{"raft_apply", "raft_state_leader", "raft_boltdb_storeLogs"} {
		if !seen[want] {
			t.Errorf("no %s among %d families", want, len(families))
		}
	}
}
