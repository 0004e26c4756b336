package fsm

import (
	"fmt"
	"strings"
)

// Actions a token's scopes grant.
const (
	ActionPull   = "pull"   // read an artifact's bytes and metadata, list, latest
	ActionPush   = "push"   // bind a name to bytes
	ActionTag    = "tag"    // add or remove a tag; the pattern is on the tag
	ActionDelete = "delete" // delete an artifact (a tombstone)
	ActionAdmin  = "admin"  // everything, tokens and cluster membership included
)

// Scope is one grant of a token: an action on the names (for tag: the tag
// names) that Pattern matches. A pattern is literal but for '*', which
// matches any run of characters, '/' included: "myapp-*", "*", "team/*.jar".
type Scope struct {
	Action  string
	Pattern string
}

// ParseScope reads "action:pattern"; "action" alone means "action:*".
func ParseScope(s string) (Scope, error) {
	action, pattern, found := strings.Cut(s, ":")
	if !found {
		pattern = "*"
	}
	switch action {
	case ActionPull, ActionPush, ActionTag, ActionDelete, ActionAdmin:
	default:
		return Scope{}, fmt.Errorf("%w: scope %q: action must be pull, push, tag, delete or admin", ErrInvalid, s)
	}
	if pattern == "" || len(pattern) > MaxNameLen {
		return Scope{}, fmt.Errorf("%w: scope %q: the pattern must have 1 to %d bytes", ErrInvalid, s, MaxNameLen)
	}
	for _, r := range pattern {
		if r < 0x20 || r == 0x7f {
			return Scope{}, fmt.Errorf("%w: scope %q: control character in the pattern", ErrInvalid, s)
		}
	}
	return Scope{Action: action, Pattern: pattern}, nil
}

func (s Scope) String() string { return s.Action + ":" + s.Pattern }

// Allows reports whether the scope grants action on name. admin grants
// every action on every name.
func (s Scope) Allows(action, name string) bool {
	if s.Action == ActionAdmin {
		return true
	}
	return s.Action == action && Match(s.Pattern, name)
}

// Covers reports whether the scope grants action on every name that
// starts with prefix: what a listing of prefix needs.
func (s Scope) Covers(action, prefix string) bool {
	if s.Action == ActionAdmin {
		return true
	}
	if s.Action != action {
		return false
	}
	// Only a pattern whose sole '*' is its end matches every extension.
	lit, ok := strings.CutSuffix(s.Pattern, "*")
	return ok && !strings.Contains(lit, "*") && strings.HasPrefix(prefix, lit)
}

// Match reports whether name matches pattern, where '*' matches any run of
// characters and everything else only itself.
func Match(pattern, name string) bool {
	// Greedy with backtracking to the last star: linear in practice, and
	// at worst len(pattern)*len(name), both bounded by MaxNameLen.
	p, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, n
			p++
		case p < len(pattern) && pattern[p] == name[n]:
			p++
			n++
		case star >= 0:
			p = star + 1
			mark++
			n = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
