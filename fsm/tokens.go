package fsm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"time"
)

// MaxTokenNameLen bounds a token's name, which is also the user name of
// HTTP basic authentication.
const MaxTokenNameLen = 64

// Token is an access token as the cluster stores it: the secret itself is
// never stored, only its SHA-256 (secrets are 32 random bytes, so a fast
// hash is enough; a password hash would only slow every request). During
// a rotation's grace period the previous secret's hash works too.
type Token struct {
	Name   string   `json:"name"`
	Owner  string   `json:"owner"`
	Scopes []string `json:"scopes"`
	// Hash is the hex SHA-256 of the secret.
	Hash string `json:"hash"`
	// PrevHash is the hash of the secret before the last rotation, valid
	// until PrevUntil.
	PrevHash  string    `json:"prev_hash,omitempty"`
	PrevUntil time.Time `json:"prev_until,omitzero"`
	// Expires is when the token stops working; zero: never.
	Expires time.Time `json:"expires,omitzero"`
	Created time.Time `json:"created"`
	Rotated time.Time `json:"rotated,omitzero"`
	// Gen is the raft index of the token's last change: a rotation names
	// the generation it replaces, so two rotations cannot both win.
	Gen uint64 `json:"gen"`
}

// Grants reports whether one of the token's scopes allows action on name.
func (t Token) Grants(action, name string) bool {
	for _, s := range t.Scopes {
		if sc, err := ParseScope(s); err == nil && sc.Allows(action, name) {
			return true
		}
	}
	return false
}

// GrantsAll reports whether the token may do action on every name under
// prefix.
func (t Token) GrantsAll(action, prefix string) bool {
	for _, s := range t.Scopes {
		if sc, err := ParseScope(s); err == nil && sc.Covers(action, prefix) {
			return true
		}
	}
	return false
}

// PutToken creates a token (Expect 0: the name must be free) or replaces
// the token whose generation is Expect (a rotation).
type PutToken struct {
	Token  Token  `json:"token"`
	Expect uint64 `json:"expect,omitempty"`
	// Bootstrap marks the admin token the first leader of a cluster with
	// authentication on issues. There is one per cluster, ever: once issued,
	// revoking every token does not bring another.
	Bootstrap bool `json:"bootstrap,omitempty"`
}

// RevokeToken deletes a token: from the entry's application on, no node
// accepts its secrets.
type RevokeToken struct {
	Name string `json:"name"`
}

// Access is the cluster's access policy beyond tokens.
type Access struct {
	// AnonymousPull lists name patterns anyone may pull without a token.
	AnonymousPull []string `json:"anonymous_pull,omitempty"`
	// Bootstrapped says the bootstrap admin token was issued (PutToken).
	Bootstrapped bool `json:"bootstrapped,omitempty"`
}

// AllowsAnonymous reports whether anyone may do action on name.
func (a Access) AllowsAnonymous(action, name string) bool {
	if action != ActionPull {
		return false
	}
	for _, p := range a.AnonymousPull {
		if Match(p, name) {
			return true
		}
	}
	return false
}

// AllowsAnonymousAll reports whether anyone may pull every name under
// prefix.
func (a Access) AllowsAnonymousAll(action, prefix string) bool {
	if action != ActionPull {
		return false
	}
	for _, p := range a.AnonymousPull {
		if (Scope{Action: ActionPull, Pattern: p}).Covers(ActionPull, prefix) {
			return true
		}
	}
	return false
}

// tokens holds the cluster's tokens by name. There are few, and they change
// rarely: every change makes a new map, so a frozen state shares the old.
type tokens map[string]*Token

func (s *state) putToken(index uint64, c Command) Result {
	p := c.PutToken
	cur, exists := s.tokens[p.Token.Name]
	switch {
	case p.Expect == 0 && exists:
		return Result{Status: StatusConflict, Message: fmt.Sprintf("token %s exists", p.Token.Name)}
	case p.Expect != 0 && !exists:
		return Result{Status: StatusNotFound, Message: "token " + p.Token.Name}
	case p.Expect != 0 && cur.Gen != p.Expect:
		return Result{Status: StatusConflict, Message: fmt.Sprintf("token %s changed meanwhile", p.Token.Name)}
	}
	if p.Bootstrap {
		if s.access != nil && s.access.Bootstrapped {
			return Result{Status: StatusConflict, Message: "the bootstrap admin token was issued already"}
		}
		a := Access{Bootstrapped: true}
		if s.access != nil {
			a.AnonymousPull = s.access.AnonymousPull
		}
		s.access = &a
	}
	t := p.Token
	t.Scopes = slices.Clone(t.Scopes)
	t.Gen = index
	next := maps.Clone(s.tokens)
	if next == nil {
		next = tokens{}
	}
	next[t.Name] = &t
	s.tokens = next
	if exists {
		return Result{Status: StatusUpdated, Message: t.Name}
	}
	return Result{Status: StatusCreated, Message: t.Name}
}

