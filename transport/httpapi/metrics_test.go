package httpapi

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	gometrics "github.com/hashicorp/go-metrics"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pier-registry/pier/transport/telemetry"
)

// scrape fetches /metrics and parses it as Prometheus text.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, b := do(t, "GET", url+"/metrics", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, b)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, b)
	}
	return families
}

// label is the value of a metric's label, or "".
func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func TestMetricsAreServedByClientGolang(t *testing.T) {
	if err := telemetry.Install(); err != nil {
		t.Fatal(err)
	}
	// What raft emits goes through go-metrics' global sink.
	gometrics.IncrCounter([]string{"raft", "apply"}, 3)
	f := newFake()
	srv := serve(t, f)
	do(t, "PUT", srv.URL+"/artifacts/m.bin", strings.NewReader("m"), nil)
	do(t, "GET", srv.URL+"/artifacts/m.bin", nil, nil)
	do(t, "GET", srv.URL+"/artifacts/nope.bin", nil, nil)
	do(t, "PUT", srv.URL+"/api/v1/tags/t?name=m.bin", nil, nil)
	families := scrape(t, srv.URL)

	if g := families["pier_artifacts"]; g == nil || g.GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Fatalf("pier_artifacts: %v", g)
	}
	h := families["pier_http_request_duration_seconds"]
	if h == nil || h.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("no request-duration histogram: %v", h)
	}
	routes := map[string]bool{}
	for _, m := range h.GetMetric() {
		routes[label(m, "route")] = true
	}
	// Routes are patterns, never an artifact's name or a tag.
	for _, want := range []string{"/artifacts/{name}", "PUT /api/v1/tags/{tag}"} {
		if !routes[want] {
			t.Errorf("no route %q in %v", want, routes)
		}
	}
	for r := range routes {
		if strings.Contains(r, "m.bin") || strings.Contains(r, "nope") || strings.HasSuffix(r, "/t") {
			t.Errorf("route %q names what was asked for", r)
		}
	}
	codes := map[string]float64{}
	for _, m := range families["pier_http_requests_total"].GetMetric() {
		codes[label(m, "method")+" "+label(m, "code")] += m.GetCounter().GetValue()
	}
	if codes["PUT 201"] != 1 || codes["GET 200"] != 1 || codes["GET 404"] != 1 || codes["PUT 200"] != 1 {
		t.Errorf("request counts by method and code: %v", codes)
	}
	for _, name := range []string{"pier_cleanups_running", "pier_corrupt_blocks_total", "pier_objects_by_redundancy",
		"pier_members", "pier_moved_bytes_total", "pier_fsm_halted", "go_goroutines"} {
		if families[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	if families["raft_apply"] == nil {
		t.Errorf("raft's go-metrics are not on /metrics")
	}
}

// Each API counts its own requests: tests run several nodes in a process.
func TestMetricsArePerAPI(t *testing.T) {
	one, two := serve(t, newFake()), serve(t, newFake())
	do(t, "GET", one.URL+"/healthz", nil, nil)
	for _, m := range scrape(t, two.URL)["pier_http_requests_total"].GetMetric() {
		if label(m, "method") == "GET" && label(m, "code") == "200" {
			t.Fatalf("the other API's request is counted here: %v", m)
		}
	}
}
