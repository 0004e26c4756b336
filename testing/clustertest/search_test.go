package clustertest

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"testing"
)

// Listings search by glob, digest, version and commit; latest and ls order
// by version on request; by-digest serves the bytes of whichever name
// holds them.
func TestSearchOrderAndByDigest(t *testing.T) {
	c := New(t, 3, Options{})
	base := c.Nodes[0].URL
	versions := []string{"1.9.0", "1.10.0", "1.2.0"}
	for i, v := range versions {
		h := http.Header{"X-Pier-Version": {v}, "X-Pier-Commit": {fmt.Sprintf("c0ffee%d", i)}, "X-Pier-Tag": {"production-ready"}}
		if r := Do(t, "PUT", base+fmt.Sprintf("/artifacts/myapp-%d.jar", i), bytes.NewReader(bigBytes(uint64(40+i), 2000)), h); r.Status != http.StatusCreated {
			t.Fatalf("push: %d", r.Status)
		}
	}
	list := func(q string) []string {
		var out struct {
			Artifacts []struct{ Name, Version string }
		}
		Do(t, "GET", c.Nodes[1].URL+"/api/v1/artifacts?"+q, nil, nil).JSON(t, &out)
		var vs []string
		for _, a := range out.Artifacts {
			vs = append(vs, a.Version)
		}
		return vs
	}
	if got := fmt.Sprint(list("order=version")); got != "[1.10.0 1.9.0 1.2.0]" {
		t.Fatalf("ls by version: %s", got)
	}
	if got := fmt.Sprint(list("")); got != "[1.2.0 1.10.0 1.9.0]" {
		t.Fatalf("ls newest first: %s", got)
	}
	for q, want := range map[string]string{
		"glob=" + url.QueryEscape("myapp-*.jar") + "&version=1.9.0": "[1.9.0]",
		"commit=c0ffee2": "[1.2.0]",
		"digest=" + url.QueryEscape(Digest(bigBytes(41, 2000))): "[1.10.0]",
		"glob=" + url.QueryEscape("*-9.jar"):                    "[]",
	} {
		if got := fmt.Sprint(list(q)); got != want {
			t.Errorf("ls %s: %s, want %s", q, got, want)
		}
	}
	r := Do(t, "GET", c.Nodes[2].URL+"/api/v1/latest?prefix=myapp-&tag=production-ready&order=version", nil, nil)
	if r.Status != http.StatusFound || r.Header.Get("Location") != "/artifacts/myapp-1.jar" {
		t.Fatalf("latest by version: %d %s", r.Status, r.Header.Get("Location"))
	}
	r = Do(t, "GET", c.Nodes[2].URL+"/api/v1/latest?prefix=myapp-&tag=production-ready", nil, nil)
	if r.Status != http.StatusFound || r.Header.Get("Location") != "/artifacts/myapp-2.jar" {
		t.Fatalf("latest: %d %s", r.Status, r.Header.Get("Location"))
	}
	body := bigBytes(41, 2000)
	r = Do(t, "GET", c.Nodes[2].URL+"/api/v1/by-digest/"+Digest(body), nil, nil)
	if r.Status != http.StatusOK || Digest(r.Body) != Digest(body) {
		t.Fatalf("by digest: %d", r.Status)
	}
	if r := Do(t, "GET", c.Nodes[2].URL+"/api/v1/by-digest/sha256:"+fmt.Sprintf("%064d", 0), nil, nil); r.Status != http.StatusNotFound {
		t.Fatalf("by an unknown digest: %d", r.Status)
	}
	if r := Do(t, "GET", c.Nodes[2].URL+"/api/v1/by-digest/sha256:xyz", nil, nil); r.Status != http.StatusBadRequest {
		t.Fatalf("by a malformed digest: %d", r.Status)
	}
}
