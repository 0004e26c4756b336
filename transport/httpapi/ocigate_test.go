package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
)

// Authorize gives another edge the same answers as this API's own gate:
// a token's scopes on a name, any valid token for action "", 401 without
// credentials, and refusals in the audit queue; with auth off, everything.
func TestAuthorizeForOtherEdges(t *testing.T) {
	f := newFake()
	f.now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	_, secret, err := f.CreateToken(context.Background(), cluster.TokenSpec{Name: "ci", Owner: "bot", Scopes: []string{"push:myapp*", "pull:myapp*"}}, "test")
	if err != nil {
		t.Fatal(err)
	}
	a := New(f, hclog.NewNullLogger(), Options{Auth: true, Now: func() time.Time { return f.now }})
	req := func(user string) *http.Request {
		r := httptest.NewRequest("GET", "/v2/", nil)
		if user != "" {
			name, pass, _ := strings.Cut(user, ":")
			r.SetBasicAuth(name, pass)
		}
		return r
	}
	for _, tc := range []struct {
		user, action, name string
		prefix             bool
		status             int
	}{
		{"", "", "", false, http.StatusUnauthorized},
		{"ci:" + secret, "", "", false, 0},
		{"ci:wrong", "", "", false, http.StatusUnauthorized},
		{"ci:" + secret, fsm.ActionPush, "myapp/web", false, 0},
		{"ci:" + secret, fsm.ActionPush, "other", false, http.StatusForbidden},
		{"ci:" + secret, fsm.ActionDelete, "myapp", false, http.StatusForbidden},
		{"ci:" + secret, fsm.ActionPull, "", true, http.StatusForbidden},
		{"", fsm.ActionPull, "myapp", false, http.StatusUnauthorized},
	} {
		r, status, err := a.Authorize(req(tc.user), tc.action, tc.name, tc.prefix)
		if status != tc.status || (err == nil) != (tc.status == 0) {
			t.Errorf("%q %s on %q: %d %v, want %d", tc.user, tc.action, tc.name, status, err, tc.status)
		}
		if status == 0 && tc.user != "" && a.Actor(r) != "bot" {
			t.Errorf("actor %q, want the token's owner", a.Actor(r))
		}
	}
	if len(f.Audit(fsm.AuditQuery{Action: "denied"})) == 0 {
		t.Error("refusals were not queued for the audit log")
	}
	open := New(f, hclog.NewNullLogger(), Options{})
	if _, status, err := open.Authorize(req(""), fsm.ActionDelete, "x", false); status != 0 || err != nil {
		t.Errorf("auth off: %d %v", status, err)
	}
}

// AdmitBody holds one of the client's upload slots until released, and
// refuses a declared length over the maximum object size before the body.
func TestAdmitBodyForOtherEdges(t *testing.T) {
	a := New(newFake(), hclog.NewNullLogger(), Options{MaxUploadsPerClient: 1, MaxObjectSize: 10})
	w := httptest.NewRecorder()
	release, stalled, status, err := a.AdmitBody(w, httptest.NewRequest("PUT", "/v2/r/blobs/uploads/x", strings.NewReader("abc")))
	if err != nil || status != 0 || stalled() {
		t.Fatalf("first body: %d %v", status, err)
	}
	if _, _, status, _ := a.AdmitBody(w, httptest.NewRequest("PUT", "/v2/r/blobs/uploads/y", strings.NewReader("abc"))); status != http.StatusTooManyRequests {
		t.Fatalf("second body from the same client: %d, want 429", status)
	}
	release()
	if _, _, status, _ := a.AdmitBody(w, httptest.NewRequest("PUT", "/v2/r/blobs/uploads/z", strings.NewReader(strings.Repeat("x", 11)))); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("body over the maximum object size: %d, want 413", status)
	}
}
