package httpapi

import (
	"fmt"
	"net/http"

	"github.com/pier-registry/pier/cluster"
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
