package oci

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pier-registry/pier/fsm"
)

// tokenGate is httpapi's gate in small: tokens by secret, basic
// NAME:SECRET or a bearer secret, no anonymous access, 401 for bad
// credentials and 403 for a scope the token lacks. Tests revoke and make
// tokens while the registry serves.
type tokenGate struct {
	mu     sync.Mutex
	tokens map[string]fsm.Token // by secret
	now    func() time.Time
}

type principalCtx struct{}

func (g *tokenGate) put(secret string, t fsm.Token) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tokens[secret] = t
}

func (g *tokenGate) revoke(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for s, t := range g.tokens {
		if t.Name == name {
			delete(g.tokens, s)
		}
	}
}

func (g *tokenGate) Authorize(r *http.Request, action, name string, prefix bool) (*http.Request, int, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return r, 401, fmt.Errorf("this needs a token")
	}
	user, secret, basic := r.BasicAuth()
	if !basic {
		secret = strings.TrimPrefix(h, "Bearer ")
	}
	g.mu.Lock()
	tok, ok := g.tokens[secret]
	g.mu.Unlock()
	if !ok || (user != "" && user != tok.Name) {
		return r, 401, fmt.Errorf("unknown or revoked token")
	}
	return g.AuthorizeToken(r, tok, action, name, prefix)
}

func (g *tokenGate) AuthorizeToken(r *http.Request, tok fsm.Token, action, name string, prefix bool) (*http.Request, int, error) {
	r = r.WithContext(context.WithValue(r.Context(), principalCtx{}, tok))
	switch {
	case !tok.Expires.IsZero() && !g.now().Before(tok.Expires):
		return r, 401, fmt.Errorf("token %s expired", tok.Name)
	case action == "", prefix && tok.GrantsAll(action, name), !prefix && tok.Grants(action, name):
		return r, 0, nil
	}
	return r, 403, fmt.Errorf("token %s may not %s on %s", tok.Name, action, name)
}

func (g *tokenGate) Token(name string) (fsm.Token, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, t := range g.tokens {
		if t.Name == name {
			return t, true
		}
	}
	return fsm.Token{}, false
}

func (g *tokenGate) Principal(r *http.Request) (fsm.Token, bool) {
	t, ok := r.Context().Value(principalCtx{}).(fsm.Token)
	return t, ok
}

func (g *tokenGate) Actor(r *http.Request) string {
	if t, ok := g.Principal(r); ok {
		return t.Owner
	}
	return "anonymous"
}

func (g *tokenGate) AdmitBody(w http.ResponseWriter, r *http.Request) (func(), func() bool, int, error) {
	return func() {}, func() bool { return false }, 0, nil
}

// clock is a test's time, moved by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fetchBearer asks the token endpoint for scopes with basic user:secret
// ("" for none) and returns the status and the bearer.
func (e *env) fetchBearer(user, secret string, scopes ...string) (int, string) {
	e.t.Helper()
	q := url.Values{"service": {"pier"}, "scope": scopes}
	h := map[string]string{}
	if secret != "" {
		h["Authorization"] = "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+secret))
	}
	a := e.do("GET", "/v2/token?"+q.Encode(), nil, h)
	if a.status != http.StatusOK {
		return a.status, ""
	}
	var ta tokenAnswer
	if err := json.Unmarshal(a.body, &ta); err != nil || ta.Token == "" || ta.AccessToken != ta.Token || ta.ExpiresIn != 300 {
		e.t.Fatalf("token answer: %v %s", err, a.body)
	}
	if _, err := time.Parse(time.RFC3339, ta.IssuedAt); err != nil {
		e.t.Fatalf("issued_at: %v", err)
	}
	return a.status, ta.Token
}

func bearer(b string) map[string]string { return map[string]string{"Authorization": "Bearer " + b} }

