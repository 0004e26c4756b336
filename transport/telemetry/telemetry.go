// Package telemetry sends what hashicorp/raft, its bolt log store and
// memberlist emit through go-metrics to Prometheus: go-metrics sinks
// registered in Prometheus's default registry, which every node's /metrics
// serves next to its own. go-metrics has one global sink per process, so
// this is installed once, however many nodes a process runs (tests run
// several); the figures of those nodes are then mixed, which is why a
// node's own figures live in its API's registry instead.
package telemetry

import (
	"errors"
	"fmt"
	"sync"

	armon "github.com/armon/go-metrics"
	armonprom "github.com/armon/go-metrics/prometheus"
	metrics "github.com/hashicorp/go-metrics"
	gmprom "github.com/hashicorp/go-metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	once       sync.Once
	installErr error
)

// Install makes the global sinks of both go-metrics modules Prometheus
// sinks in the default registry: hashicorp/go-metrics carries raft's and
// memberlist's figures (raft_*, memberlist_*), armon/go-metrics those of
// raft-boltdb (raft_boltdb_*: log appends, batch sizes, the freelist).
// Later calls return the first one's outcome. It may run before or after
// raft starts: go-metrics reads its global sink at each emission.
func Install() error {
	once.Do(func() { installErr = errors.Join(installRaft(), installBolt()) })
	return installErr
}

func installRaft() error {
	sink, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{
		Expiration: gmprom.DefaultPrometheusOpts.Expiration,
		Registerer: prometheus.DefaultRegisterer,
		Name:       "pier_go_metrics_sink",
	})
	if err != nil {
		return fmt.Errorf("prometheus sink for raft metrics: %w", err)
	}
	cfg := metrics.DefaultConfig("")
	// The host is the scrape target already, and the Go runtime's
	// figures come from Prometheus's own collector.
	cfg.EnableHostname = false
	cfg.EnableHostnameLabel = false
	cfg.EnableRuntimeMetrics = false
	if _, err := metrics.NewGlobal(cfg, sink); err != nil {
		return fmt.Errorf("go-metrics global sink: %w", err)
	}
	return nil
}

func installBolt() error {
	sink, err := armonprom.NewPrometheusSinkFrom(armonprom.PrometheusOpts{
		Expiration: armonprom.DefaultPrometheusOpts.Expiration,
		Registerer: prometheus.DefaultRegisterer,
		// Each sink registers a placeholder under its name: two sinks
		// need two names.
		Name: "pier_armon_metrics_sink",
	})
	if err != nil {
		return fmt.Errorf("prometheus sink for raft-boltdb metrics: %w", err)
	}
	cfg := armon.DefaultConfig("")
	cfg.EnableHostname = false
	cfg.EnableHostnameLabel = false
	cfg.EnableRuntimeMetrics = false
	if _, err := armon.NewGlobal(cfg, sink); err != nil {
		return fmt.Errorf("armon go-metrics global sink: %w", err)
	}
	return nil
}
