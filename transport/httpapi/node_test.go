package httpapi_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/transport/server"
	"github.com/pier-registry/pier/transport/telemetry"
)

// One real node, wired as `pier serve` wires it: once it leads, its
// /metrics holds raft's own figures and its log store's beside the API's.
func TestNodeMetricsHoldRaft(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	if err := telemetry.Install(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	srv, err := server.Start(server.Config{
		HTTPBind: "127.0.0.1:0", RaftBind: "127.0.0.1:0",
		Node: cluster.Config{
			ID: "n1", DataDir: filepath.Join(dir, "n1"), GossipBind: "127.0.0.1:0",
			BootstrapExpect: 1, ClusterKey: cluster.InsecureClusterKey, MinFree: -1,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Close(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.Node.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	url := "http://" + srv.HTTPAddr()
	req, err := http.NewRequest("PUT", url+"/artifacts/m.bin", strings.NewReader("metered"))
	if err != nil {
		t.Fatal(err)
	}
	put, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	put.Body.Close()
	if put.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %d", put.StatusCode)
	}
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	if h := families["pier_http_request_duration_seconds"]; h.GetType() != dto.MetricType_HISTOGRAM {
		t.Errorf("no request-duration histogram")
	}
	for _, name := range []string{"raft_state_leader", "raft_boltdb_storeLogs", "pier_is_leader"} {
		if families[name] == nil {
			t.Errorf("no %s on /metrics", name)
		}
	}
}
