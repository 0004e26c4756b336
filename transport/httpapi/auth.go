package httpapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
)

// Gatekeeper is what authentication needs of the node: the tokens and the
// access policy as it has applied them (a revoke on any node is refused
// here once this node applies it), and the commands that change them.
type Gatekeeper interface {
	// AuditDenial queues a refused request for the audit log.
	AuditDenial(e fsm.AuditEntry)
	// Audit reads the audit log.
	Audit(q fsm.AuditQuery) []fsm.AuditEntry
	TokenByHash(hash string) (fsm.Token, bool)
	Access() fsm.Access
	Tokens() []fsm.Token
	CreateToken(ctx context.Context, spec cluster.TokenSpec, actor string) (fsm.Token, string, error)
	RotateToken(ctx context.Context, name string, grace time.Duration, actor string) (fsm.Token, string, error)
	RevokeToken(ctx context.Context, name, actor string) error
	SetAccess(ctx context.Context, a fsm.Access, actor string) error
}

var (
	// errUnauthenticated marks a request without valid credentials: 401.
	errUnauthenticated = errors.New("unauthenticated")
	// errForbidden marks a valid token without the scope a request needs: 403.
	errForbidden = errors.New("forbidden")
	// errTooManyFailures marks a client address whose authentications
	// failed too often: 429.
	errTooManyFailures = errors.New("too many failed authentications")
)

// Failed authentications per client address: a burst, then one a second.
const (
	authFailBurst  = 10
	authFailRate   = 1
	authFailMemory = 10000 // addresses remembered
)

// principal is who sent a request: a token, or nobody.
type principal struct {
	token *fsm.Token
}

type principalKey struct{}

func principalOf(r *http.Request) principal {
	p, _ := r.Context().Value(principalKey{}).(principal)
	return p
}

// need is what a request must be allowed to do.
type need struct {
	open   bool   // anyone, always (health checks)
	anyone bool   // any valid token
	action string // else: this action ...
	name   string // ... on this name (tag: on this tag),
	prefix bool   // ... or on every name under name (listings).
	later  bool   // the name is known only once the body is read (upload)
}

// needOf maps a request to what it needs. Routes not named here need
// admin: a route added without a rule is closed, not open.
func (a *API) needOf(r *http.Request) need {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, pathArtifacts) || strings.HasPrefix(p, pathMeta):
		name := strings.TrimPrefix(strings.TrimPrefix(p, pathArtifacts), pathMeta)
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			return need{action: fsm.ActionPull, name: name}
		case http.MethodPut:
			return need{action: fsm.ActionPush, name: name}
		case http.MethodDelete:
			return need{action: fsm.ActionDelete, name: name}
		}
		return need{anyone: true} // 405 for whoever asks
	case p == "/healthz" || p == "/readyz":
		return need{open: true}
	case p == "/metrics":
		return need{open: a.opts.MetricsOpen, anyone: true}
	}
	_, pattern := a.mux.Handler(r)
	switch pattern {
	case "POST /upload":
		return need{action: fsm.ActionPush, later: true}
	case "POST /api/v1/uploads":
		return need{action: fsm.ActionPush, name: r.URL.Query().Get("name")}
	case "PATCH /api/v1/uploads/{id}", "HEAD /api/v1/uploads/{id}", "PUT /api/v1/uploads/{id}", "DELETE /api/v1/uploads/{id}":
		return a.uploadNeed(r) // push on the upload's name
	case "GET /api/v1/artifacts", "GET /api/v1/latest", "GET /api/v1/export":
		return need{action: fsm.ActionPull, name: r.URL.Query().Get("prefix"), prefix: true}
	case "GET /api/v1/by-digest/{digest}", "HEAD /api/v1/by-digest/{digest}":
		// Any name may hold the digest: pull on every name.
		return need{action: fsm.ActionPull, prefix: true}
	case "PUT /api/v1/tags/{tag}", "DELETE /api/v1/tags/{tag}":
		// The mux sets path values only when it serves the request.
		return need{action: fsm.ActionTag, name: strings.TrimPrefix(r.URL.Path, "/api/v1/tags/")}
	case "GET /api/v1/cluster/members", "GET /api/v1/status":
		return need{anyone: true}
	case "GET /{$}", "GET /ui/artifact", "GET /ui/cluster", "GET /ui/static/":
		// The web UI's page shells, script and style (webui.Routes): they
		// hold no data, which the browser fetches with the user's token.
		return need{open: true}
	}
	return need{action: fsm.ActionAdmin}
}

// gate authenticates r and checks it may do what it asks. It returns the
// request to serve, with its principal, or the error to answer with.
func (a *API) gate(r *http.Request) (*http.Request, error) {
	// Whatever the request changes carries its client's address into the
	// audit log.
	r = r.WithContext(cluster.WithCaller(r.Context(), clientIP(r)))
	if !a.opts.Auth {
		return r, nil
	}
	return a.admit(r, a.needOf(r))
}

// admit authenticates r and checks it against n (gate, and Authorize for
// other edges of the node).
func (a *API) admit(r *http.Request, n need) (*http.Request, error) {
	if n.open {
		return r, nil
	}
	tok, err := a.authenticate(r)
	if err != nil {
		return r, err
	}
	p := principal{token: tok}
	r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
	if n.anyone && tok != nil {
		return r, nil
	}
	if a.allowed(p, n) {
		return r, nil
	}
	if tok == nil {
		return r, fmt.Errorf("%w: this needs a token (Authorization: Bearer TOKEN, or basic auth NAME:TOKEN)", errUnauthenticated)
	}
	return r, refusal(*tok, n)
}

