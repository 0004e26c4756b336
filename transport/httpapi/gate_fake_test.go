package httpapi

import (
	"context"
	"sync"
	"time"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
)

// fakeGate keeps tokens in a real state machine, fed commands directly as
// cluster.Node's token methods commit them through raft.
type fakeGate struct {
	mu  sync.Mutex
	f   *fsm.FSM
	idx uint64
	now time.Time // the proposer's clock; zero: time.Now
}

func (g *fakeGate) apply(c fsm.Command) (fsm.Result, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.idx++
	c.V, c.Time = fsm.CommandVersion, g.clock()
	if err := c.Validate(); err != nil {
		return fsm.Result{}, err
	}
	r := g.f.ApplyCommand(g.idx, c)
	return r, r.Err()
}

func (g *fakeGate) clock() time.Time {
	if g.now.IsZero() {
		return time.Now()
	}
	return g.now
}

func (g *fakeGate) TokenByHash(hash string) (fsm.Token, bool) { return g.f.TokenByHash(hash) }
func (g *fakeGate) Access() fsm.Access                        { return g.f.Access() }
func (g *fakeGate) Tokens() []fsm.Token                       { return g.f.Tokens() }

func (g *fakeGate) CreateToken(ctx context.Context, spec cluster.TokenSpec, actor string) (fsm.Token, string, error) {
	secret, err := cluster.NewSecret()
	if err != nil {
		return fsm.Token{}, "", err
	}
	t := fsm.Token{Name: spec.Name, Owner: spec.Owner, Scopes: spec.Scopes, Hash: fsm.HashSecret(secret), Created: g.clock()}
	if spec.TTL > 0 {
		t.Expires = g.clock().Add(spec.TTL)
	}
	r, err := g.apply(fsm.Command{Op: fsm.OpPutToken, Actor: actor, PutToken: &fsm.PutToken{Token: t}})
	t.Gen = r.Index
	return t, secret, err
}

func (g *fakeGate) RotateToken(ctx context.Context, name string, grace time.Duration, actor string) (fsm.Token, string, error) {
	cur, ok := g.f.Token(name)
	if !ok {
		return fsm.Token{}, "", fsm.ErrNotFound
	}
	secret, err := cluster.NewSecret()
	if err != nil {
		return fsm.Token{}, "", err
	}
	t := cur
	t.Hash, t.PrevHash, t.PrevUntil, t.Rotated = fsm.HashSecret(secret), cur.Hash, g.clock().Add(grace), g.clock()
	_, err = g.apply(fsm.Command{Op: fsm.OpPutToken, Actor: actor, PutToken: &fsm.PutToken{Token: t, Expect: cur.Gen}})
	return t, secret, err
}

func (g *fakeGate) RevokeToken(ctx context.Context, name, actor string) error {
	_, err := g.apply(fsm.Command{Op: fsm.OpRevokeToken, Actor: actor, RevokeToken: &fsm.RevokeToken{Name: name}})
	return err
}

func (g *fakeGate) SetAccess(ctx context.Context, a fsm.Access, actor string) error {
	_, err := g.apply(fsm.Command{Op: fsm.OpSetAccess, Actor: actor, Access: &a})
	return err
}

func (g *fakeGate) AuditDenial(e fsm.AuditEntry) {
	g.apply(fsm.Command{Op: fsm.OpAuditDenials, Actor: "pier", Denials: &fsm.AuditDenials{Entries: []fsm.AuditEntry{e}}})
}

func (g *fakeGate) Audit(q fsm.AuditQuery) []fsm.AuditEntry { return g.f.Audit(q) }
