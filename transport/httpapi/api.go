// Package httpapi is the public HTTP API of a node: push, pull, metadata,
// tags and cluster views, as DESIGN.md's interface contract lays them out.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
	"github.com/pier-registry/pier/transport/httpapi/uploads"
	"github.com/pier-registry/pier/transport/webui"
)

// Registry is the node as the API sees it: cluster.Node implements it, and
// the API's own tests a fake in memory. Pushes are one call (Upload): the
// protocol behind them is the node's.
type Registry interface {
	// Upload stores body and binds it to m.Name, after more (when set) has
	// completed the metadata; see cluster.Node.Upload.
	Upload(ctx context.Context, m cluster.PushMeta, body io.Reader, more cluster.MoreMeta) (fsm.Artifact, bool, error)
	// Stat is an artifact's metadata for a pull; Open streams n bytes of
	// its content from offset off.
	Stat(ctx context.Context, name string) (fsm.Artifact, error)
	Open(ctx context.Context, a fsm.Artifact, off, n int64) (io.ReadCloser, error)
	// StatFresh, List and Latest read after a barrier: tags move.
	StatFresh(ctx context.Context, name string) (fsm.Artifact, error)
	List(ctx context.Context, q fsm.Query) ([]fsm.Artifact, string, error)
	Latest(ctx context.Context, prefix, tag string) (fsm.Artifact, error)
	History(name string) []fsm.TagEvent
	Tag(ctx context.Context, name, tag, actor string, add bool) (fsm.Artifact, error)
	Delete(ctx context.Context, name, actor string) error

	Members() (leader string, members []cluster.Member)
	Ready() bool
	IsLeader() bool
	Counts() fsm.Counts
	Stats() cluster.Stats
	Status() cluster.Status
	MemberUsage(ctx context.Context) map[string]cluster.Stats
	Leave(ctx context.Context) error
	Remove(ctx context.Context, id string) error
	Join(ctx context.Context, addrs []string) error
	Draining(node string) int
	ID() string
	Gatekeeper
	Keeper
	Quotas() []fsm.Quota
	SetQuota(ctx context.Context, q fsm.Quota, actor string) error
	RemoveQuota(ctx context.Context, prefix, actor string) error
}

// API serves the public endpoints.
type API struct {
	reg   Registry
	log   hclog.Logger
	mux   *router
	m     *metrics
	opts  Options
	slots *uploadSlots
	// authFails limits failed authentications per client address.
	authFails *lru.Cache[string, *rate.Limiter]
}

// New returns the public API of reg. Extra handlers (the peer service) are
// mounted by the caller on the same server. opts, at most one, sets the
// limits on pushes; without it every limit takes its default.
func New(reg Registry, logger hclog.Logger, opts ...Options) *API {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	o = o.withDefaults()
	a := &API{reg: reg, log: logger, mux: newRouter(), m: newMetrics(reg), opts: o,
		slots: newUploadSlots(o.MaxUploadsPerClient), authFails: newAuthFails()}
	a.mux.HandleFunc("POST /upload", a.upload)
	a.mux.HandleFunc("GET /api/v1/artifacts", a.list)
	a.mux.HandleFunc("PUT /api/v1/tags/{tag}", a.tag)
	a.mux.HandleFunc("DELETE /api/v1/tags/{tag}", a.tag)
	a.mux.HandleFunc("GET /api/v1/latest", a.latest)
	a.mux.HandleFunc("GET /api/v1/cluster/members", a.members)
	a.mux.HandleFunc("GET /api/v1/status", a.status)
	a.mux.HandleFunc("POST /api/v1/cluster/leave", a.leave)
	a.mux.HandleFunc("POST /api/v1/cluster/remove", a.removeNode)
	a.mux.HandleFunc("POST /api/v1/cluster/join", a.join)
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	a.mux.HandleFunc("GET /readyz", a.readyz)
	a.mux.HandleFunc("GET /metrics", a.metrics)
	a.mux.HandleFunc("GET /api/v1/by-digest/{digest}", a.byDigest)
	a.mux.HandleFunc("HEAD /api/v1/by-digest/{digest}", a.byDigest)
	a.routeTokens()
	a.routeRetention()
	a.routeUploads()
	a.routeFederation()
	a.routeBundle()
	webui.Register(a.mux.ServeMux)
	return a
}

// Artifact paths are routed by hand rather than by ServeMux, which would
// answer a path holding ".." with a redirect instead of refusing the name.
const (
	pathArtifacts = "/artifacts/"
	pathMeta      = "/api/v1/artifacts/"
)

