package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"go/build"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
)

// serve runs the API over f on a test server.
func serve(t *testing.T, f *fakeRegistry, opts ...Options) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(New(f, hclog.NewNullLogger(), opts...))
	t.Cleanup(srv.Close)
	return srv
}

// do sends a request and returns the response with its whole body.
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

// wantError checks an error answer: its status, and a JSON body whose
// error says something.
func wantError(t *testing.T, resp *http.Response, body []byte, status int) {
	t.Helper()
	var e struct{ Error string }
	if resp.StatusCode != status || json.Unmarshal(body, &e) != nil || e.Error == "" {
		t.Fatalf("got %d %s, want %d with a JSON error", resp.StatusCode, body, status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error with Content-Type %q", ct)
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
		{io.ErrUnexpectedEOF, http.StatusBadRequest},
		{errBadRequest, http.StatusBadRequest},
		{fsm.ErrNotFound, http.StatusNotFound},
		{cluster.ErrShardNotFound, http.StatusNotFound},
		{fsm.ErrConflict, http.StatusConflict},
		{errBodyIdle, http.StatusRequestTimeout},
		{cluster.ErrTooLarge, http.StatusRequestEntityTooLarge},
		{&http.MaxBytesError{Limit: 1}, http.StatusRequestEntityTooLarge},
		{errTooManyUploads, http.StatusTooManyRequests},
		{fmt.Errorf("push: %w", cluster.ErrNoSpace), http.StatusInsufficientStorage},
		{cluster.ErrNoLeader, http.StatusServiceUnavailable},
		{cluster.ErrUnavailable, http.StatusServiceUnavailable},
		// A halted store's refusal is both (metastore's haltedError).
		{fmt.Errorf("%w (%w)", cluster.ErrHalted, cluster.ErrUnavailable), http.StatusServiceUnavailable},
		{cluster.ErrShutdown, http.StatusServiceUnavailable},
		{cluster.ErrPeerUnreachable, http.StatusServiceUnavailable},
		{cluster.ErrLeaving, http.StatusConflict},
		{errors.New("anything else"), http.StatusInternalServerError},
	} {
		if got := statusOf(tc.err); got != tc.want {
			t.Errorf("%v: %d, want %d", tc.err, got, tc.want)
		}
	}
}

// The node's errors reach the client through the handlers with the
// mapped status and a JSON body, and a 503 says when to retry.
func TestNodeErrorsThroughHandlers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		set    func(f *fakeRegistry)
		method string
		path   string
		body   string
		status int
	}{
		{"bad name", nil, "PUT", "/artifacts/a//b", "x", http.StatusBadRequest},
		{"missing artifact", nil, "GET", "/artifacts/nope.bin", "", http.StatusNotFound},
		{"missing metadata", nil, "GET", "/api/v1/artifacts/nope.bin", "", http.StatusNotFound},
		{"refused before the body", func(f *fakeRegistry) { f.failCheck = fsm.ErrConflict }, "PUT", "/artifacts/x.bin", "x", http.StatusConflict},
		{"body too large", func(f *fakeRegistry) { f.failStore = cluster.ErrTooLarge }, "PUT", "/artifacts/x.bin", "x", http.StatusRequestEntityTooLarge},
		{"no leader", func(f *fakeRegistry) { f.failCommit = cluster.ErrNoLeader }, "PUT", "/artifacts/x.bin", "x", http.StatusServiceUnavailable},
		{"full disk", func(f *fakeRegistry) { f.failStore = cluster.ErrNoSpace }, "PUT", "/artifacts/x.bin", "x", http.StatusInsufficientStorage},
		{"list without leader", func(f *fakeRegistry) { f.failList = cluster.ErrNoLeader }, "GET", "/api/v1/artifacts", "", http.StatusServiceUnavailable},
		{"stat unavailable", func(f *fakeRegistry) { f.failStat = cluster.ErrUnavailable }, "GET", "/artifacts/x.bin", "", http.StatusServiceUnavailable},
		{"unexpected", func(f *fakeRegistry) { f.failCommit = errors.New("disk on fire") }, "PUT", "/artifacts/x.bin", "x", http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			if tc.set != nil {
				tc.set(f)
			}
			srv := serve(t, f)
			resp, b := do(t, tc.method, srv.URL+tc.path, strings.NewReader(tc.body), nil)
			wantError(t, resp, b, tc.status)
			if retry := resp.Header.Get("Retry-After"); (tc.status == http.StatusServiceUnavailable) != (retry != "") {
				t.Fatalf("status %d with Retry-After %q", resp.StatusCode, retry)
			}
		})
	}
}

func TestUnknownEndpointsAndMethods(t *testing.T) {
	srv := serve(t, newFake())
	resp, b := do(t, "GET", srv.URL+"/nowhere", nil, nil)
	wantError(t, resp, b, http.StatusNotFound)
	resp, b = do(t, "POST", srv.URL+"/artifacts/x.bin", nil, nil)
	wantError(t, resp, b, http.StatusMethodNotAllowed)
	if allow := resp.Header.Get("Allow"); allow != "GET, HEAD, PUT, DELETE" {
		t.Fatalf("Allow %q", allow)
	}
}

// The API speaks to the node's face only: no content package, and of
// cluster's parts none but cluster itself.
func TestImportsOnlyTheFace(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if strings.Contains(imp, "/pier/chunk") || strings.HasPrefix(imp, "github.com/pier-registry/pier/cluster/") ||
			strings.Contains(imp, "hashicorp/raft") {
			t.Errorf("httpapi imports %s", imp)
		}
	}
}
