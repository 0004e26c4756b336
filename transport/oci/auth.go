package oci

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/pier-registry/pier/fsm"
)

// The registry token flow (distribution's docs/spec/auth/token.md), which
// `docker login` speaks: a 401 names a realm (this node's /v2/token), the
// client fetches a bearer there with its Pier token's name and secret, and
// sends the bearer from then on. A bearer is signed by the node that
// issued it with a key derived from the cluster key, so every node can
// verify it without a raft write per login; it names the Pier token it was
// issued for, and each use looks that token up as this node has applied
// it, so revoking the token (or its expiry) ends its bearers at once.

var (
	// errBadBearer marks a bearer that is not one this cluster signed.
	errBadBearer = errors.New("invalid bearer")
	// errBearerExpired marks a bearer past its expiry, or one naming a
	// token that no longer exists: the client should fetch a new one.
	errBearerExpired = errors.New("bearer expired or revoked")
	// errInsufficientScope marks a bearer that does not grant what a
	// request needs: the client should fetch one for the challenge's scope.
	errInsufficientScope = errors.New("insufficient scope")
)

// bearerPrefix starts every bearer this package issues, so that one is
// told apart from a Pier token secret sent as a bearer, which the gate
// checks as on every other route.
const bearerPrefix = "pieroci."

// bearerKeyInfo is the HKDF info of the bearer signing key: a key of its
// own per purpose, so a bearer's MAC is never a value any other use of the
// cluster key produces.
const bearerKeyInfo = "pier oci bearer v1"

// Bounds of a token request, so a bearer stays far below header limits.
const (
	maxScopes       = 16
	defaultBearerTT = 5 * time.Minute
)

// grant is one scope of a bearer: fsm actions on a repository, or pull on
// the catalog (Type "registry", Name "catalog").
type grant struct {
	Type    string   `json:"t"`
	Name    string   `json:"n"`
	Actions []string `json:"a"`
}

// claims is what a bearer says. Token and Created name the Pier token it
// was issued for (Created tells a token made again under a revoked one's
// name apart from it); an empty Token is an anonymous bearer, which
// carries the anonymous-pull policy and nothing more.
type claims struct {
	Token   string  `json:"tok,omitempty"`
	Created int64   `json:"tc,omitempty"`
	Access  []grant `json:"acc,omitempty"`
	Issued  int64   `json:"iat"`
	Expires int64   `json:"exp"`
}

// grants reports whether the bearer allows action on name (on every name
// with prefix, which only the catalog asks). Action "" needs any bearer.
func (c claims) grants(action, name string, prefix bool) bool {
	if action == "" {
		return true
	}
	for _, g := range c.Access {
		switch {
		case prefix && name == "" && g.Type == "registry" && g.Name == "catalog":
			return slices.Contains(g.Actions, action)
		case !prefix && g.Type == "repository" && g.Name == name && slices.Contains(g.Actions, action):
			return true
		}
	}
	return false
}

// signer signs bearers with the first key and accepts any (the cluster
// key, then the keys accepted during a rotation of it).
type signer struct {
	keys [][]byte
}

func newSigner(clusterKeys []string) (*signer, error) {
	if len(clusterKeys) == 0 {
		return nil, errors.New("oci: a cluster key is required to sign bearers")
	}
	s := &signer{}
	for i, k := range clusterKeys {
		if k == "" {
			return nil, fmt.Errorf("oci: cluster key %d is empty", i)
		}
		key, err := hkdf.Key(sha256.New, []byte(k), nil, bearerKeyInfo, sha256.Size)
		if err != nil {
			return nil, fmt.Errorf("oci: derive the bearer key: %w", err)
		}
		s.keys = append(s.keys, key)
	}
	return s, nil
}

func mac(key, payload []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(payload)
	return m.Sum(nil)
}

func (s *signer) sign(c claims) (string, error) {
	p, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("oci: encode a bearer: %w", err)
	}
	enc := base64.RawURLEncoding
	return bearerPrefix + enc.EncodeToString(p) + "." + enc.EncodeToString(mac(s.keys[0], p)), nil
}

