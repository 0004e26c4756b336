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
	q, err := queryOf(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	arts, next, err := a.reg.List(r.Context(), q)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := struct {
		Artifacts []artifactView `json:"artifacts"`
		Next      string         `json:"next_page_token,omitempty"`
	}{Artifacts: make([]artifactView, 0, len(arts)), Next: next}
	for _, art := range arts {
		out.Artifacts = append(out.Artifacts, a.view(art, nil))
	}
	writeJSON(w, http.StatusOK, out)
}

// queryOf reads a listing's filters: prefix, tag, label=k=v (repeatable),
// glob, digest, version, commit, order (version), limit, page_token.
func queryOf(r *http.Request) (fsm.Query, error) {
	qv := r.URL.Query()
	q := fsm.Query{Prefix: qv.Get("prefix"), Tag: qv.Get("tag"), PageToken: qv.Get("page_token"),
		Glob: qv.Get("glob"), Digest: qv.Get("digest"), Version: qv.Get("version"), Commit: qv.Get("commit"),
		Order: qv.Get("order")}
	if q.Tag != "" {
		if err := fsm.ValidateTag(q.Tag); err != nil {
			return q, err
		}
	}
	if s := qv.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > fsm.MaxLimit {
			return q, fmt.Errorf("%w: limit must be 1 to %d", fsm.ErrInvalid, fsm.MaxLimit)
		}
		q.Limit = n
	}
	for _, l := range qv["label"] {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return q, fmt.Errorf("%w: label filter %q is not key=value", fsm.ErrInvalid, l)
		}
		if q.Labels == nil {
			q.Labels = map[string]string{}
		}
		q.Labels[k] = v
	}
	return q, nil
}

// tag serves PUT and DELETE /api/v1/tags/{tag}?name=.
func (a *API) tag(w http.ResponseWriter, r *http.Request) {
	tag, name := r.PathValue("tag"), r.URL.Query().Get("name")
	if err := fsm.ValidateTag(tag); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := fsm.ValidateNameShape(name); err != nil {
		a.fail(w, r, fmt.Errorf("query parameter name: %w", err))
		return
	}
	art, err := a.reg.Tag(writeContext(r), name, tag, actor(r), r.Method == http.MethodPut)
	if err != nil {
		a.fail(w, r, fmt.Errorf("tag %s: %w", name, fsm.ExplainMissing(name, err)))
		return
	}
	writeJSON(w, http.StatusOK, a.view(art, nil))
}

// latest serves GET /api/v1/latest?prefix=&tag= with a redirect, so that
// `curl -LOJ` fetches the newest matching artifact under its own name.
func (a *API) latest(w http.ResponseWriter, r *http.Request) {
	q, err := queryOf(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	// The first of the listing: the newest, or with order=version the
	// highest version.
	q.Limit, q.PageToken = 1, ""
	arts, _, err := a.reg.List(r.Context(), q)
	if err == nil && len(arts) == 0 {
		err = fmt.Errorf("%w: no artifact matches", fsm.ErrNotFound)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	art := arts[0]
	w.Header().Set("Location", artifactURL(art.Name))
	writeJSON(w, http.StatusFound, a.view(art, nil))
}

// byDigest serves GET|HEAD /api/v1/by-digest/{digest}: the bytes of an
// artifact with that content, whichever name holds it.
func (a *API) byDigest(w http.ResponseWriter, r *http.Request) {
	d := r.PathValue("digest")
	if err := fsm.ValidateDigest(d); err != nil {
		a.fail(w, r, err)
		return
	}
	arts, _, err := a.reg.List(r.Context(), fsm.Query{Digest: d, Limit: 1})
	if err == nil && len(arts) == 0 {
		err = fmt.Errorf("%w: no artifact holds %s", fsm.ErrNotFound, d)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.download(w, r, arts[0].Name)
}

// memberView is a member with the usage figures it reported.
type memberView struct {
	cluster.Member
	ShardFiles *int   `json:"shard_files,omitempty"`
	ShardBytes *int64 `json:"shard_bytes,omitempty"`
	DiskFree   *int64 `json:"disk_free,omitempty"`
}

// members serves GET /api/v1/cluster/members.
func (a *API) members(w http.ResponseWriter, r *http.Request) {
	leader, ms := a.reg.Members()
	usage := a.reg.MemberUsage(r.Context())
	out := make([]memberView, 0, len(ms))
	for _, m := range ms {
		v := memberView{Member: m}
		if u, ok := usage[m.ID]; ok {
			v.ShardFiles, v.ShardBytes, v.DiskFree = &u.ShardFiles, &u.ShardBytes, &u.DiskFree
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, struct {
		Leader  string       `json:"leader"`
		Members []memberView `json:"members"`
	}{leader, out})
}

// status serves GET /api/v1/status.
func (a *API) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.reg.Status())
}

// leave serves POST /api/v1/cluster/leave: the node that answers drains and
// leaves. It answers once the node is marked draining (an error then is
// the caller's); the drain runs on in the node, and its progress shows in
// /api/v1/status until the node is gone.
func (a *API) leave(w http.ResponseWriter, r *http.Request) {
	if err := a.reg.Leave(writeContext(r)); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"node": a.reg.ID(), "status": "draining", "shards": a.reg.Draining(a.reg.ID())})
}

// removeNode serves POST /api/v1/cluster/remove?id=.
func (a *API) removeNode(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	if id == "" {
		a.fail(w, r, fmt.Errorf("%w: id is required", fsm.ErrInvalid))
		return
	}
	if err := a.reg.Remove(r.Context(), id); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"node": id, "status": "left"})
}

// join serves POST /api/v1/cluster/join?addr=host:port[,...].
func (a *API) join(w http.ResponseWriter, r *http.Request) {
	var addrs []string
	for _, s := range strings.Split(r.URL.Query().Get("addr"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			addrs = append(addrs, s)
		}
	}
	if len(addrs) == 0 {
		a.fail(w, r, fmt.Errorf("%w: addr is required", fsm.ErrInvalid))
		return
	}
	if err := a.reg.Join(r.Context(), addrs); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"node": a.reg.ID(), "joined": addrs})
}

// readyz answers 200 only once the node is in a cluster that has a leader,
// so load balancers and scripts can wait on it.
func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	if !a.reg.Ready() {
		writeError(w, http.StatusServiceUnavailable, "not ready: no leader or not yet a member of the raft cluster")
		return
	}
	if !a.opts.Auth {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready",
			"warning": "authentication is off (--auth=false): anyone who reaches this node can push, delete and remove nodes"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
