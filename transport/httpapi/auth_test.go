package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
)

// route is one request of the auth table and the tokens that may send it.
type route struct {
	method, path string
	body         func() (string, []byte) // content type, body
	allowed      []string                // token names that pass; "*": any valid token; "open": everyone
}

func uploadBody(name string) func() (string, []byte) {
	return func() (string, []byte) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		fw, _ := mw.CreateFormFile("file", name)
		fw.Write([]byte("uploaded bytes"))
		mw.Close()
		return mw.FormDataContentType(), b.Bytes()
	}
}

func raw(s string) func() (string, []byte) {
	return func() (string, []byte) { return "application/octet-stream", []byte(s) }
}

func jsonBody(s string) func() (string, []byte) {
	return func() (string, []byte) { return "application/json", []byte(s) }
}

// The scopes of the table's tokens, by name.
var tableTokens = map[string][]string{
	"admin":    {"admin"},
	"puller":   {"pull"},
	"pusher":   {"push:myapp-*"},
	"tagger":   {"tag:production-ready"},
	"deleter":  {"delete:myapp-*"},
	"narrow":   {"pull:other-*"},
	"expired":  {"admin"},
	"revoked":  {"admin"},
	"rotated":  {"admin"}, // sent with its secret from before the rotation, past the grace
	"basic":    {"pull"},  // sent as basic auth NAME:SECRET
	"misnamed": {"pull"},  // basic auth with another token's name
}

var authRoutes = []route{
	{"GET", "/artifacts/myapp-1.jar", nil, []string{"admin", "puller", "basic"}},
	{"HEAD", "/artifacts/myapp-1.jar", nil, []string{"admin", "puller", "basic"}},
	{"PUT", "/artifacts/myapp-2.jar", raw("new bytes"), []string{"admin", "pusher"}},
	{"PUT", "/artifacts/other-2.jar", raw("new bytes"), []string{"admin"}},
	{"POST", "/upload", uploadBody("myapp-3.jar"), []string{"admin", "pusher"}},
	{"POST", "/upload", uploadBody("other-3.jar"), []string{"admin"}},
	{"DELETE", "/artifacts/myapp-1.jar", nil, []string{"admin", "deleter"}},
	{"GET", "/api/v1/artifacts/myapp-1.jar", nil, []string{"admin", "puller", "basic"}},
	{"DELETE", "/api/v1/artifacts/myapp-1.jar", nil, []string{"admin", "deleter"}},
	{"GET", "/api/v1/artifacts?prefix=", nil, []string{"admin", "puller", "basic"}},
	{"GET", "/api/v1/artifacts?prefix=other-", nil, []string{"admin", "puller", "basic", "narrow"}},
	{"GET", "/api/v1/latest?prefix=myapp-", nil, []string{"admin", "puller", "basic"}},
	{"GET", "/api/v1/by-digest/sha256:" + strings.Repeat("a", 64), nil, []string{"admin", "puller", "basic"}},
	{"PUT", "/api/v1/tags/production-ready?name=myapp-1.jar", nil, []string{"admin", "tagger"}},
	{"DELETE", "/api/v1/tags/production-ready?name=myapp-1.jar", nil, []string{"admin", "tagger"}},
	{"PUT", "/api/v1/tags/staging?name=myapp-1.jar", nil, []string{"admin"}},
	// Resumable uploads: push on the name; an id this node does not hold
	// (404) needs push on something.
	{"POST", "/api/v1/uploads?name=myapp-4.jar", nil, []string{"admin", "pusher"}},
	{"POST", "/api/v1/uploads?name=other-4.jar", nil, []string{"admin"}},
	{"PATCH", "/api/v1/uploads/node1-0123456789abcdef0123456789abcdef", raw("x"), []string{"admin", "pusher"}},
	{"HEAD", "/api/v1/uploads/node1-0123456789abcdef0123456789abcdef", nil, []string{"admin", "pusher"}},
	{"PUT", "/api/v1/uploads/node1-0123456789abcdef0123456789abcdef?digest=sha256:" + strings.Repeat("a", 64), nil, []string{"admin", "pusher"}},
	{"DELETE", "/api/v1/uploads/node1-0123456789abcdef0123456789abcdef", nil, []string{"admin", "pusher"}},
	{"GET", "/api/v1/cluster/members", nil, []string{"*"}},
	{"GET", "/api/v1/status", nil, []string{"*"}},
	{"POST", "/api/v1/cluster/leave", nil, []string{"admin"}},
	{"POST", "/api/v1/cluster/remove?id=n2", nil, []string{"admin"}},
	{"POST", "/api/v1/cluster/join?addr=127.0.0.1:7946", nil, []string{"admin"}},
	{"GET", "/metrics", nil, []string{"*"}},
	{"GET", "/healthz", nil, []string{"open"}},
	{"GET", "/readyz", nil, []string{"open"}},
	{"GET", "/", nil, []string{"open"}},
	{"HEAD", "/", nil, []string{"open"}},
	{"GET", "/ui/artifact?name=myapp-1.jar", nil, []string{"open"}},
	{"GET", "/ui/cluster", nil, []string{"open"}},
	{"GET", "/ui/static/app.js", nil, []string{"open"}},
	{"GET", "/ui/static/style.css", nil, []string{"open"}},
	{"GET", "/ui/nowhere", nil, []string{"admin"}},
	{"GET", "/api/v1/tokens", nil, []string{"admin"}},
	{"POST", "/api/v1/tokens", jsonBody(`{"name":"new","scopes":["pull"]}`), []string{"admin"}},
	{"DELETE", "/api/v1/tokens/puller", nil, []string{"admin"}},
	{"POST", "/api/v1/tokens/puller/rotate", nil, []string{"admin"}},
	{"GET", "/api/v1/access", nil, []string{"admin"}},
	{"PUT", "/api/v1/access", jsonBody(`{"anonymous_pull":["public-*"]}`), []string{"admin"}},
	{"GET", "/api/v1/retention", nil, []string{"admin"}},
	{"PUT", "/api/v1/retention", jsonBody(`{"prefix":"myapp-","keep_last":3}`), []string{"admin"}},
	{"DELETE", "/api/v1/retention?prefix=myapp-", nil, []string{"admin"}},
	{"POST", "/api/v1/retention/run", nil, []string{"admin"}},
	{"GET", "/api/v1/quotas", nil, []string{"admin"}},
	{"PUT", "/api/v1/quotas", jsonBody(`{"prefix":"myapp-","max_count":3}`), []string{"admin"}},
	{"DELETE", "/api/v1/quotas?prefix=myapp-", nil, []string{"admin"}},
	{"GET", "/api/v1/audit?actor=x", nil, []string{"admin"}},
	{"GET", "/api/v1/no-such-route", nil, []string{"admin"}},
}