// verify checks a bearer's signature and expiry at now.
func (s *signer) verify(bearer string, now time.Time) (claims, error) {
	rest, ok := strings.CutPrefix(bearer, bearerPrefix)
	if !ok {
		return claims{}, fmt.Errorf("%w: not a registry bearer", errBadBearer)
	}
	p64, m64, ok := strings.Cut(rest, ".")
	enc := base64.RawURLEncoding
	p, err1 := enc.DecodeString(p64)
	m, err2 := enc.DecodeString(m64)
	if !ok || err1 != nil || err2 != nil {
		return claims{}, fmt.Errorf("%w: malformed", errBadBearer)
	}
	signed := false
	for _, k := range s.keys {
		if hmac.Equal(m, mac(k, p)) {
			signed = true
			break
		}
	}
	if !signed {
		return claims{}, fmt.Errorf("%w: its signature does not hold", errBadBearer)
	}
	var c claims
	if err := json.Unmarshal(p, &c); err != nil {
		return claims{}, fmt.Errorf("%w: %v", errBadBearer, err)
	}
	if !now.Before(time.Unix(0, c.Expires)) {
		return claims{}, fmt.Errorf("%w: it expired at %s", errBearerExpired, time.Unix(0, c.Expires).UTC().Format(time.RFC3339))
	}
	return c, nil
}

// parseScopes reads a token request's scope parameters (each may hold
// several, space-separated): "repository:NAME:pull,push" and
// "registry:catalog:*". Scopes it does not know, and actions other than
// pull, push, delete and "*", are left out, as the token spec allows: the
// bearer then lacks them and the registry refuses what needs them.
func parseScopes(values []string) ([]grant, error) {
	var out []grant
	for _, v := range values {
		for _, s := range strings.Fields(v) {
			typ, rest, ok1 := strings.Cut(s, ":")
			i := strings.LastIndex(rest, ":")
			if !ok1 || i < 0 {
				continue
			}
			name, acts := rest[:i], strings.Split(rest[i+1:], ",")
			g := grant{Type: typ, Name: name}
			switch {
			case typ == "repository" && validRepo(name) == nil:
				for _, a := range acts {
					switch a {
					case "pull", "push", "delete":
						g.Actions = append(g.Actions, a) // the same words as fsm's actions
					case "*":
						g.Actions = append(g.Actions, fsm.ActionPull, fsm.ActionPush, fsm.ActionDelete)
					}
				}
			case typ == "registry" && name == "catalog" && slices.Contains(acts, "*"):
				g.Actions = []string{fsm.ActionPull}
			}
			if len(g.Actions) == 0 {
				continue
			}
			slices.Sort(g.Actions)
			g.Actions = slices.Compact(g.Actions)
			if len(out) == maxScopes {
				return nil, fmt.Errorf("at most %d scopes in one token request", maxScopes)
			}
			out = append(out, g)
		}
	}
	return out, nil
}

// intersect keeps of want what tok grants: a repository's actions matched
// against the token's name patterns, the catalog only for pull on every
// name.
func intersect(want []grant, tok fsm.Token) []grant {
	var out []grant
	for _, g := range want {
		var acts []string
		for _, a := range g.Actions {
			if (g.Type == "registry" && tok.GrantsAll(a, "")) || (g.Type == "repository" && tok.Grants(a, g.Name)) {
				acts = append(acts, a)
			}
		}
		if len(acts) > 0 {
			out = append(out, grant{Type: g.Type, Name: g.Name, Actions: acts})
		}
	}
	return out
}

