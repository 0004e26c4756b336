package cluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pier-registry/pier/fsm"
)

// SecretPrefix starts every token secret, so a secret pasted where it does
// not belong is recognisable (and secret scanners can find it).
const SecretPrefix = "pier_"

// AdminTokenFile is the file in the data dir where the leader that issued
// the cluster's bootstrap admin token wrote its secret.
const AdminTokenFile = "admin.token"

// NewSecret returns a fresh token secret: SecretPrefix and 32 random bytes
// in URL-safe base64.
func NewSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("token secret: %w", err)
	}
	return SecretPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// TokenSpec is what a client asks for in a new token.
type TokenSpec struct {
	Name   string
	Owner  string
	Scopes []string
	// TTL is how long the token works; 0: until revoked.
	TTL time.Duration
}

// Tokens lists the cluster's tokens as this node has applied them.
func (n *Node) Tokens() []fsm.Token { return n.fsm.Tokens() }

// TokenByHash finds the token one of whose secrets hashes to hash.
func (n *Node) TokenByHash(hash string) (fsm.Token, bool) { return n.fsm.TokenByHash(hash) }

// Access is the cluster's access policy as this node has applied it.
func (n *Node) Access() fsm.Access { return n.fsm.Access() }

// CreateToken makes a token and returns it with its secret, which is
// stored nowhere: only its hash is.
func (n *Node) CreateToken(ctx context.Context, spec TokenSpec, actor string) (fsm.Token, string, error) {
	secret, err := NewSecret()
	if err != nil {
		return fsm.Token{}, "", err
	}
	now := n.cfg.Now().UTC()
	t := fsm.Token{Name: spec.Name, Owner: spec.Owner, Scopes: spec.Scopes, Hash: fsm.HashSecret(secret), Created: now}
	if spec.TTL > 0 {
		t.Expires = now.Add(spec.TTL)
	}
	t, err = n.putToken(ctx, fsm.PutToken{Token: t}, actor)
	return t, secret, err
}

// RotateToken gives a token a new secret; the old one keeps working for
// grace (0: not at all).
func (n *Node) RotateToken(ctx context.Context, name string, grace time.Duration, actor string) (fsm.Token, string, error) {
	if err := n.Barrier(ctx); err != nil {
		return fsm.Token{}, "", err
	}
	cur, ok := n.fsm.Token(name)
	if !ok {
		return fsm.Token{}, "", fmt.Errorf("%w: token %s", fsm.ErrNotFound, name)
	}
	secret, err := NewSecret()
	if err != nil {
		return fsm.Token{}, "", err
	}
	now := n.cfg.Now().UTC()
	t := cur
	t.Hash, t.Rotated = fsm.HashSecret(secret), now
	t.PrevHash, t.PrevUntil = "", time.Time{}
	if grace > 0 {
		t.PrevHash, t.PrevUntil = cur.Hash, now.Add(grace)
	}
	t, err = n.putToken(ctx, fsm.PutToken{Token: t, Expect: cur.Gen}, actor)
	return t, secret, err
}

// RevokeToken deletes a token everywhere.
func (n *Node) RevokeToken(ctx context.Context, name, actor string) error {
	res, err := n.apply(ctx, fsm.Command{Op: fsm.OpRevokeToken, Actor: actor, RevokeToken: &fsm.RevokeToken{Name: name}})
	if err != nil {
		return err
	}
	return res.Err()
}

// SetAccess replaces the cluster's access policy.
func (n *Node) SetAccess(ctx context.Context, a fsm.Access, actor string) error {
	res, err := n.apply(ctx, fsm.Command{Op: fsm.OpSetAccess, Actor: actor, Access: &a})
	if err != nil {
		return err
	}
	return res.Err()
}

func (n *Node) putToken(ctx context.Context, p fsm.PutToken, actor string) (fsm.Token, error) {
	res, err := n.apply(ctx, fsm.Command{Op: fsm.OpPutToken, Actor: actor, PutToken: &p})
	if err != nil {
		return fsm.Token{}, err
	}
	if err := res.Err(); err != nil {
		return fsm.Token{}, err
	}
	t := p.Token
	t.Gen = res.Index
	return t, nil
}

// issueAdminToken runs on the leader: in a cluster with authentication on
// that never had its admin token, it issues one and leaves the secret in
// this node's data dir. The secret is written before the commit, and the
// same secret is offered on every try, so that a commit whose answer was
// lost still matches the file. Another leader that finds the token issued
// does nothing; the mark is in raft, so revoking every token later does not
// bring a new admin token.
func (n *Node) issueAdminToken() {
	if !n.cfg.IssueAdminToken || n.fsm.Access().Bootstrapped {
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, 5*n.electionTimeout())
	defer cancel()
	// A new leader may not have applied the whole log yet.
	if err := n.Barrier(ctx); err != nil || n.fsm.Access().Bootstrapped {
		return
	}
	path := filepath.Join(n.cfg.DataDir, AdminTokenFile)
	if n.adminSecret == "" {
		secret, err := NewSecret()
		if err != nil {
			n.log.Error("admin token", "error", err)
			return
		}
		if err := writeSecret(path, secret); err != nil {
			n.log.Error("admin token: cannot write its secret; not issued", "path", path, "error", err)
			return
		}
		n.adminSecret = secret
	}
	t := fsm.Token{Name: "admin", Owner: "admin", Scopes: []string{fsm.ActionAdmin}, Hash: fsm.HashSecret(n.adminSecret), Created: n.cfg.Now().UTC()}
	_, err := n.putToken(ctx, fsm.PutToken{Token: t, Bootstrap: true}, "pier")
	switch {
	case err == nil:
		n.log.Info("issued the cluster's admin token; its secret is in this node's data dir (mode 0600)", "path", path)
	case errors.Is(err, fsm.ErrConflict):
		// Issued meanwhile, by this try (a lost answer) or another leader.
	default:
		n.log.Warn("admin token: not issued yet; will retry", "error", err)
	}
}

func writeSecret(path, secret string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(secret+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
