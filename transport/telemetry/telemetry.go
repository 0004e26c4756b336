// Package telemetry sends what hashicorp/raft (and memberlist) emit through
// go-metrics to Prometheus: a go-metrics sink registered in Prometheus's
// default registry, which every node's /metrics serves next to its own.
// go-metrics has one global sink per process, so this is installed once,
// however many nodes a process runs (tests run several).
package telemetry

import (
	"fmt"
	"sync"

	metrics "github.com/hashicorp/go-metrics"
	gmprom "github.com/hashicorp/go-metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	once       sync.Once
	installErr error
)

// Install makes go-metrics' global sink a Prometheus sink in the default
// registry. Later calls return the first one's outcome.
func Install() error {
	once.Do(func() {
		sink, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{
			Expiration: gmprom.DefaultPrometheusOpts.Expiration,
			Registerer: prometheus.DefaultRegisterer,
		})
		if err != nil {
			installErr = fmt.Errorf("prometheus sink for raft metrics: %w", err)
			return
		}
		cfg := metrics.DefaultConfig("")
		// The host is the scrape target already, and the Go runtime's
		// figures come from Prometheus's own collector.
		cfg.EnableHostname = false
		cfg.EnableHostnameLabel = false
		cfg.EnableRuntimeMetrics = false
		if _, err := metrics.NewGlobal(cfg, sink); err != nil {
			installErr = fmt.Errorf("go-metrics global: %w", err)
		}
	})
	return installErr
}