// authFixture is a node with authentication on, one artifact, and a token
// of every kind in tableTokens; secrets maps each name to the secret to
// send.
func authFixture(t *testing.T) (*fakeRegistry, *httptest.Server, map[string]string) {
	t.Helper()
	f := newFake()
	f.now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	if _, _, err := f.Upload(context.Background(), cluster.PushMeta{Name: "myapp-1.jar"}, strings.NewReader("v1 bytes"), nil); err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{}
	for _, name := range sortedNames(tableTokens) {
		ttl := time.Duration(0)
		if name == "expired" {
			ttl = time.Hour
		}
		_, s, err := f.CreateToken(context.Background(), cluster.TokenSpec{Name: name, Owner: name + "-owner", Scopes: tableTokens[name], TTL: ttl}, "test")
		if err != nil {
			t.Fatal(err)
		}
		secrets[name] = s
	}
	if _, _, err := f.RotateToken(context.Background(), "rotated", time.Minute, "test"); err != nil {
		t.Fatal(err)
	}
	if err := f.RevokeToken(context.Background(), "revoked", "test"); err != nil {
		t.Fatal(err)
	}
	// Later than the expiry and the rotation's grace.
	now := f.now.Add(2 * time.Hour)
	srv := httptest.NewServer(New(f, hclog.NewNullLogger(), Options{Auth: true, Now: func() time.Time { return now }, Uploads: testUploads(t)}))
	t.Cleanup(srv.Close)
	return f, srv, secrets
}

