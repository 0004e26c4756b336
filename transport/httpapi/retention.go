package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
)

// Keeper is what the retention routes need of the node.
type Keeper interface {
	RetentionPolicies() []fsm.RetentionPolicy
	SetRetention(ctx context.Context, p fsm.RetentionPolicy, actor string) error
	RemoveRetention(ctx context.Context, prefix, actor string) error
	RunRetention(ctx context.Context, dryRun bool, candidate *fsm.RetentionPolicy, actor string) ([]cluster.RetentionDeletion, error)
}

// Retention and quota routes; they need the admin scope (needOf's default).
func (a *API) routeRetention() {
	a.mux.HandleFunc("GET /api/v1/retention", a.listRetention)
	a.mux.HandleFunc("PUT /api/v1/retention", a.setRetention)
	a.mux.HandleFunc("DELETE /api/v1/retention", a.removeRetention)
	a.mux.HandleFunc("POST /api/v1/retention/run", a.runRetention)
	a.mux.HandleFunc("GET /api/v1/quotas", a.listQuotas)
	a.mux.HandleFunc("PUT /api/v1/quotas", a.setQuota)
	a.mux.HandleFunc("DELETE /api/v1/quotas", a.removeQuota)
}

func (a *API) listQuotas(w http.ResponseWriter, r *http.Request) {
	qs := a.reg.Quotas()
	if qs == nil {
		qs = []fsm.Quota{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"quotas": qs})
}

func (a *API) setQuota(w http.ResponseWriter, r *http.Request) {
	var q fsm.Quota
	if err := decodeBody(r, &q); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.reg.SetQuota(writeContext(r), fsm.Quota{Prefix: q.Prefix, MaxBytes: q.MaxBytes, MaxCount: q.MaxCount}, actor(r)); err != nil {
		a.fail(w, r, err)
		return
	}
	a.listQuotas(w, r)
}

func (a *API) removeQuota(w http.ResponseWriter, r *http.Request) {
	if err := a.reg.RemoveQuota(writeContext(r), r.URL.Query().Get("prefix"), actor(r)); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// RetentionView is a policy as the API reads and writes it; the ages are
// Go durations or days ("90d"). Images makes it an images policy (under
// _oci/, per repository: fsm.RetentionPolicy).
type RetentionView struct {
	Prefix         string   `json:"prefix"`
	KeepLast       int      `json:"keep_last,omitempty"`
	MaxAge         string   `json:"max_age,omitempty"`
	ProtectTags    []string `json:"protect_tags,omitempty"`
	Images         bool     `json:"images,omitempty"`
	UntaggedMaxAge string   `json:"untagged_max_age,omitempty"`
	BlobGrace      string   `json:"blob_grace,omitempty"`
}

func (v RetentionView) policy() (fsm.RetentionPolicy, error) {
	p := fsm.RetentionPolicy{Prefix: v.Prefix, KeepLast: v.KeepLast, ProtectTags: v.ProtectTags, Images: v.Images}
	for _, f := range []struct {
		name string
		v    string
		to   *time.Duration
	}{{"max_age", v.MaxAge, &p.MaxAge}, {"untagged_max_age", v.UntaggedMaxAge, &p.UntaggedMaxAge}, {"blob_grace", v.BlobGrace, &p.BlobGrace}} {
		d, err := ParseDays(f.v)
		if err != nil {
			return fsm.RetentionPolicy{}, fmt.Errorf("%w: %s: %v", errBadRequest, f.name, err)
		}
		*f.to = d
	}
	return p, fsm.ValidateRetention(&p)
}

func retentionView(p fsm.RetentionPolicy) RetentionView {
	v := RetentionView{Prefix: p.Prefix, KeepLast: p.KeepLast, ProtectTags: p.ProtectTags, Images: p.Images}
	for _, f := range []struct {
		d  time.Duration
		to *string
	}{{p.MaxAge, &v.MaxAge}, {p.UntaggedMaxAge, &v.UntaggedMaxAge}, {p.BlobGrace, &v.BlobGrace}} {
		if f.d > 0 {
			*f.to = f.d.String()
		}
	}
	return v
}

func (a *API) listRetention(w http.ResponseWriter, r *http.Request) {
	out := []RetentionView{}
	for _, p := range a.reg.RetentionPolicies() {
		out = append(out, retentionView(p))
	}
	writeJSON(w, http.StatusOK, map[string]any{"policies": out})
}

func (a *API) setRetention(w http.ResponseWriter, r *http.Request) {
	var v RetentionView
	if err := decodeBody(r, &v); err != nil {
		a.fail(w, r, err)
		return
	}
	p, err := v.policy()
	if err == nil {
		err = a.reg.SetRetention(writeContext(r), p, actor(r))
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, retentionView(p))
}

func (a *API) removeRetention(w http.ResponseWriter, r *http.Request) {
	if err := a.reg.RemoveRetention(writeContext(r), r.URL.Query().Get("prefix"), actor(r)); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// runRetention applies the policies now (?dry_run=true: only lists what
// they would delete). A body, when sent, is a candidate policy standing in
// for its prefix's.
func (a *API) runRetention(w http.ResponseWriter, r *http.Request) {
	dry := false
	if v := r.URL.Query().Get("dry_run"); v != "" {
		var err error
		if dry, err = strconv.ParseBool(v); err != nil {
			a.fail(w, r, fmt.Errorf("%w: dry_run: %v", errBadRequest, err))
			return
		}
	}
	var candidate *fsm.RetentionPolicy
	if r.ContentLength != 0 {
		var v RetentionView
		if err := decodeBody(r, &v); err != nil {
			a.fail(w, r, err)
			return
		}
		p, err := v.policy()
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if !dry {
			a.fail(w, r, fmt.Errorf("%w: a candidate policy is only for a dry run: save it with PUT /api/v1/retention", errBadRequest))
			return
		}
		candidate = &p
	}
	ds, err := a.reg.RunRetention(writeContext(r), dry, candidate, actor(r)+" (retention run)")
	if ds == nil {
		ds = []cluster.RetentionDeletion{}
	}
	if err != nil {
		a.fail(w, r, fmt.Errorf("%w (%d deleted before it)", err, len(ds)))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"dry_run": dry, "deleted": ds})
}
