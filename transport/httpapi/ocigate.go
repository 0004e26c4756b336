package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
)

// Authorize is the gate of this API offered to other edges of the node
// (transport/oci's /v2/): the same tokens, scopes, anonymous-pull policy,
// failure rate limit and audit of refusals as every route here. It checks
// that r may do action on name, or on every name under it with prefix;
// action "" needs only a valid token. With access control off everything
// is allowed. It returns the request to go on with (carrying its caller's
// address and principal), or the status of the refusal (401, 403 or 429)
// and why.
func (a *API) Authorize(r *http.Request, action, name string, prefix bool) (*http.Request, int, error) {
	n := need{action: action, name: name, prefix: prefix, anyone: action == ""}
	r = r.WithContext(cluster.WithCaller(r.Context(), clientIP(r)))
	if !a.opts.Auth {
		return r, 0, nil
	}
	r, err := a.admit(r, n)
	if err != nil {
		status := statusOf(err)
		a.auditDenial(r, status, err)
		return r, status, err
	}
	return r, 0, nil
}

// AuthorizeToken is Authorize for a request whose token the other edge
// has established itself (transport/oci's bearers, which name a token
// instead of carrying its secret): tok, as this node has applied it, must
// not have expired and must grant action on name (or on every name under
// it with prefix); it becomes the request's principal, so Actor and the
// audit log name its owner. A refusal is audited like Authorize's.
func (a *API) AuthorizeToken(r *http.Request, tok fsm.Token, action, name string, prefix bool) (*http.Request, int, error) {
	r = r.WithContext(cluster.WithCaller(r.Context(), clientIP(r)))
	if !a.opts.Auth {
		return r, 0, nil
	}
	p := principal{token: &tok}
	r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
	n := need{action: action, name: name, prefix: prefix, anyone: action == ""}
	var err error
	switch {
	case !tok.Expires.IsZero() && !a.opts.Now().Before(tok.Expires):
		err = fmt.Errorf("%w: token %s expired at %s", errUnauthenticated, tok.Name, tok.Expires.Format(time.RFC3339))
	case n.anyone || a.allowed(p, n):
		return r, 0, nil
	default:
		err = refusal(tok, n)
	}
	status := statusOf(err)
	a.auditDenial(r, status, err)
	return r, status, err
}

// Token returns the token named name as this node has applied it; false
// when there is none (never made, or revoked).
func (a *API) Token(name string) (fsm.Token, bool) {
	for _, t := range a.reg.Tokens() {
		if t.Name == name {
			return t, true
		}
	}
	return fsm.Token{}, false
}

// Principal returns the token a request was authenticated with by
// Authorize or AuthorizeToken; false for an anonymous one, and always
// with access control off.
func (a *API) Principal(r *http.Request) (fsm.Token, bool) {
	if p := principalOf(r); p.token != nil {
		return *p.token, true
	}
	return fsm.Token{}, false
}

// Actor names who makes a change through another edge, as for this API's
// own routes: the token's owner, or without access control what the
// client claims.
func (a *API) Actor(r *http.Request) string { return actor(r) }

// AdmitBody applies this API's limits on pushes to a request with a body
// taken by another edge of the node: one of the client address's upload
// slots (429 when it holds every one), the early 413 for a declared length
// over the maximum object size, and the body idle deadline. On success the
// caller must call release when the request ends; stalled then tells
// whether the body was cut for bringing no byte for the idle timeout (a
// 408 in the caller's vocabulary).
func (a *API) AdmitBody(w http.ResponseWriter, r *http.Request) (release func(), stalled func() bool, status int, err error) {
	client := clientIP(r)
	if !a.slots.acquire(client) {
		w.Header().Set("Retry-After", "1")
		err := fmt.Errorf("%w: %d at most", errTooManyUploads, a.opts.MaxUploadsPerClient)
		return nil, nil, statusOf(err), err
	}
	if limit := a.opts.MaxObjectSize; limit > 0 && r.ContentLength > limit {
		a.slots.release(client)
		err := fmt.Errorf("%w: a body of %d bytes is over the maximum object size of %d bytes", cluster.ErrTooLarge, r.ContentLength, limit)
		return nil, nil, statusOf(err), err
	}
	body := a.watchBody(w, r)
	return func() { a.slots.release(client) }, body.timedOut.Load, 0, nil
}
