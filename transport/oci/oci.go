// Package oci serves the OCI distribution API (/v2/) on every node, so
// docker, podman, helm and oras push to and pull from Pier. It keeps no
// state of its own but chunked uploads in progress: blobs and manifests are
// Pier artifacts under reserved names (names.go), tags are Pier tags on
// them, and everything goes through the node's ordinary push and read
// paths. DESIGN.md says why.
package oci

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
)

// Node is what the registry needs of a Pier node; cluster.Node implements
// it, and the package's tests a fake in memory.
type Node interface {
	// Upload stores body and binds it to m.Name (cluster.Node.Upload).
	Upload(ctx context.Context, m cluster.PushMeta, body io.Reader, more cluster.MoreMeta) (fsm.Artifact, bool, error)
	// Stat reads an artifact's metadata, after a read barrier on a miss.
	Stat(ctx context.Context, name string) (fsm.Artifact, error)
	// Open streams n bytes of an artifact's content from off.
	Open(ctx context.Context, a fsm.Artifact, off, n int64) (io.ReadCloser, error)
	// List reads after a read barrier: tags move.
	List(ctx context.Context, q fsm.Query) ([]fsm.Artifact, string, error)
	// History is an artifact's tag history.
	History(name string) []fsm.TagEvent
	// Tag adds (add) or removes a tag.
	Tag(ctx context.Context, name, tag, actor string, add bool) (fsm.Artifact, error)
	// Delete deletes an artifact (a tombstone: its name stays bound).
	Delete(ctx context.Context, name, actor string) error
}

// Gate decides who may do what; transport/httpapi's API implements it with
// the tokens and scopes of the rest of the public API, so /v2/ has the same
// access control.
type Gate interface {
	// Authorize checks that r may do action (fsm.ActionPull, ...) on name,
	// or, with prefix, on every name under it; action "" asks only for a
	// valid token when access control is on. It returns the request to go
	// on with, or a status (401, 403, 429) and why.
	Authorize(r *http.Request, action, name string, prefix bool) (*http.Request, int, error)
	// AuthorizeToken is Authorize for a request whose token the registry
	// established itself (a bearer it issued): tok as the node has it now
	// must not have expired and must grant action on name; it becomes the
	// request's principal.
	AuthorizeToken(r *http.Request, tok fsm.Token, action, name string, prefix bool) (*http.Request, int, error)
	// Token is the token named name as the node has applied it; false
	// once revoked.
	Token(name string) (fsm.Token, bool)
	// Principal is the token a request returned by Authorize was
	// authenticated with; false for an anonymous one or with access
	// control off.
	Principal(r *http.Request) (fsm.Token, bool)
	// Actor names who makes a change, for tag histories and the audit log.
	Actor(r *http.Request) string
	// AdmitBody applies the node's limits on pushes to a request with a
	// body (an upload slot of the client's address, the maximum object
	// size, the body idle deadline), or returns the status (429, 413) and
	// why not. release ends the request's hold; stalled tells whether the
	// body was cut for coming too slowly.
	AdmitBody(w http.ResponseWriter, r *http.Request) (release func(), stalled func() bool, status int, err error)
}

// Config builds a Registry.
type Config struct {
	Node Node
	Gate Gate
	// UploadDir holds chunked uploads in progress (one file per session).
	UploadDir string
	Logger    hclog.Logger
	// MaxManifestSize bounds a manifest's body; default 4 MiB, as
	// distribution has it.
	MaxManifestSize int64
	// MaxChunkSize bounds the body of one PATCH or of a PUT's last chunk;
	// the blob as a whole is bounded by the node (--max-object-size).
	// 0 leaves chunks to that bound alone.
	MaxChunkSize int64
	// ClusterKeys sign and verify the bearers of the token flow (auth.go):
	// the first signs, any verifies, as the node's cluster key and the
	// keys it accepts during a rotation. Required.
	ClusterKeys []string
	// BearerTTL is how long a bearer works; default 5 minutes. A client
	// fetches a new one when it expires.
	BearerTTL time.Duration
	// Now is the clock bearers are issued and checked by; default time.Now.
	Now func() time.Time
}