// TestBearerFlow follows docker's token flow against a gate with tokens:
// the challenge, the token endpoint's refusals, and a bearer granting only
// what was asked and what its token has, for as long as both hold.
func TestBearerFlow(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	created := clk.now().Add(-time.Hour)
	gate := &tokenGate{tokens: map[string]fsm.Token{
		"ci-secret": {Name: "ci", Owner: "build-bot", Scopes: []string{"push:myapp*", "pull:myapp*"}, Created: created},
		"ro-secret": {Name: "ro", Owner: "reader", Scopes: []string{"pull:*"}, Created: created},
	}, now: clk.now}
	e := newEnv(t, gate, func(c *Config) { c.Now = clk.now; c.ClusterKeys = []string{"key-b", "key-a"} })
	host := strings.TrimPrefix(e.srv.URL, "http://")
	realm := `Bearer realm="http://` + host + `/v2/token",service="pier"`
	blob := []byte("layer")
	upload := "/v2/myapp/blobs/uploads/?digest=" + dg(blob).String()

	// No credentials: 401 and the challenge with the route's scope.
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/v2/", realm},
		{"GET", "/v2/myapp/manifests/v1", realm + `,scope="repository:myapp:pull"`},
		{"POST", upload, realm + `,scope="repository:myapp:pull,push"`},
		{"DELETE", "/v2/myapp/manifests/" + dg(blob).String(), realm + `,scope="repository:myapp:delete"`},
		{"GET", "/v2/_catalog", realm + `,scope="registry:catalog:*"`},
	} {
		a := e.do(tc.method, tc.path, nil, nil)
		if a.status != 401 || a.code(t) != codeUnauthorized || a.header.Values("WWW-Authenticate")[0] != tc.want {
			t.Fatalf("%s %s without credentials: %d %q %s", tc.method, tc.path, a.status, a.header.Values("WWW-Authenticate"), a.body)
		}
	}
	// The token endpoint refuses a wrong secret, and answers one with any
	// user name (docker login's -u).
	if st, _ := e.fetchBearer("ci", "wrong", "repository:myapp:pull"); st != 401 {
		t.Fatalf("wrong secret: %d", st)
	}
	_, ciBearer := e.fetchBearer("whoever", "ci-secret", "repository:myapp:pull,push")
	_, ciOther := e.fetchBearer("ci", "ci-secret", "repository:other:pull,push")
	_, roBearer := e.fetchBearer("ro", "ro-secret", "repository:myapp:pull,push", "registry:catalog:*")
	_, ciCatalog := e.fetchBearer("ci", "ci-secret", "registry:catalog:*")
	_, anon := e.fetchBearer("", "", "repository:myapp:pull")

	var err error
	forged := []byte(ciBearer)
	forged[len(forged)-2] ^= 1
	signers := map[string]*signer{}
	for _, k := range []string{"key-a", "key-b", "another-cluster"} {
		if signers[k], err = newSigner([]string{k}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := signers["key-b"].verify(ciBearer, clk.now())
	if err != nil {
		t.Fatalf("the registry signs with its first key: %v", err)
	}
	alien, _ := signers["another-cluster"].sign(c)
	rotated, _ := signers["key-a"].sign(c)

	for _, tc := range []struct {
		name         string
		method, path string
		bearer       string
		status       int
		code         string
		challenge    string // a part the challenge must have
	}{
		{"the bearer logs in", "GET", "/v2/", ciBearer, 200, "", ""},
		{"the bearer pushes", "POST", upload, ciBearer, 201, "", ""},
		{"the bearer pulls", "GET", "/v2/myapp/blobs/" + dg(blob).String(), ciBearer, 200, "", ""},
		{"bearer for myapp on other", "GET", "/v2/other/blobs/" + dg(blob).String(), ciBearer, 401, codeUnauthorized, `scope="repository:other:pull",error="insufficient_scope"`},
		{"bearer without delete", "DELETE", "/v2/myapp/blobs/" + dg(blob).String(), ciBearer, 401, codeUnauthorized, `error="insufficient_scope"`},
		{"scope the token lacks is left out", "GET", "/v2/other/blobs/" + dg(blob).String(), ciOther, 401, codeUnauthorized, `error="insufficient_scope"`},
		{"pull-only token pulls", "GET", "/v2/myapp/blobs/" + dg(blob).String(), roBearer, 200, "", ""},
		{"pull-only token cannot push", "POST", upload, roBearer, 401, codeUnauthorized, `error="insufficient_scope"`},
		{"catalog with pull on all", "GET", "/v2/_catalog", roBearer, 200, "", ""},
		{"catalog without pull on all", "GET", "/v2/_catalog", ciCatalog, 401, codeUnauthorized, `error="insufficient_scope"`},
		{"anonymous bearer: the gate's anonymous policy", "GET", "/v2/myapp/blobs/" + dg(blob).String(), anon, 401, codeUnauthorized, ""},
		{"forged bearer", "GET", "/v2/", string(forged), 401, codeUnauthorized, ""},
		{"bearer of another cluster", "GET", "/v2/", alien, 401, codeUnauthorized, ""},
		{"bearer signed with an accepted key", "GET", "/v2/myapp/blobs/" + dg(blob).String(), rotated, 200, "", ""},
	} {
		var body io.Reader
		if tc.method == "POST" {
			body = bytes.NewReader(blob)
		}
		a := e.do(tc.method, tc.path, body, bearer(tc.bearer))
		if a.status != tc.status || (tc.code != "" && a.code(t) != tc.code) ||
			!strings.Contains(strings.Join(a.header.Values("WWW-Authenticate"), "\n"), tc.challenge) {
			t.Fatalf("%s: %d %q %s", tc.name, a.status, a.header.Values("WWW-Authenticate"), a.body)
		}
	}

	// Revoking the token ends its bearers; a token made again under its
	// name does not revive them.
	gate.revoke("ci")
	for _, step := range []string{"revoked", "made again"} {
		a := e.do("GET", "/v2/myapp/blobs/"+dg(blob).String(), nil, bearer(ciBearer))
		if a.status != 401 || a.code(t) != codeUnauthorized || !strings.Contains(a.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("bearer of a %s token: %d %q %s", step, a.status, a.header.Values("WWW-Authenticate"), a.body)
		}
		gate.put("ci-secret-2", fsm.Token{Name: "ci", Owner: "build-bot", Scopes: []string{"push:myapp*", "pull:myapp*"}, Created: clk.now()})
	}
	// A bearer works until its expiry, and not at it.
	clk.add(defaultBearerTT - time.Second)
	if a := e.do("GET", "/v2/myapp/blobs/"+dg(blob).String(), nil, bearer(roBearer)); a.status != 200 {
		t.Fatalf("bearer before its expiry: %d %s", a.status, a.body)
	}
	clk.add(time.Second)
	if a := e.do("GET", "/v2/myapp/blobs/"+dg(blob).String(), nil, bearer(roBearer)); a.status != 401 || a.code(t) != codeUnauthorized ||
		!strings.Contains(a.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("expired bearer: %d %q %s", a.status, a.header.Values("WWW-Authenticate"), a.body)
	}
	// A token's own expiry ends its bearers too (the gate's check).
	gate.put("exp-secret", fsm.Token{Name: "exp", Scopes: []string{"pull:*"}, Created: created, Expires: clk.now().Add(time.Minute)})
	_, expBearer := e.fetchBearer("exp", "exp-secret", "repository:myapp:pull")
	clk.add(time.Minute)
	if a := e.do("GET", "/v2/myapp/blobs/"+dg(blob).String(), nil, bearer(expBearer)); a.status != 401 {
		t.Fatalf("bearer of an expired token: %d %s", a.status, a.body)
	}
}

func TestParseScopes(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []grant
	}{
		{nil, nil},
		{[]string{"repository:a/b:pull,push"}, []grant{{"repository", "a/b", []string{"pull", "push"}}}},
		{[]string{"repository:a:push,pull,pull repository:b:*"}, []grant{
			{"repository", "a", []string{"pull", "push"}}, {"repository", "b", []string{"delete", "pull", "push"}}}},
		{[]string{"registry:catalog:*", "repository:a:pull"}, []grant{{"registry", "catalog", []string{"pull"}}, {"repository", "a", []string{"pull"}}}},
		{[]string{"repository:Bad:pull", "repository:a:frobnicate", "repository:a", "nonsense", "repository(plugin):a:pull"}, nil},
	} {
		got, err := parseScopes(tc.in)
		if err != nil || !slices.EqualFunc(got, tc.want, func(a, b grant) bool {
			return a.Type == b.Type && a.Name == b.Name && slices.Equal(a.Actions, b.Actions)
		}) {
			t.Errorf("parseScopes(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	many := strings.Repeat("repository:a:pull ", maxScopes+1)
	if _, err := parseScopes([]string{many}); err == nil {
		t.Errorf("%d scopes accepted", maxScopes+1)
	}
}