func sortedNames(m map[string][]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// stateOf is everything a request could change.
func stateOf(f *fakeRegistry) string {
	runs, policies := f.runCount(), f.RetentionPolicies()
	f.mu.Lock()
	defer f.mu.Unlock()
	b, _ := json.Marshal([]any{f.arts, f.deleted, f.history, f.uploads, f.Tokens(), f.Access(), policies, runs})
	return string(b)
}

// Every route against every kind of credential: the right status, and a
// refused request changes nothing.
func TestAuthTable(t *testing.T) {
	creds := []string{"none", "wrong"}
	creds = append(creds, sortedNames(tableTokens)...)
	for _, rt := range authRoutes {
		for _, cred := range creds {
			t.Run(rt.method+" "+rt.path+" as "+cred, func(t *testing.T) {
				f, srv, secrets := authFixture(t)
				var ctype string
				var body []byte
				if rt.body != nil {
					ctype, body = rt.body()
				}
				req, err := http.NewRequest(rt.method, srv.URL+rt.path, bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if ctype != "" {
					req.Header.Set("Content-Type", ctype)
				}
				switch cred {
				case "none":
				case "wrong":
					req.Header.Set("Authorization", "Bearer pier_not-a-token")
				case "basic":
					req.SetBasicAuth("basic", secrets["basic"])
				case "misnamed":
					req.SetBasicAuth("admin", secrets["misnamed"])
				default:
					req.Header.Set("Authorization", "Bearer "+secrets[cred])
				}
				before := stateOf(f)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				var e struct{ Error string }
				json.NewDecoder(resp.Body).Decode(&e)
				resp.Body.Close()

				valid := !slices.Contains([]string{"none", "wrong", "expired", "revoked", "rotated", "misnamed"}, cred)
				pass := slices.Contains(rt.allowed, "open") || slices.Contains(rt.allowed, cred) ||
					(valid && slices.Contains(rt.allowed, "*"))
				switch {
				case pass:
					if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden || resp.StatusCode >= 500 {
						t.Fatalf("allowed request got %d: %s", resp.StatusCode, e.Error)
					}
					return
				case !valid:
					if resp.StatusCode != http.StatusUnauthorized {
						t.Fatalf("got %d (%s), want 401", resp.StatusCode, e.Error)
					}
					if resp.Header.Get("WWW-Authenticate") == "" {
						t.Fatal("401 without WWW-Authenticate")
					}
				default:
					if resp.StatusCode != http.StatusForbidden {
						t.Fatalf("got %d (%s), want 403", resp.StatusCode, e.Error)
					}
				}
				if after := stateOf(f); after != before {
					t.Fatalf("a refused request changed the state:\nbefore %s\nafter  %s", before, after)
				}
			})
		}
	}
}

// Refused requests land in the audit log with who and from where
// (changes that went through: TestTokensAcrossNodes in clustertest).
func TestAuditLogsRefusalsAndChanges(t *testing.T) {
	_, srv, secrets := authFixture(t)
	do(t, "DELETE", srv.URL+"/artifacts/myapp-1.jar", nil, map[string]string{"Authorization": "Bearer " + secrets["puller"]})
	do(t, "GET", srv.URL+"/artifacts/myapp-1.jar", nil, nil)
	do(t, "PUT", srv.URL+"/api/v1/tags/production-ready?name=myapp-1.jar", nil, map[string]string{"Authorization": "Bearer " + secrets["tagger"]})
	var got struct{ Entries []fsm.AuditEntry }
	resp, body := do(t, "GET", srv.URL+"/api/v1/audit?action=denied", nil, map[string]string{"Authorization": "Bearer " + secrets["admin"]})
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("audit: %d %v", resp.StatusCode, err)
	}
	var lines []string
	for _, e := range got.Entries {
		lines = append(lines, e.Actor+" "+e.Target+" "+e.Outcome[:3])
	}
	want := []string{"puller-owner DELETE /artifacts/myapp-1.jar 403", "anonymous GET /artifacts/myapp-1.jar 401"}
	if !slices.Equal(lines, want) {
		t.Fatalf("denials %q, want %q", lines, want)
	}
}

// The actor in histories is the token's owner, never what the client
// claims.
func TestActorComesFromTheToken(t *testing.T) {
	f, srv, secrets := authFixture(t)
	req, _ := http.NewRequest("PUT", srv.URL+"/api/v1/tags/production-ready?name=myapp-1.jar", nil)
	req.Header.Set("Authorization", "Bearer "+secrets["tagger"])
	req.Header.Set("X-Pier-Actor", "someone-else")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := f.History("myapp-1.jar")
	if len(h) != 1 || h[0].Actor != "tagger-owner" {
		t.Fatalf("history %+v, want one event by tagger-owner", h)
	}
}

// Anonymous pull is allowed where the policy says, and nowhere else.
func TestAnonymousPullPolicy(t *testing.T) {
	f, srv, _ := authFixture(t)
	if err := f.SetAccess(context.Background(), fsm.Access{AnonymousPull: []string{"myapp-*"}}, "test"); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{
		"/artifacts/myapp-1.jar":          http.StatusOK,
		"/api/v1/artifacts?prefix=myapp-": http.StatusOK,
		"/api/v1/artifacts?prefix=":       http.StatusUnauthorized,
		"/artifacts/other.jar":            http.StatusUnauthorized,
	} {
		if resp, _ := do(t, "GET", srv.URL+path, nil, nil); resp.StatusCode != want {
			t.Errorf("anonymous GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	if resp, _ := do(t, "PUT", srv.URL+"/artifacts/myapp-9.jar", strings.NewReader("x"), nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous push where pulls are open: %d", resp.StatusCode)
	}
}

// Guessing secrets from one address is cut off after a burst of failures,
// even for a right secret sent next; other addresses are not affected.
func TestFailedAuthenticationsAreRateLimited(t *testing.T) {
	_, srv, secrets := authFixture(t)
	bearer := func(s string) map[string]string { return map[string]string{"Authorization": "Bearer " + s} }
	for i := range authFailBurst {
		if resp, _ := do(t, "GET", srv.URL+"/api/v1/status", nil, bearer(fmt.Sprintf("pier_guess%d", i))); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, resp.StatusCode)
		}
	}
	resp, _ := do(t, "GET", srv.URL+"/api/v1/status", nil, bearer(secrets["admin"]))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("after %d failures: %d, want 429 with Retry-After", authFailBurst, resp.StatusCode)
	}
	// Basic auth with the same wrong secret counts too.
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:wrong"))
	if resp, _ := do(t, "GET", srv.URL+"/api/v1/status", nil, map[string]string{"Authorization": basic}); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("basic after the burst: %d", resp.StatusCode)
	}
}
