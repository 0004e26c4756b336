package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
)

// Token and access-policy routes; all need the admin scope (needOf's
// default).
func (a *API) routeTokens() {
	a.mux.HandleFunc("GET /api/v1/tokens", a.listTokens)
	a.mux.HandleFunc("POST /api/v1/tokens", a.createToken)
	a.mux.HandleFunc("DELETE /api/v1/tokens/{name}", a.revokeToken)
	a.mux.HandleFunc("POST /api/v1/tokens/{name}/rotate", a.rotateToken)
	a.mux.HandleFunc("GET /api/v1/access", a.getAccess)
	a.mux.HandleFunc("PUT /api/v1/access", a.putAccess)
	a.mux.HandleFunc("GET /api/v1/audit", a.audit)
}

// audit serves the audit log, oldest first: ?since=SEQ (exclusive),
// &actor=, &action=, &limit= (at most 1000). Follow it by passing the last
// entry's seq as since.
func (a *API) audit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	aq := fsm.AuditQuery{Actor: q.Get("actor"), Action: q.Get("action")}
	var err error
	if v := q.Get("since"); v != "" {
		if aq.Since, err = strconv.ParseUint(v, 10, 64); err != nil {
			a.fail(w, r, fmt.Errorf("%w: since: want the seq of an entry", errBadRequest))
			return
		}
	}
	if v := q.Get("limit"); v != "" {
		if aq.Limit, err = strconv.Atoi(v); err != nil || aq.Limit < 1 {
			a.fail(w, r, fmt.Errorf("%w: limit: want a positive number", errBadRequest))
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": a.reg.Audit(aq)})
}

// TokenView is a token as the API shows it: never a hash, and the secret
// only in the answer that made it.
type TokenView struct {
	Name      string     `json:"name"`
	Owner     string     `json:"owner"`
	Scopes    []string   `json:"scopes"`
	Created   time.Time  `json:"created"`
	Expires   *time.Time `json:"expires"`
	Rotated   *time.Time `json:"rotated,omitempty"`
	GraceEnds *time.Time `json:"grace_ends,omitempty"`
	Secret    string     `json:"secret,omitempty"`
}

func tokenView(t fsm.Token, secret string) TokenView {
	v := TokenView{Name: t.Name, Owner: t.Owner, Scopes: t.Scopes, Created: t.Created, Secret: secret}
	at := func(x time.Time) *time.Time {
		if x.IsZero() {
			return nil
		}
		return &x
	}
	v.Expires, v.Rotated = at(t.Expires), at(t.Rotated)
	if t.PrevHash != "" {
		v.GraceEnds = at(t.PrevUntil)
	}
	return v
}

func (a *API) listTokens(w http.ResponseWriter, r *http.Request) {
	ts := a.reg.Tokens()
	out := make([]TokenView, 0, len(ts))
	for _, t := range ts {
		out = append(out, tokenView(t, ""))
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
}

// CreateTokenRequest is the body of POST /api/v1/tokens. TTL is a Go
// duration or a number of days ("90d"); empty: until revoked.
type CreateTokenRequest struct {
	Name   string   `json:"name"`
	Owner  string   `json:"owner"`
	Scopes []string `json:"scopes"`
	TTL    string   `json:"ttl"`
}

func (a *API) createToken(w http.ResponseWriter, r *http.Request) {
	var req CreateTokenRequest
	if err := decodeBody(r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	ttl, err := ParseDays(req.TTL)
	if err != nil {
		a.fail(w, r, fmt.Errorf("%w: ttl: %v", errBadRequest, err))
		return
	}
	if req.Owner == "" {
		req.Owner = req.Name
	}
	t, secret, err := a.reg.CreateToken(writeContext(r), cluster.TokenSpec{Name: req.Name, Owner: req.Owner, Scopes: req.Scopes, TTL: ttl}, actor(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, tokenView(t, secret))
}

func (a *API) rotateToken(w http.ResponseWriter, r *http.Request) {
	grace, err := ParseDays(r.URL.Query().Get("grace"))
	if err != nil {
		a.fail(w, r, fmt.Errorf("%w: grace: %v", errBadRequest, err))
		return
	}
	t, secret, err := a.reg.RotateToken(writeContext(r), r.PathValue("name"), grace, actor(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tokenView(t, secret))
}

func (a *API) revokeToken(w http.ResponseWriter, r *http.Request) {
	if err := a.reg.RevokeToken(writeContext(r), r.PathValue("name"), actor(r)); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) getAccess(w http.ResponseWriter, r *http.Request) {
	acc := a.reg.Access()
	if acc.AnonymousPull == nil {
		acc.AnonymousPull = []string{}
	}
	writeJSON(w, http.StatusOK, acc)
}

func (a *API) putAccess(w http.ResponseWriter, r *http.Request) {
	var acc fsm.Access
	if err := decodeBody(r, &acc); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.reg.SetAccess(writeContext(r), acc, actor(r)); err != nil {
		a.fail(w, r, err)
		return
	}
	a.getAccess(w, r)
}

// decodeBody reads a small JSON body into v, refusing unknown fields.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: JSON body: %v", errBadRequest, err)
	}
	return nil
}

// ParseDays reads a duration as Go writes it ("36h") or a number of days
// ("90d"); "" is 0.
func ParseDays(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 || n > 100*365 {
			return 0, fmt.Errorf("%q: want a number of days such as 90d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: want a duration such as 24h or 90d", s)
	}
	return d, nil
}
