package httpapi

import (
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/pier-registry/pier/transport/webui"
)

// routedByHand are the routes ServeHTTP dispatches itself (artifact names
// may hold anything ServeMux would clean or redirect).
var routedByHand = []string{
	"GET /artifacts/{name...}", "HEAD /artifacts/{name...}", "PUT /artifacts/{name...}", "DELETE /artifacts/{name...}",
	"GET /api/v1/artifacts/{name...}", "HEAD /api/v1/artifacts/{name...}", "DELETE /api/v1/artifacts/{name...}",
}

// docRoute is a row of docs/api.md: | `METHOD /path` | ...
var docRoute = regexp.MustCompile("(?m)^\\| `([A-Z]+ /[^`]*)` \\|")

// The API reference lists every route the API serves, and only those.
func TestAPIReferenceMatchesTheRouter(t *testing.T) {
	doc, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range docRoute.FindAllStringSubmatch(string(doc), -1) {
		documented = append(documented, m[1])
	}
	// A registry that federates and bundles, so that those routes exist
	// (nothing is called on it).
	a := New(struct {
		*fakeRegistry
		Federator
		Bundler
	}{fakeRegistry: newFake()}, hclog.NewNullLogger())
	served := slices.Concat(a.mux.patterns, routedByHand)
	served = slices.DeleteFunc(served, func(p string) bool { return slices.Contains(webui.Routes, p) })
	served = append(served, webui.Routes...)
	for _, p := range served {
		if !slices.Contains(documented, p) {
			t.Errorf("route %q is not in docs/api.md: add a row for it", p)
		}
	}
	for _, p := range documented {
		if !slices.Contains(served, p) {
			t.Errorf("docs/api.md documents %q, which the API does not serve", p)
		}
	}
	if len(documented) < 40 {
		t.Fatalf("only %d routes found in docs/api.md: did its table format change?", len(documented))
	}
}