func (s *state) revokeToken(c Command) Result {
	name := c.RevokeToken.Name
	if _, ok := s.tokens[name]; !ok {
		return Result{Status: StatusNotFound, Message: "token " + name}
	}
	next := maps.Clone(s.tokens)
	delete(next, name)
	s.tokens = next
	return Result{Status: StatusDeleted, Message: name}
}

func (s *state) setAccess(c Command) Result {
	a := *c.Access
	a.AnonymousPull = slices.Clone(a.AnonymousPull)
	// Only a bootstrap token sets the mark, and nothing clears it.
	a.Bootstrapped = s.access != nil && s.access.Bootstrapped
	s.access = &a
	return Result{Status: StatusUpdated}
}

func validateToken(p *PutToken) error {
	if p == nil {
		return fmt.Errorf("%w: token command without body", ErrInvalid)
	}
	t := p.Token
	if err := ValidateTokenName(t.Name); err != nil {
		return err
	}
	if t.Owner == "" || len(t.Owner) > MaxActorLen {
		return fmt.Errorf("%w: token owner must have 1 to %d bytes", ErrInvalid, MaxActorLen)
	}
	if len(t.Scopes) == 0 {
		return fmt.Errorf("%w: token %s has no scope", ErrInvalid, t.Name)
	}
	for _, s := range t.Scopes {
		if _, err := ParseScope(s); err != nil {
			return err
		}
	}
	if !validObjectID(t.Hash) || (t.PrevHash != "" && !validObjectID(t.PrevHash)) {
		return fmt.Errorf("%w: token hashes are 64 lowercase hex digits", ErrInvalid)
	}
	return nil
}

// ValidateTokenName checks a token's name: 1 to 64 letters, digits, '.',
// '_' or '-'.
func ValidateTokenName(name string) error {
	if name == "" || len(name) > MaxTokenNameLen {
		return fmt.Errorf("%w: token name must have 1 to %d characters", ErrInvalid, MaxTokenNameLen)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%w: token name %q: only letters, digits, '.', '_' and '-'", ErrInvalid, name)
		}
	}
	return nil
}

func validateRevoke(r *RevokeToken) error {
	if r == nil {
		return fmt.Errorf("%w: revoke command without body", ErrInvalid)
	}
	return ValidateTokenName(r.Name)
}

func validateAccess(a *Access) error {
	if a == nil {
		return fmt.Errorf("%w: access command without body", ErrInvalid)
	}
	for _, p := range a.AnonymousPull {
		if _, err := ParseScope(ActionPull + ":" + p); err != nil {
			return err
		}
	}
	return nil
}

// HashSecret is how a token's secret is stored and looked up: the hex
// SHA-256 of the whole secret string.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Token returns the token called name.
func (f *FSM) Token(name string) (Token, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t, ok := f.s.tokens[name]
	if !ok {
		return Token{}, false
	}
	return *t, true
}

// Tokens lists the tokens by name.
func (f *FSM) Tokens() []Token {
	f.mu.RLock()
	ts := f.s.tokens
	f.mu.RUnlock()
	out := make([]Token, 0, len(ts))
	for _, name := range slices.Sorted(maps.Keys(ts)) {
		out = append(out, *ts[name])
	}
	return out
}

// Access is the cluster's access policy.
func (f *FSM) Access() Access {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.s.access == nil {
		return Access{}
	}
	return *f.s.access
}

// TokenByHash returns the token one of whose secrets hashes to hash (the
// current one, or the previous one before PrevUntil is checked by the
// caller, who knows the time).
func (f *FSM) TokenByHash(hash string) (Token, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, t := range f.s.tokens {
		if t.Hash == hash || (t.PrevHash != "" && t.PrevHash == hash) {
			return *t, true
		}
	}
	return Token{}, false
}