// tokenAnswer is the token endpoint's document: "token" for docker,
// "access_token" for OAuth2 clients, as distribution answers.
type tokenAnswer struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// issueToken answers GET /v2/token: a bearer for the requested scopes that
// the caller's credentials grant. Basic credentials are the Pier token's
// secret as the password with any user name (docker login's -u is not
// checked; the secret alone names the token), or a Pier token secret as a
// bearer. Without credentials the bearer is anonymous.
func (g *Registry) issueToken(w http.ResponseWriter, r *http.Request) {
	want, err := parseScopes(r.URL.Query()["scope"])
	if err != nil {
		writeError(w, r, http.StatusBadRequest, codeUnsupported, err.Error())
		return
	}
	c := claims{Access: want}
	if r.Header.Get("Authorization") != "" {
		auth := r
		if _, secret, ok := r.BasicAuth(); ok {
			auth = r.Clone(r.Context())
			auth.Header.Set("Authorization", "Bearer "+secret)
		}
		ar, status, err := g.gate.Authorize(auth, "", "", false)
		if err != nil {
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Basic realm="pier"`)
			}
			writeError(w, r, status, gateCode(status), err.Error())
			return
		}
		if tok, ok := g.gate.Principal(ar); ok {
			c = claims{Token: tok.Name, Created: tok.Created.UnixNano(), Access: intersect(want, tok)}
		}
	}
	now := g.now()
	c.Issued, c.Expires = now.UnixNano(), now.Add(g.bearerTTL).UnixNano()
	b, err := g.signer.sign(c)
	if err != nil {
		g.fail(w, r, err, codeUnauthorized)
		return
	}
	body, _ := json.Marshal(tokenAnswer{Token: b, AccessToken: b, ExpiresIn: int(g.bearerTTL / time.Second),
		IssuedAt: now.UTC().Format(time.RFC3339)})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// authorize is the gate of every /v2/ route: a bearer this package issued
// is verified here and its token checked by the gate as it is now; any
// other credentials (basic NAME:SECRET, a Pier secret as a bearer, a
// forged bearer, none) go to the gate as they are, which counts failures
// against the client and audits refusals.
func (g *Registry) authorize(r *http.Request, action, name string, prefix bool) (*http.Request, int, error) {
	scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	cred = strings.TrimSpace(cred)
	if !strings.EqualFold(scheme, "bearer") || !strings.HasPrefix(cred, bearerPrefix) {
		return g.gate.Authorize(r, action, name, prefix)
	}
	c, err := g.signer.verify(cred, g.now())
	switch {
	case errors.Is(err, errBearerExpired):
		return r, http.StatusUnauthorized, err
	case err != nil:
		return g.gate.Authorize(r, action, name, prefix)
	}
	if !c.grants(action, name, prefix) {
		what := action + " on " + name
		if prefix {
			what = "the catalog"
		}
		return r, http.StatusUnauthorized, fmt.Errorf("%w: the bearer does not grant %s", errInsufficientScope, what)
	}
	if c.Token == "" {
		anon := r.Clone(r.Context())
		anon.Header.Del("Authorization")
		return g.gate.Authorize(anon, action, name, prefix)
	}
	tok, ok := g.gate.Token(c.Token)
	if !ok || tok.Created.UnixNano() != c.Created {
		return r, http.StatusUnauthorized, fmt.Errorf("%w: token %s was revoked", errBearerExpired, c.Token)
	}
	return g.gate.AuthorizeToken(r, tok, action, name, prefix)
}

// challenge sets the WWW-Authenticate of a 401 on rt: the bearer realm of
// this node with the scope the route needs (what docker fetches a bearer
// for). Bearer alone: docker applies every scheme it is offered in turn,
// so with a Basic challenge too its basic header replaces the bearer.
// Basic credentials sent unasked still work, as on every route.
func challenge(w http.ResponseWriter, r *http.Request, rt route, action string, err error) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	v := fmt.Sprintf(`Bearer realm="%s://%s%stoken",service="pier"`, scheme, r.Host, Prefix)
	switch {
	case rt.kind == "catalog":
		v += `,scope="registry:catalog:*"`
	case rt.repo != "" && action != "":
		acts := action
		if action == fsm.ActionPush {
			acts = "pull,push" // what docker asks for a push
		}
		v += fmt.Sprintf(`,scope="repository:%s:%s"`, rt.repo, acts)
	}
	switch {
	case errors.Is(err, errInsufficientScope):
		v += `,error="insufficient_scope"`
	case errors.Is(err, errBearerExpired):
		v += `,error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", v)
}

// gateCode is the spec code of a refusal's status.
func gateCode(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return codeUnauthorized
	case http.StatusTooManyRequests:
		return codeTooManyRequests
	}
	return codeDenied
}
