package fsm

import (
	"strings"
	"testing"
	"time"
)

func tokenCmd(name string, hash byte, expect uint64, scopes ...string) Command {
	return Command{Op: OpPutToken, Time: t0, PutToken: &PutToken{Expect: expect, Token: Token{
		Name: name, Owner: "alice", Scopes: scopes, Hash: strings.Repeat(string(hash), 64), Created: t0,
	}}}
}

func TestTokensCreateRotateRevoke(t *testing.T) {
	f := New()
	r := apply(t, f, 1, tokenCmd("ci", 'a', 0, "push:myapp-*", "pull"), tokenCmd("ci", 'b', 0, "pull"))
	if r[0].Status != StatusCreated || r[1].Status != StatusConflict {
		t.Fatalf("create, create again: %s, %s", r[0].Status, r[1].Status)
	}
	tok, ok := f.Token("ci")
	if !ok || tok.Gen != 1 || !tok.Grants(ActionPush, "myapp-1.jar") || tok.Grants(ActionPush, "other.jar") || !tok.Grants(ActionPull, "x") {
		t.Fatalf("token after create: %+v", tok)
	}

	rot := tokenCmd("ci", 'c', tok.Gen, "push:myapp-*", "pull")
	rot.PutToken.Token.PrevHash, rot.PutToken.Token.PrevUntil = tok.Hash, t0.Add(time.Hour)
	stale := tokenCmd("ci", 'd', tok.Gen, "admin")
	r = apply(t, f, 3, rot, stale)
	if r[0].Status != StatusUpdated || r[1].Status != StatusConflict {
		t.Fatalf("rotate, rotate from the same generation: %s, %s", r[0].Status, r[1].Status)
	}
	for _, h := range []byte{'a', 'c'} {
		if got, ok := f.TokenByHash(strings.Repeat(string(h), 64)); !ok || got.Name != "ci" {
			t.Fatalf("secret %c does not find the rotated token", h)
		}
	}
	if _, ok := f.TokenByHash(strings.Repeat("d", 64)); ok {
		t.Fatal("the losing rotation's secret works")
	}

	r = apply(t, f, 5, Command{Op: OpRevokeToken, Time: t0, RevokeToken: &RevokeToken{Name: "ci"}},
		Command{Op: OpRevokeToken, Time: t0, RevokeToken: &RevokeToken{Name: "ci"}})
	if r[0].Status != StatusDeleted || r[1].Status != StatusNotFound {
		t.Fatalf("revoke, revoke again: %s, %s", r[0].Status, r[1].Status)
	}
	if _, ok := f.TokenByHash(strings.Repeat("c", 64)); ok {
		t.Fatal("a revoked token still authenticates")
	}
}

func TestTokensAndAccessSurviveSnapshot(t *testing.T) {
	f := New()
	apply(t, f, 1, tokenCmd("ci", 'a', 0, "pull:*"), tokenCmd("admin", 'b', 0, "admin"),
		Command{Op: OpSetAccess, Time: t0, Access: &Access{AnonymousPull: []string{"public-*"}}})
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// A frozen snapshot does not see later changes.
	apply(t, f, 4, Command{Op: OpRevokeToken, Time: t0, RevokeToken: &RevokeToken{Name: "ci"}})
	g := restored(t, snap)
	if len(g.Tokens()) != 2 {
		t.Fatalf("restored tokens %+v", g.Tokens())
	}
	if !g.Access().AllowsAnonymous(ActionPull, "public-x") || g.Access().AllowsAnonymous(ActionPull, "private") ||
		g.Access().AllowsAnonymous(ActionPush, "public-x") {
		t.Fatalf("restored access %+v", g.Access())
	}
	if len(f.Tokens()) != 1 {
		t.Fatal("the revoke did not apply to the live state")
	}
}

func TestTokenCommandValidation(t *testing.T) {
	bad := []Command{
		tokenCmd("", 'a', 0, "pull"),
		tokenCmd("has space", 'a', 0, "pull"),
		tokenCmd("ci", 'a', 0),
		tokenCmd("ci", 'a', 0, "steal:*"),
		tokenCmd("ci", 'a', 0, "pull:"),
		tokenCmd("ci", 'Z', 0, "pull"),
		{Op: OpPutToken, Time: t0},
		{Op: OpSetAccess, Time: t0, Access: &Access{AnonymousPull: []string{"a\x00"}}},
	}
	for i, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("bad command %d passed validation: %+v", i, c.PutToken)
		}
	}
	if err := tokenCmd("ci.bot-1", 'a', 0, "tag:production-ready", "delete:tmp/*").Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestScopeMatching(t *testing.T) {
	tests := []struct {
		scope, action, name string
		allows              bool
	}{
		{"pull", "pull", "anything/at.all", true},
		{"pull:*", "push", "x", false},
		{"push:myapp-*", "push", "myapp-1.2.3.jar", true},
		{"push:myapp-*", "push", "other-myapp-1", false},
		{"push:team/*.jar", "push", "team/a/b.jar", true},
		{"push:team/*.jar", "push", "team/a/b.tgz", false},
		{"push:exact.bin", "push", "exact.bin", true},
		{"push:exact.bin", "push", "exact.bin2", false},
		{"tag:production-*", "tag", "production-ready", true},
		{"admin", "delete", "x", true},
		{"push:a*b*c", "push", "aXbYbZc", true},
		{"push:a*b*c", "push", "aXbYcZ", false},
	}
	for _, tc := range tests {
		sc, err := ParseScope(tc.scope)
		if err != nil {
			t.Fatal(err)
		}
		if got := sc.Allows(tc.action, tc.name); got != tc.allows {
			t.Errorf("%s allows %s %s: %v, want %v", tc.scope, tc.action, tc.name, got, tc.allows)
		}
	}
	covers := []struct {
		scope, prefix string
		want          bool
	}{
		{"pull:*", "", true},
		{"pull:myapp-*", "myapp-", true},
		{"pull:myapp-*", "myapp-1", true},
		{"pull:myapp-*", "my", false},
		{"pull:myapp-*.jar", "myapp-", false},
		{"pull:exact", "exact", false},
	}
	for _, tc := range covers {
		sc, _ := ParseScope(tc.scope)
		if got := sc.Covers(ActionPull, tc.prefix); got != tc.want {
			t.Errorf("%s covers %q: %v, want %v", tc.scope, tc.prefix, got, tc.want)
		}
	}
}

// The first leader's admin token is issued once per cluster: a second
// bootstrap is refused even after every token is revoked, and a change of
// the access policy keeps the mark.
func TestBootstrapTokenIsIssuedOnce(t *testing.T) {
	f := New()
	boot := tokenCmd("admin", 'a', 0, "admin")
	boot.PutToken.Bootstrap = true
	again := tokenCmd("admin2", 'b', 0, "admin")
	again.PutToken.Bootstrap = true
	r := apply(t, f, 1, boot,
		Command{Op: OpSetAccess, Time: t0, Access: &Access{AnonymousPull: []string{"public-*"}}},
		Command{Op: OpRevokeToken, Time: t0, RevokeToken: &RevokeToken{Name: "admin"}},
		again)
	if r[0].Status != StatusCreated || r[3].Status != StatusConflict {
		t.Fatalf("bootstrap, bootstrap again: %s, %s", r[0].Status, r[3].Status)
	}
	if a := f.Access(); !a.Bootstrapped || len(a.AnonymousPull) != 1 {
		t.Fatalf("access %+v", a)
	}
}
