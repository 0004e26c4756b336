package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/pier-registry/pier/cluster"
)

// Bundler is what the export and import routes need of the node
// (cluster/bundle.go). A registry without it has no such routes.
type Bundler interface {
	Export(ctx context.Context, w io.Writer, prefix string, since time.Time) (cluster.BundleManifest, error)
	Import(ctx context.Context, r io.Reader, actor string) (cluster.ImportResult, error)
}

// routeBundle adds GET /api/v1/export (pull on the prefix, like a
// listing) and POST /api/v1/import (admin, needOf's default).
func (a *API) routeBundle() {
	b, ok := a.reg.(Bundler)
	if !ok {
		return
	}
	a.mux.HandleFunc("GET /api/v1/export", func(w http.ResponseWriter, r *http.Request) { a.export(w, r, b) })
	a.mux.HandleFunc("POST /api/v1/import", func(w http.ResponseWriter, r *http.Request) { a.importBundle(w, r, b) })
}

// export streams a bundle. Once its first byte is sent a failure can only
// abort the response: the client sees a broken transfer, and the bundle
// lacks its manifest, so an import of what was saved says it is truncated.
func (a *API) export(w http.ResponseWriter, r *http.Request, b Bundler) {
	q := r.URL.Query()
	prefix := q.Get("prefix")
	var since time.Time
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			a.fail(w, r, fmt.Errorf("%w: since must be an RFC 3339 time (2026-12-01T00:00:00Z): %q", errBadRequest, s))
			return
		}
		since = t
	}
	h := w.Header()
	h.Set("Content-Type", "application/x-tar")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment",
		map[string]string{"filename": "pier-export-" + time.Now().UTC().Format("20060102T150405Z") + ".tar"}))
	cw := &countWriter{w: w}
	m, err := b.Export(r.Context(), cw, prefix, since)
	switch {
	case err == nil:
		a.log.Info("export sent", "prefix", prefix, "since", since, "artifacts", m.Artifacts, "bytes", m.Bytes)
	case cw.n == 0:
		h.Del("Content-Disposition")
		a.fail(w, r, err)
	default:
		a.log.Warn("export failed mid-stream; the bundle sent has no manifest", "prefix", prefix, "error", err)
		panic(http.ErrAbortHandler)
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// importBundle reads a bundle from the request body. It answers 200 with
// what was done when the bundle was read to its end (conflicts and failed
// entries are listed in the answer), and the error's status, with the
// same listing, when it stopped early (400 for a corrupt or truncated
// bundle).
func (a *API) importBundle(w http.ResponseWriter, r *http.Request, b Bundler) {
	res, err := b.Import(writeContext(r), r.Body, actor(r))
	if err != nil {
		if errors.Is(err, cluster.ErrBundleCorrupt) {
			err = fmt.Errorf("%w: %w", errBadRequest, err)
		}
		status := statusOf(err)
		a.log.Warn("import stopped", "status", status, "imported", res.Imported, "error", err)
		res.Error = err.Error()
		writeJSON(w, status, res)
		return
	}
	a.log.Info("import done", "source", res.Datacenter, "imported", res.Imported, "skipped", res.Skipped,
		"conflicts", len(res.Conflicts), "deleted", len(res.Deleted), "errors", len(res.Errors))
	writeJSON(w, http.StatusOK, res)
}
