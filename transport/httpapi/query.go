package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
)

// list serves GET /api/v1/artifacts?prefix=&tag=&label=k=v&limit=&page_token=.
func (a *API) list(w http.ResponseWriter, r *http.Request) {
	qv := r.URL.Query()
	q := fsm.Query{Prefix: qv.Get("prefix"), Tag: qv.Get("tag"), PageToken: qv.Get("page_token")}
	if s := qv.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > fsm.MaxLimit {
			a.fail(w, r, fmt.Errorf("%w: limit must be 1 to %d", fsm.ErrInvalid, fsm.MaxLimit))
			return
		}
		q.Limit = n
	}
	for _, l := range qv["label"] {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			a.fail(w, r, fmt.Errorf("%w: label filter %q is not key=value", fsm.ErrInvalid, l))
			return
		}
		if q.Labels == nil {
			q.Labels = map[string]string{}
		}
		q.Labels[k] = v
	}
	arts, next, err := a.reg.List(q)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := struct {
		Artifacts []artifactView `json:"artifacts"`
		Next      string         `json:"next_page_token,omitempty"`
	}{Artifacts: make([]artifactView, 0, len(arts)), Next: next}
	for _, art := range arts {
		out.Artifacts = append(out.Artifacts, view(art, nil))
	}
	writeJSON(w, http.StatusOK, out)
}

// tag serves PUT and DELETE /api/v1/tags/{tag}?name=.
func (a *API) tag(w http.ResponseWriter, r *http.Request) {
	tag, name := r.PathValue("tag"), r.URL.Query().Get("name")
	if err := fsm.ValidateTag(tag); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := fsm.ValidateName(name); err != nil {
		a.fail(w, r, fmt.Errorf("query parameter name: %w", err))
		return
	}
	art, err := a.reg.Tag(r.Context(), name, tag, actor(r), r.Method == http.MethodPut)
	if err != nil {
		a.fail(w, r, fmt.Errorf("tag %s: %w", name, err))
		return
	}
	writeJSON(w, http.StatusOK, view(art, nil))
}

// latest serves GET /api/v1/latest?prefix=&tag= with a redirect, so that
// `curl -LOJ` fetches the newest matching artifact under its own name.
func (a *API) latest(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if t := q.Get("tag"); t != "" {
		if err := fsm.ValidateTag(t); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	art, err := a.reg.Latest(r.Context(), q.Get("prefix"), q.Get("tag"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Location", artifactURL(art.Name))
	writeJSON(w, http.StatusFound, view(art, nil))
}

// members serves GET /api/v1/cluster/members.
func (a *API) members(w http.ResponseWriter, r *http.Request) {
	leader, ms := a.reg.Members()
	if ms == nil {
		ms = []cluster.Member{}
	}
	writeJSON(w, http.StatusOK, struct {
		Leader  string           `json:"leader"`
		Members []cluster.Member `json:"members"`
	}{leader, ms})
}

// readyz answers 200 only once the node is in a cluster that has a leader,
// so load balancers and scripts can wait on it.
func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	if !a.reg.Ready() {
		writeError(w, http.StatusServiceUnavailable, "not ready: no leader or not yet a member of the raft cluster")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
