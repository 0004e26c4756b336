package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// listed decodes a listing's names, in order.
func listed(t *testing.T, url string) []string {
	t.Helper()
	resp, b := do(t, "GET", url, nil, nil)
	var list struct {
		Artifacts []struct{ Name string } `json:"artifacts"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &list) != nil {
		t.Fatalf("list %s: %d %s", url, resp.StatusCode, b)
	}
	names := []string{}
	for _, a := range list.Artifacts {
		names = append(names, a.Name)
	}
	return names
}

func TestListTagsAndLatest(t *testing.T) {
	f := newFake()
	srv := serve(t, f)
	for _, p := range []struct{ name, label string }{{"app-1.0", "os=linux"}, {"app-1.1", "os=mac"}, {"lib-1.0", "os=linux"}} {
		if resp, b := do(t, "PUT", srv.URL+"/artifacts/"+p.name, strings.NewReader(p.name), map[string]string{"X-Pier-Label": p.label}); resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT: %d %s", resp.StatusCode, b)
		}
	}
	if got := strings.Join(listed(t, srv.URL+"/api/v1/artifacts?prefix=app-"), ","); got != "app-1.1,app-1.0" {
		t.Fatalf("newest first by prefix: %s", got)
	}
	if got := strings.Join(listed(t, srv.URL+"/api/v1/artifacts?label=os=linux"), ","); got != "lib-1.0,app-1.0" {
		t.Fatalf("by label: %s", got)
	}
	for _, q := range []string{"limit=0", "limit=x", "label=nokey"} {
		resp, b := do(t, "GET", srv.URL+"/api/v1/artifacts?"+q, nil, nil)
		wantError(t, resp, b, http.StatusBadRequest)
	}

	resp, b := do(t, "PUT", srv.URL+"/api/v1/tags/production-ready?name=app-1.0", nil, map[string]string{"X-Pier-Actor": "ci"})
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "production-ready") {
		t.Fatalf("tag: %d %s", resp.StatusCode, b)
	}
	if got := strings.Join(listed(t, srv.URL+"/api/v1/artifacts?tag=production-ready"), ","); got != "app-1.0" {
		t.Fatalf("by tag: %s", got)
	}
	resp, b = do(t, "GET", srv.URL+"/api/v1/artifacts/app-1.0?history=1", nil, nil)
	var v artifactView
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &v) != nil || len(v.TagHistory) != 1 || v.TagHistory[0].Actor != "ci" {
		t.Fatalf("info with history: %d %s", resp.StatusCode, b)
	}

	// Latest redirects to the newest match: app-1.1 is newer, untagged.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := noRedirect.Get(srv.URL + "/api/v1/latest?prefix=app-&tag=production-ready")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusFound || r.Header.Get("Location") != "/artifacts/app-1.0" {
		t.Fatalf("latest: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	if resp, b := do(t, "GET", srv.URL+"/api/v1/latest?prefix=app-&tag=production-ready", nil, nil); string(b) != "app-1.0" {
		t.Fatalf("following latest: %d %q", resp.StatusCode, b)
	}

	if resp, b := do(t, "DELETE", srv.URL+"/api/v1/tags/production-ready?name=app-1.0", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("untag: %d %s", resp.StatusCode, b)
	}
	resp, b = do(t, "GET", srv.URL+"/api/v1/latest?prefix=app-&tag=production-ready", nil, nil)
	wantError(t, resp, b, http.StatusNotFound)
	resp, b = do(t, "PUT", srv.URL+"/api/v1/tags/Bad%20Tag?name=app-1.0", nil, nil)
	wantError(t, resp, b, http.StatusBadRequest)
	resp, b = do(t, "PUT", srv.URL+"/api/v1/tags/x?name=nope", nil, nil)
	wantError(t, resp, b, http.StatusNotFound)
}

func TestDeleteKeepsTheNameBound(t *testing.T) {
	f := newFake()
	srv := serve(t, f)
	do(t, "PUT", srv.URL+"/artifacts/gone.bin", strings.NewReader("first"), nil)
	if resp, b := do(t, "DELETE", srv.URL+"/artifacts/gone.bin", nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, b)
	}
	resp, b := do(t, "GET", srv.URL+"/artifacts/gone.bin", nil, nil)
	wantError(t, resp, b, http.StatusNotFound)
	resp, b = do(t, "PUT", srv.URL+"/artifacts/gone.bin", strings.NewReader("other"), nil)
	wantError(t, resp, b, http.StatusConflict)
	resp, b = do(t, "DELETE", srv.URL+"/api/v1/artifacts/gone.bin", nil, nil)
	wantError(t, resp, b, http.StatusNotFound)
}