// Registry serves /v2/.
type Registry struct {
	node     Node
	gate     Gate
	log      hclog.Logger
	uploads  *uploads
	maxManif int64
	maxChunk int64

	signer    *signer
	bearerTTL time.Duration
	now       func() time.Time
}

// Prefix is the path the registry answers under.
const Prefix = "/v2/"

// New returns the registry of cfg.Node.
func New(cfg Config) (*Registry, error) {
	if cfg.Node == nil || cfg.Gate == nil {
		return nil, fmt.Errorf("oci: a node and a gate are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.MaxManifestSize <= 0 {
		cfg.MaxManifestSize = 4 << 20
	}
	if cfg.BearerTTL <= 0 {
		cfg.BearerTTL = defaultBearerTT
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	sg, err := newSigner(cfg.ClusterKeys)
	if err != nil {
		return nil, err
	}
	up, err := newUploads(cfg.UploadDir)
	if err != nil {
		return nil, err
	}
	return &Registry{node: cfg.Node, gate: cfg.Gate, log: cfg.Logger, uploads: up,
		maxManif: cfg.MaxManifestSize, maxChunk: cfg.MaxChunkSize,
		signer: sg, bearerTTL: cfg.BearerTTL, now: cfg.Now}, nil
}

// route is a parsed /v2/ path.
type route struct {
	kind string // "base", "catalog", "token", "blob", "uploads", "upload", "manifest", "tags", "referrers"
	repo string
	arg  string // digest, reference or upload session
}

// The markers that end a repository name in a path. A repository may hold
// a segment named like one ("a/blobs/b"), so the last marker wins.
var markers = []struct{ text, kind string }{
	{"/blobs/uploads/", "uploads"},
	{"/blobs/", "blob"},
	{"/manifests/", "manifest"},
	{"/tags/list", "tags"},
	{"/referrers/", "referrers"},
}

// parse splits a /v2/ path into its route; ok is false for a path the API
// does not have.
func parse(path string) (route, bool) {
	rest, ok := strings.CutPrefix(path, Prefix)
	if !ok {
		return route{}, false
	}
	switch rest {
	case "":
		return route{kind: "base"}, true
	case "_catalog":
		return route{kind: "catalog"}, true
	case "token":
		// No repository path ends without a marker, so "token" is free.
		return route{kind: "token"}, true
	}
	best, kind, mlen := -1, "", 0
	for _, m := range markers {
		i := strings.LastIndex(rest, m.text)
		// "/blobs/uploads/" also contains "/blobs/" at the same place: the
		// longer marker wins a tie.
		if i > best || (i == best && len(m.text) > mlen) {
			best, kind, mlen = i, m.kind, len(m.text)
		}
	}
	if best <= 0 {
		return route{}, false
	}
	r := route{kind: kind, repo: rest[:best], arg: rest[best+mlen:]}
	switch kind {
	case "tags":
		if r.arg != "" {
			return route{}, false
		}
	case "uploads":
		if r.arg != "" {
			r.kind = "upload"
		}
		if strings.Contains(r.arg, "/") {
			return route{}, false
		}
	default:
		if r.arg == "" || strings.Contains(r.arg, "/") {
			return route{}, false
		}
	}
	return r, true
}

// ServeHTTP answers one /v2/ request.
func (g *Registry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	rt, ok := parse(r.URL.Path)
	if !ok {
		writeError(w, r, http.StatusNotFound, codeNameUnknown, "no such endpoint: "+r.Method+" "+r.URL.Path)
		return
	}
	if rt.repo != "" {
		if err := validRepo(rt.repo); err != nil {
			writeError(w, r, http.StatusBadRequest, codeNameInvalid, err.Error())
			return
		}
	}
	h, action := g.handler(rt, r.Method)
	if h == nil {
		w.Header().Set("Allow", allowed(rt.kind))
		writeError(w, r, http.StatusMethodNotAllowed, codeUnsupported, r.Method+" is not supported here")
		return
	}
	// What each route needs: a catalog lists every repository, so it needs
	// pull on all of them; the base route, only a valid token.
	name, prefix := rt.repo, false
	if rt.kind == "catalog" {
		prefix = true
	}
	if rt.kind == "token" {
		h(w, r, rt) // the token endpoint checks the credentials it is given itself
		return
	}
	r, status, err := g.authorize(r, action, name, prefix)
	if err != nil {
		if status == http.StatusUnauthorized {
			challenge(w, r, rt, action, err)
		}
		writeError(w, r, status, gateCode(status), err.Error())
		return
	}
	switch r.Method {
	case http.MethodDelete:
		r = r.WithContext(writeContext(r))
	case http.MethodPost, http.MethodPatch, http.MethodPut:
		// Every step of a write (a mount's read of its source, a tag
		// move's listings) outlives a half-close, not only the commit.
		r = r.WithContext(writeContext(r))
		release, stalled, status, err := g.gate.AdmitBody(w, r)
		if err != nil {
			code := codeSizeInvalid
			if status == http.StatusTooManyRequests {
				code = codeTooManyRequests
			}
			writeError(w, r, status, code, err.Error())
			return
		}
		defer release()
		r = r.WithContext(context.WithValue(r.Context(), stalledKey{}, stalled))
	}
	h(w, r, rt)
}

type stalledKey struct{}

// writeContext is the context of a write: the request's, but not ended
// when the client half-closes its side once its request is sent (net/http
// cancels the request's context at that EOF), as in httpapi. A client that
// goes away while its body comes fails the body's reads instead, and a
// stalled one is cut by the body idle deadline.
func writeContext(r *http.Request) context.Context {
	return context.WithoutCancel(r.Context())
}

type handlerFunc func(http.ResponseWriter, *http.Request, route)

// handler picks the handler of a route and method and the scope it needs.
func (g *Registry) handler(rt route, method string) (handlerFunc, string) {
	get := method == http.MethodGet || method == http.MethodHead
	switch rt.kind {
	case "base":
		if get {
			return func(w http.ResponseWriter, r *http.Request, _ route) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusOK)
				if r.Method == http.MethodGet {
					_, _ = io.WriteString(w, "{}")
				}
			}, ""
		}
	case "catalog":
		if method == http.MethodGet {
			return g.catalog, fsm.ActionPull
		}
	case "token":
		if get {
			return func(w http.ResponseWriter, r *http.Request, _ route) { g.issueToken(w, r) }, ""
		}
	case "blob":
		switch {
		case get:
			return g.getBlob, fsm.ActionPull
		case method == http.MethodDelete:
			return g.deleteBlob, fsm.ActionDelete
		}
	case "uploads":
		if method == http.MethodPost {
			return g.startUpload, fsm.ActionPush
		}
	case "upload":
		switch method {
		case http.MethodGet:
			return g.uploadStatus, fsm.ActionPush
		case http.MethodPatch:
			return g.patchUpload, fsm.ActionPush
		case http.MethodPut:
			return g.finishUpload, fsm.ActionPush
		case http.MethodDelete:
			return g.cancelUpload, fsm.ActionPush
		}
	case "manifest":
		switch {
		case get:
			return g.getManifest, fsm.ActionPull
		case method == http.MethodPut:
			return g.putManifest, fsm.ActionPush
		case method == http.MethodDelete:
			return g.deleteManifest, fsm.ActionDelete
		}
	case "tags":
		if method == http.MethodGet {
			return g.listTags, fsm.ActionPull
		}
	case "referrers":
		if method == http.MethodGet {
			return g.referrers, fsm.ActionPull
		}
	}
	return nil, ""
}

func allowed(kind string) string {
	switch kind {
	case "blob", "manifest":
		return "GET, HEAD, PUT, DELETE"
	case "uploads":
		return "POST"
	case "upload":
		return "GET, PATCH, PUT, DELETE"
	}
	return "GET, HEAD"
}

// fail answers err, classified; notFound is the code for a missing artifact.
func (g *Registry) fail(w http.ResponseWriter, r *http.Request, err error, notFound string) {
	status, code := classify(err, notFound)
	if stalled, ok := r.Context().Value(stalledKey{}).(func() bool); ok && stalled() {
		// Whatever the reader of the body made of the cut, the cause is
		// the body that stopped coming.
		status, code = http.StatusRequestTimeout, codeBlobUploadInvalid
	}
	if status >= 500 {
		g.log.Error("oci request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	writeError(w, r, status, code, err.Error())
}