// route names a request's endpoint for metrics: the mux pattern, or the
// artifact path with the name left out.
func (a *API) route(r *http.Request) string {
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, pathArtifacts):
		return pathArtifacts + "{name}"
	case strings.HasPrefix(p, pathMeta):
		return pathMeta + "{name}"
	}
	if _, pattern := a.mux.Handler(r); pattern != "" {
		return pattern
	}
	return "unknown"
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	start := time.Now()
	route := a.route(r)
	defer func() { a.m.observe(route, r.Method, rec.status, time.Since(start)) }()
	w = rec
	r, err := a.gate(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, pathArtifacts):
		name := p[len(pathArtifacts):]
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			a.download(w, r, name)
		case http.MethodPut:
			a.put(w, r, name)
		case http.MethodDelete:
			a.remove(w, r, name)
		default:
			w.Header().Set("Allow", "GET, HEAD, PUT, DELETE")
			writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		}
	case strings.HasPrefix(p, pathMeta):
		name := p[len(pathMeta):]
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			a.info(w, r, name)
		case http.MethodDelete:
			a.remove(w, r, name)
		default:
			w.Header().Set("Allow", "GET, HEAD, DELETE")
			writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		}
	default:
		if _, pattern := a.mux.Handler(r); pattern == "" {
			writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+p)
			return
		}
		a.mux.ServeHTTP(w, r)
	}
}

// statusOf maps an error to its HTTP status. It is the one place where
// errors meet status codes.
func statusOf(err error) int {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, uploads.ErrOffset):
		return http.StatusRequestedRangeNotSatisfiable
	case errors.Is(err, uploads.ErrBadRange), errors.Is(err, uploads.ErrDigest), errors.Is(err, errBadContentRange):
		return http.StatusBadRequest
	case errors.Is(err, uploads.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, uploads.ErrBusy):
		return http.StatusConflict
	case errors.Is(err, uploads.ErrTooMany):
		return http.StatusTooManyRequests
	case errors.Is(err, uploads.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, uploads.ErrNoSpace):
		return http.StatusInsufficientStorage
	case errors.Is(err, uploads.ErrClosed):
		return http.StatusServiceUnavailable
	case errors.Is(err, errUploadsOff):
		return http.StatusNotImplemented
	case errors.Is(err, fsm.ErrInvalid), errors.Is(err, cluster.ErrDigestMismatch), errors.Is(err, cluster.ErrTruncated),
		errors.Is(err, errBadRequest), errors.Is(err, io.ErrUnexpectedEOF):
		return http.StatusBadRequest
	case errors.Is(err, fsm.ErrNotFound), errors.Is(err, cluster.ErrShardNotFound):
		return http.StatusNotFound
	case errors.Is(err, fsm.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, errBodyIdle):
		return http.StatusRequestTimeout
	case errors.Is(err, cluster.ErrTooLarge), errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, errTooManyUploads):
		return http.StatusTooManyRequests
	case errors.Is(err, cluster.ErrNoSpace), errors.Is(err, fsm.ErrQuota):
		return http.StatusInsufficientStorage
	case errors.Is(err, cluster.ErrNoLeader), errors.Is(err, cluster.ErrUnavailable),
		errors.Is(err, cluster.ErrShutdown), errors.Is(err, cluster.ErrPeerUnreachable):
		return http.StatusServiceUnavailable
	case errors.Is(err, cluster.ErrLeaving):
		return http.StatusConflict
	case errors.Is(err, context.Canceled):
		return 499 // the client went away; nobody reads this answer
	case errors.Is(err, errUnauthenticated):
		return http.StatusUnauthorized
	case errors.Is(err, errForbidden):
		return http.StatusForbidden
	case errors.Is(err, errTooManyFailures):
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

var errBadRequest = errors.New("bad request")

func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	if status >= 500 && status != http.StatusServiceUnavailable {
		a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "error", err)
	} else {
		a.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "status", status, "error", err)
	}
	switch status {
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "1")
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", challenge)
	}
	if errors.Is(err, errUnauthenticated) || errors.Is(err, errForbidden) || errors.Is(err, errTooManyFailures) {
		a.auditDenial(r, status, err)
	}
	writeError(w, status, err.Error())
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// ReadFrom keeps the response's own ReadFrom (sendfile of a file) in
// reach of handlers that copy into the recorder.
func (s *statusRecorder) ReadFrom(src io.Reader) (int64, error) {
	return readFrom(s.ResponseWriter, src)
}

// readFrom copies src into w through w's ReadFrom when it has one.
func readFrom(w io.Writer, src io.Reader) (int64, error) {
	if rf, ok := w.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{w}, src)
}

// Unwrap lets http.ResponseController reach the real writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
