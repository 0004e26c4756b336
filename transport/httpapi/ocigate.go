package httpapi

import (
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
	r = r.WithContext(cluster.WithCaller(r.Context(), clientAddr(r)))
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
