package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
)

// Federator is what the federation routes need of the node. It is apart
// from Registry so that the API's fakes need not grow it: a registry
// without it answers those routes with 501.
type Federator interface {
	Datacenter() string
	FederationJoin(ctx context.Context, addrs []string) (int, error)
	FederationStatus(ctx context.Context) ([]cluster.FederationStatus, error)
	FederationLags() []cluster.FederationLag
	ReplicationRules() []fsm.ReplicationRule
	SetReplicationRule(ctx context.Context, r fsm.ReplicationRule, add bool, actor string) error
}

// Federation routes; they need the admin scope (needOf's default).
func (a *API) routeFederation() {
	fed, ok := a.reg.(Federator)
	if !ok {
		return
	}
	a.mux.HandleFunc("POST /api/v1/federation/join", func(w http.ResponseWriter, r *http.Request) {
		var addrs []string
		for _, s := range strings.Split(r.URL.Query().Get("addr"), ",") {
			if s = strings.TrimSpace(s); s != "" {
				addrs = append(addrs, s)
			}
		}
		if len(addrs) == 0 {
			a.fail(w, r, fmt.Errorf("%w: addr is required", errBadRequest))
			return
		}
		n, err := fed.FederationJoin(r.Context(), addrs)
		if err != nil {
			a.fail(w, r, fedErr(err))
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"datacenter": fed.Datacenter(), "joined": addrs, "contacted": n})
	})
	a.mux.HandleFunc("GET /api/v1/federation/status", func(w http.ResponseWriter, r *http.Request) {
		st, err := fed.FederationStatus(r.Context())
		if err != nil {
			a.fail(w, r, fedErr(err))
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"datacenter": fed.Datacenter(), "remotes": st})
	})
	a.mux.HandleFunc("GET /api/v1/federation/rules", func(w http.ResponseWriter, r *http.Request) {
		rules := fed.ReplicationRules()
		if rules == nil {
			rules = []fsm.ReplicationRule{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"rules": rules})
	})
	setRule := func(add bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			rule := fsm.ReplicationRule{From: q.Get("from"), To: q.Get("to"), Prefix: q.Get("prefix"), Tag: q.Get("tag")}
			err := fsm.ValidateRule(&rule)
			if err == nil {
				err = fed.SetReplicationRule(writeContext(r), rule, add, actor(r))
			}
			if err != nil {
				a.fail(w, r, err)
				return
			}
			writeJSON(w, http.StatusOK, rule)
		}
	}
	a.mux.HandleFunc("POST /api/v1/federation/rules", setRule(true))
	a.mux.HandleFunc("DELETE /api/v1/federation/rules", setRule(false))
	a.m.reg.MustRegister(fedCollector{fed})
}

// fedErr makes "federation is off" a 400: the request asks for something
// this node was not started to do.
func fedErr(err error) error {
	if errors.Is(err, cluster.ErrFederationOff) {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	return err
}

// fedCollector exports the replicator's last view of each datacenter at
// scrape time, without calling another datacenter.
type fedCollector struct{ f Federator }

var (
	fedDescs = struct {
		reachable, lagArtifacts, lagBytes, checkpoint, head, errors, copied, conflicts, repaired *prometheus.Desc
	}{
		reachable:    fedDesc("pier_federation_reachable", "1 when the replicator's last feed read from the datacenter succeeded."),
		lagArtifacts: fedDesc("pier_federation_lag_artifacts", "Names the datacenter's feed holds after this cluster's checkpoint, as last read."),
		lagBytes:     fedDesc("pier_federation_lag_bytes", "Bytes of the live artifacts among them."),
		checkpoint:   fedDesc("pier_federation_checkpoint", "Index of the datacenter's feed this cluster has copied up to."),
		head:         fedDesc("pier_federation_head", "Last index of the datacenter's feed, as last read."),
		errors:       fedDesc("pier_federation_errors_total", "Failed replication passes on this node."),
		copied:       fedDesc("pier_federation_copied_total", "Artifacts copied from the datacenter by this node."),
		conflicts:    fedDesc("pier_federation_conflicts", "Names bound here to other bytes than in the datacenter."),
		repaired:     fedDesc("pier_federation_antientropy_repaired_total", "Names anti-entropy brought into line with the datacenter (copied, deleted or retagged) that the feed had missed."),
	}
)

func fedDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, []string{"datacenter"}, nil)
}

func (fedCollector) Describe(chan<- *prometheus.Desc) {}

func (c fedCollector) Collect(ch chan<- prometheus.Metric) {
	for _, l := range c.f.FederationLags() {
		reach := 0.0
		if l.Reachable {
			reach = 1
		}
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l.Datacenter)
		}
		gauge(fedDescs.reachable, reach)
		gauge(fedDescs.lagArtifacts, float64(l.Lag.Count))
		gauge(fedDescs.lagBytes, float64(l.Lag.Bytes))
		gauge(fedDescs.checkpoint, float64(l.Checkpoint))
		gauge(fedDescs.head, float64(l.Lag.Head))
		gauge(fedDescs.conflicts, float64(l.Conflicts))
		ch <- prometheus.MustNewConstMetric(fedDescs.errors, prometheus.CounterValue, float64(l.Errors), l.Datacenter)
		ch <- prometheus.MustNewConstMetric(fedDescs.copied, prometheus.CounterValue, float64(l.Copied), l.Datacenter)
		ch <- prometheus.MustNewConstMetric(fedDescs.repaired, prometheus.CounterValue, float64(l.Repaired), l.Datacenter)
	}
}