// refusal is the errForbidden of a token that lacks what n needs.
func refusal(tok fsm.Token, n need) error {
	what := n.action
	switch {
	case n.prefix:
		what += " on " + n.name + "*"
	case n.name != "":
		what += " on " + n.name
	}
	return fmt.Errorf("%w: token %s may not %s", errForbidden, tok.Name, what)
}

func (a *API) allowed(p principal, n need) bool {
	if p.token == nil {
		acc := a.reg.Access()
		switch {
		case n.prefix:
			return acc.AllowsAnonymousAll(n.action, n.name)
		case n.later, n.anyone:
			return false
		}
		return acc.AllowsAnonymous(n.action, n.name)
	}
	t := *p.token
	switch {
	case n.prefix:
		return t.GrantsAll(n.action, n.name)
	case n.later:
		// Checked again with the name (mayPush); here: may it push at all?
		for _, s := range t.Scopes {
			if sc, err := fsm.ParseScope(s); err == nil && (sc.Action == n.action || sc.Action == fsm.ActionAdmin) {
				return true
			}
		}
		return false
	}
	return t.Grants(n.action, n.name)
}

// authenticate returns the request's token, nil when it carries none, or
// errUnauthenticated for credentials that do not hold. Failures count
// against the client's address; past the budget it gets errTooManyFailures
// whatever it sends, so guessing secrets is slow.
func (a *API) authenticate(r *http.Request) (*fsm.Token, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, nil
	}
	lim := a.failLimiter(r)
	if lim.Tokens() < 1 {
		return nil, fmt.Errorf("%w from %s; wait and retry", errTooManyFailures, clientIP(r))
	}
	tok, err := a.check(h)
	if err != nil {
		lim.Allow()
		return nil, err
	}
	return tok, nil
}

func (a *API) check(header string) (*fsm.Token, error) {
	scheme, cred, _ := strings.Cut(header, " ")
	var name, secret string
	switch strings.ToLower(scheme) {
	case "bearer":
		secret = strings.TrimSpace(cred)
	case "basic":
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
		if err != nil {
			return nil, fmt.Errorf("%w: malformed basic credentials", errUnauthenticated)
		}
		var ok bool
		if name, secret, ok = strings.Cut(string(b), ":"); !ok {
			return nil, fmt.Errorf("%w: malformed basic credentials", errUnauthenticated)
		}
	default:
		return nil, fmt.Errorf("%w: unsupported authorization scheme %q", errUnauthenticated, scheme)
	}
	hash := fsm.HashSecret(secret)
	t, ok := a.reg.TokenByHash(hash)
	if !ok || (name != "" && name != t.Name) {
		return nil, fmt.Errorf("%w: unknown or revoked token", errUnauthenticated)
	}
	now := a.opts.Now()
	if !t.Expires.IsZero() && !now.Before(t.Expires) {
		return nil, fmt.Errorf("%w: token %s expired at %s", errUnauthenticated, t.Name, t.Expires.Format(time.RFC3339))
	}
	if hash != t.Hash && !now.Before(t.PrevUntil) {
		return nil, fmt.Errorf("%w: token %s was rotated; its old secret stopped working at %s", errUnauthenticated, t.Name, t.PrevUntil.Format(time.RFC3339))
	}
	return &t, nil
}

func (a *API) failLimiter(r *http.Request) *rate.Limiter {
	addr := clientIP(r)
	if l, ok := a.authFails.Get(addr); ok {
		return l
	}
	l := rate.NewLimiter(authFailRate, authFailBurst)
	a.authFails.Add(addr, l)
	return l
}

func newAuthFails() *lru.Cache[string, *rate.Limiter] {
	c, err := lru.New[string, *rate.Limiter](authFailMemory)
	if err != nil {
		panic(err) // only for a size below 1
	}
	return c
}

// mayPush checks a push's metadata against the principal once its name
// and tags are known: push on the name, tag on each tag it adds.
func (a *API) mayPush(r *http.Request, m cluster.PushMeta) error {
	if !a.opts.Auth {
		return nil
	}
	p := principalOf(r)
	if p.token == nil {
		return fmt.Errorf("%w: pushing needs a token", errUnauthenticated)
	}
	if !p.token.Grants(fsm.ActionPush, m.Name) {
		return fmt.Errorf("%w: token %s may not push %s", errForbidden, p.token.Name, m.Name)
	}
	for _, tag := range m.Tags {
		if !p.token.Grants(fsm.ActionTag, tag) {
			return fmt.Errorf("%w: token %s may not add tag %s", errForbidden, p.token.Name, tag)
		}
	}
	return nil
}

// auditDenial records a refused request (401, 403, 429) in the audit log.
func (a *API) auditDenial(r *http.Request, status int, err error) {
	who := "anonymous"
	if p := principalOf(r); p.token != nil {
		who = p.token.Owner
	}
	a.reg.AuditDenial(fsm.AuditEntry{Actor: who, Source: clientIP(r), Action: "denied",
		Target: r.Method + " " + r.URL.Path, Outcome: fmt.Sprintf("%d: %v", status, err)})
}

// challenge is the WWW-Authenticate of a 401: both schemes work.
const challenge = `Basic realm="pier", Bearer realm="pier"`

// actor names who made a change, for histories: with authentication on,
// the owner of the request's token; without it, whatever the client
// claims (X-Pier-Actor), else its address.
func actor(r *http.Request) string {
	if p := principalOf(r); p.token != nil {
		return p.token.Owner
	}
	// With authentication on, every write has a token (gate), so this is
	// reached only without it.
	if v := r.Header.Get("X-Pier-Actor"); v != "" && len(v) <= 256 {
		return v
	}
	return clientIP(r)
}
