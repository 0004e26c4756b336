// Package webui is the browser face of a node: an artifact list with
// search, an artifact page and a cluster page, served at / by every node.
//
// The pages are shells. The server renders their layout (html/template)
// and holds no artifact data in them; the browser fills them from the same
// JSON API the CLI uses, sending the token the user pasted. So the UI's own
// routes can be open while access control is on (a page shows nothing a
// visitor could not get from /healthz), every datum goes through the API's
// authorization, and the UI needs no session, cookie or server-side state of
// its own. Everything is embedded in the binary: the nodes often run where
// nothing outside can be reached, so there is no CDN and no build step.
package webui

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed templates/*.html static/*
var files embed.FS

// Routes are the mux patterns Register serves. All of them are open to
// anyone (transport/httpapi's needOf names them), since they carry no data.
var Routes = []string{PatternList, PatternArtifact, PatternCluster, PatternStatic}

// The UI's routes.
const (
	// PatternList is the artifact list and search, the UI's home.
	PatternList = "GET /{$}"
	// PatternArtifact is one artifact's page: /ui/artifact?name=NAME. The
	// name travels in the query, not the path, so that ServeMux's path
	// cleaning never rewrites it.
	PatternArtifact = "GET /ui/artifact"
	// PatternCluster is the members and redundancy page.
	PatternCluster = "GET /ui/cluster"
	// PatternStatic serves the script and the style sheet.
	PatternStatic = "GET /ui/static/"
)

// securityHeaders keep the pages from running anything but their own
// script: a name or label holding markup is text whatever the script does
// with it, and the pages cannot be framed.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
	"X-Content-Type-Options": "nosniff",
	"Referrer-Policy":        "no-referrer",
	"X-Frame-Options":        "DENY",
}

// page is what a template is rendered with.
type page struct {
	// Page names the page for the script (body data-page) and the nav.
	Page  string
	Title string
	// Name is the artifact of an artifact page, from the query; the
	// script reads it back from the page.
	Name string
}

// UI serves the pages.
type UI struct {
	pages  map[string]*template.Template
	static http.Handler
}

// New parses the embedded templates. It fails only on a template broken at
// build time, which the package's tests catch.
func New() (*UI, error) {
	u := &UI{pages: map[string]*template.Template{}}
	for _, name := range []string{"list", "artifact", "cluster"} {
		t, err := template.ParseFS(files, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("webui: parse %s page: %w", name, err)
		}
		u.pages[name] = t
	}
	static, err := fs.Sub(files, "static")
	if err != nil {
		return nil, fmt.Errorf("webui: static files: %w", err)
	}
	u.static = http.StripPrefix("/ui/static/", http.FileServerFS(static))
	return u, nil
}

// Register mounts the UI's routes on mux. It panics if the embedded
// templates do not parse: that is a broken build, not a runtime condition.
func Register(mux *http.ServeMux) {
	u, err := New()
	if err != nil {
		panic(err)
	}
	mux.HandleFunc(PatternList, func(w http.ResponseWriter, r *http.Request) {
		u.render(w, "list", page{Page: "list", Title: "Artifacts"})
	})
	mux.HandleFunc(PatternArtifact, func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		u.render(w, "artifact", page{Page: "artifact", Title: name, Name: name})
	})
	mux.HandleFunc(PatternCluster, func(w http.ResponseWriter, r *http.Request) {
		u.render(w, "cluster", page{Page: "cluster", Title: "Cluster"})
	})
	mux.Handle(PatternStatic, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			// No directory listings: the files are named by the pages.
			http.NotFound(w, r)
			return
		}
		setSecurityHeaders(w)
		// The files change only with the binary; a short cache keeps an
		// upgraded node from serving a stale script for long.
		w.Header().Set("Cache-Control", "public, max-age=300")
		u.static.ServeHTTP(w, r)
	}))
}

func setSecurityHeaders(w http.ResponseWriter) {
	for k, v := range securityHeaders {
		w.Header().Set(k, v)
	}
}

// render executes a page into a buffer first, so a template error is a
// clean 500 rather than half a page.
func (u *UI) render(w http.ResponseWriter, name string, p page) {
	var b bytes.Buffer
	if err := u.pages[name].ExecuteTemplate(&b, "layout", p); err != nil {
		http.Error(w, "webui: render "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	setSecurityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b.Bytes())
}
