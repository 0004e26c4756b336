package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	gometrics "github.com/hashicorp/go-metrics"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
	"github.com/pier-registry/pier/transport/telemetry"
)

func serve(t *testing.T, f *fakeRegistry) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(New(f, hclog.NewNullLogger()))
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, url string, body io.Reader, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestPutThenPull(t *testing.T) {
	f := newFake()
	srv := serve(t, f)
	content := []byte("the bytes of myapp 1.2.3, verbatim")
	resp, body := do(t, "PUT", srv.URL+"/artifacts/team/myapp-1.2.3.jar", bytes.NewReader(content),
		map[string]string{"X-Pier-Version": "1.2.3", "X-Pier-Label": "os=linux"})
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Location") == "" {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	if f.released != 1 {
		t.Fatalf("stored content released %d times, want once", f.released)
	}
	if resp, _ := do(t, "PUT", srv.URL+"/artifacts/team/myapp-1.2.3.jar", bytes.NewReader(content), nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("the same bytes again: %d, want 200", resp.StatusCode)
	}
	if resp, _ := do(t, "PUT", srv.URL+"/artifacts/team/myapp-1.2.3.jar", strings.NewReader("other"), nil); resp.StatusCode != http.StatusConflict {
		t.Fatalf("other bytes under the name: %d, want 409", resp.StatusCode)
	}

	resp, got := do(t, "GET", srv.URL+"/artifacts/team/myapp-1.2.3.jar", nil, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, content) || resp.Header.Get("X-Pier-Version") != "1.2.3" {
		t.Fatalf("GET: %d %q", resp.StatusCode, got)
	}
	resp, got = do(t, "GET", srv.URL+"/artifacts/team/myapp-1.2.3.jar", nil, map[string]string{"Range": "bytes=4-8"})
	if resp.StatusCode != http.StatusPartialContent || string(got) != string(content[4:9]) {
		t.Fatalf("Range: %d %q", resp.StatusCode, got)
	}
	resp, got = do(t, "HEAD", srv.URL+"/artifacts/team/myapp-1.2.3.jar", nil, nil)
	if resp.StatusCode != http.StatusOK || len(got) != 0 || resp.ContentLength != int64(len(content)) {
		t.Fatalf("HEAD: %d, %d bytes, length %d", resp.StatusCode, len(got), resp.ContentLength)
	}
	if resp, _ := do(t, "GET", srv.URL+"/artifacts/nope.jar", nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("missing name: %d, want 404", resp.StatusCode)
	}
}

func TestMultipartFieldsBeforeAndAfterTheFile(t *testing.T) {
	f := newFake()
	srv := serve(t, f)
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("version", "2.0.0")
	fw, _ := mw.CreateFormFile("file", "svc-2.0.0.tar.gz")
	fw.Write([]byte("tarball"))
	mw.WriteField("label", "os=linux")
	mw.WriteField("tag", "staging-validated")
	mw.Close()
	resp, body := do(t, "POST", srv.URL+"/upload", &buf, map[string]string{"Content-Type": mw.FormDataContentType()})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	a, err := f.StatFresh(context.Background(), "svc-2.0.0.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	if a.Version != "2.0.0" || a.Labels["os"] != "linux" || !a.HasTag("staging-validated") {
		t.Fatalf("metadata of the upload: %+v", a)
	}
}

func TestTagsListAndLatest(t *testing.T) {
	f := newFake()
	srv := serve(t, f)
	for _, v := range []string{"1.0", "1.1"} {
		if resp, b := do(t, "PUT", srv.URL+"/artifacts/app-"+v, strings.NewReader(v), nil); resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT: %d %s", resp.StatusCode, b)
		}
	}
	if resp, b := do(t, "PUT", srv.URL+"/api/v1/tags/production-ready?name=app-1.0", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("tag: %d %s", resp.StatusCode, b)
	}
	resp, b := do(t, "GET", srv.URL+"/api/v1/latest?prefix=app-&tag=production-ready", nil, nil)
	if resp.StatusCode >= 400 {
		t.Fatalf("latest: %d %s", resp.StatusCode, b)
	}
	if string(b) != "1.0" { // app-1.0's bytes; app-1.1 is newer but untagged
		t.Fatalf("latest production-ready is not app-1.0: %d %q", resp.StatusCode, b)
	}
	resp, b = do(t, "GET", srv.URL+"/api/v1/artifacts?prefix=app-", nil, nil)
	var list struct {
		Artifacts []struct{ Name string } `json:"artifacts"`
	}
	if err := json.Unmarshal(b, &list); err != nil || len(list.Artifacts) != 2 {
		t.Fatalf("list: %d %s (%v)", resp.StatusCode, b, err)
	}
}

func TestErrorsMapToStatuses(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("x: %w", fsm.ErrInvalid), http.StatusBadRequest},
		{cluster.ErrDigestMismatch, http.StatusBadRequest},
		{cluster.ErrTruncated, http.StatusBadRequest},
		{fsm.ErrNotFound, http.StatusNotFound},
		{cluster.ErrShardNotFound, http.StatusNotFound},
		{fsm.ErrConflict, http.StatusConflict},
		{errBodyIdle, http.StatusRequestTimeout},
		{cluster.ErrTooLarge, http.StatusRequestEntityTooLarge},
		{errTooManyUploads, http.StatusTooManyRequests},
		{fmt.Errorf("push: %w", cluster.ErrNoSpace), http.StatusInsufficientStorage},
		{cluster.ErrNoLeader, http.StatusServiceUnavailable},
		{cluster.ErrUnavailable, http.StatusServiceUnavailable},
		// A halted store's refusal is both (metastore's haltedError).
		{fmt.Errorf("%w (%w)", cluster.ErrHalted, cluster.ErrUnavailable), http.StatusServiceUnavailable},
		{cluster.ErrShutdown, http.StatusServiceUnavailable},
		{cluster.ErrLeaving, http.StatusConflict},
		{errors.New("anything else"), http.StatusInternalServerError},
	} {
		if got := statusOf(tc.err); got != tc.want {
			t.Errorf("%v: %d, want %d", tc.err, got, tc.want)
		}
	}
	// Through a handler: a store that fails answers the mapped status and
	// a JSON error body.
	f := newFake()
	f.failStore = fmt.Errorf("store: %w", cluster.ErrNoSpace)
	srv := serve(t, f)
	resp, b := do(t, "PUT", srv.URL+"/artifacts/x.bin", strings.NewReader("x"), nil)
	var e struct{ Error string }
	if resp.StatusCode != http.StatusInsufficientStorage || json.Unmarshal(b, &e) != nil || e.Error == "" {
		t.Fatalf("full disk: %d %s", resp.StatusCode, b)
	}
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
	resp, b := do(t, "GET", srv.URL+"/metrics", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	if g := families["pier_artifacts"]; g == nil || g.GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Fatalf("pier_artifacts: %v", g)
	}
	h := families["pier_http_request_duration_seconds"]
	if h == nil || h.GetType().String() != "HISTOGRAM" {
		t.Fatalf("no request-duration histogram: %v", h)
	}
	routes := map[string]bool{}
	for _, m := range h.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "route" {
				routes[l.GetValue()] = true
			}
		}
	}
	if !routes["/artifacts/{name}"] || routes["/artifacts/m.bin"] {
		t.Fatalf("routes %v: want the pattern, never the artifact's name", routes)
	}
	if families["raft_apply"] == nil {
		var names []string
		for n := range families {
			names = append(names, n)
		}
		t.Fatalf("raft's go-metrics are not on /metrics; families: %v", names)
	}
}
