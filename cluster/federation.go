package cluster

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/pier-registry/pier/cluster/federation"
	"github.com/pier-registry/pier/cluster/objects"
	"github.com/pier-registry/pier/fsm"
)

// Federation (cluster/federation): the node's side of it. The WAN pool and
// the replicator live in that package; here are what it asks of the node
// (a write path that keeps an artifact's origin and created time) and what
// the API and the peer service ask of federation.

// FeedPage is a page of this cluster's change feed as other datacenters
// read it.
type FeedPage = federation.FeedPage

// FederationStatus is how this cluster stands with one other datacenter.
type FederationStatus = federation.RemoteStatus

// FederationLag is the replicator's last view of one datacenter.
type FederationLag = federation.Lag

// ErrFederationOff marks a federation call on a node without --wan-addr.
var ErrFederationOff = federation.ErrOff

// startFederation joins the WAN pool when the node has a WAN address, and
// runs the replicator on a goroutine Shutdown waits for; it leaves the
// pool when the node stops.
func (n *Node) startFederation() error {
	if n.cfg.WANBind == "" {
		return nil
	}
	remote, ok := n.cfg.Peers.(federation.Remote)
	if !ok {
		return fmt.Errorf("federation: the peer client %T cannot read other datacenters' feeds", n.cfg.Peers)
	}
	httpAddr := n.cfg.WANHTTPAddr
	if httpAddr == "" {
		httpAddr = n.cfg.HTTPAddr
	}
	fed, err := federation.Start(federation.Config{
		ID: n.cfg.ID, Datacenter: n.cfg.Datacenter, DataDir: n.cfg.DataDir,
		Bind: n.cfg.WANBind, Advertise: n.cfg.WANAdvertise, Join: n.cfg.JoinWAN,
		HTTPAddr: httpAddr, ClusterKey: n.cfg.ClusterKey, AcceptKeys: n.cfg.AcceptKeys,
		Memberlist: n.cfg.WANGossip, Interval: n.cfg.FederationInterval, AntiEntropyInterval: n.cfg.AntiEntropyInterval,
		Local: fedLocal{n}, Remote: remote, Now: n.cfg.Now, Logger: n.log.Named("federation"),
	})
	if err != nil {
		return err
	}
	n.fed = fed
	if !n.spawn(fed.Run) {
		return ErrShutdown
	}
	return nil
}

// fedLocal is the node as the replicator sees it.
type fedLocal struct{ n *Node }

func (l fedLocal) IsLeader() bool { return l.n.IsLeader() }
func (l fedLocal) FSM() *fsm.FSM  { return l.n.fsm }
func (l fedLocal) Apply(ctx context.Context, c fsm.Command) (fsm.Result, error) {
	return l.n.apply(ctx, c)
}

func (l fedLocal) Replicate(ctx context.Context, rec fsm.FeedRecord, origin string, body io.Reader) (fsm.Artifact, error) {
	a := rec.Live
	if a == nil {
		return fsm.Artifact{}, fmt.Errorf("%w: %s is not live in %s", fsm.ErrInvalid, rec.Name, origin)
	}
	m := PushMeta{Name: a.Name, Version: a.Version, Commit: a.Commit, Labels: a.Labels, Tags: a.Tags,
		ExpectDigest: rec.Digest, Actor: "replication:" + origin}
	art, _, err := upload(ctx, replicaSteps{Node: l.n, origin: origin, created: a.Created}, m, body, nil)
	return art, err
}

// replicaSteps is a push of a copy from another datacenter: the node's own
// steps (check, store erasure-coded here, release), with a commit that
// records the origin and keeps the created time. StoreBody hashes the
// stream and refuses it unless it is the digest the feed named, so what is
// bound here is verified end to end.
type replicaSteps struct {
	*Node
	origin  string
	created time.Time
}

func (r replicaSteps) Commit(ctx context.Context, m PushMeta, s Stored) (fsm.Artifact, bool, error) {
	if err := objects.CheckDigest(s.Digest, m.ExpectDigest); err != nil {
		return fsm.Artifact{}, false, err
	}
	res, err := r.apply(ctx, fsm.Command{Op: fsm.OpPutArtifact, Actor: m.Actor, Put: &fsm.PutArtifact{
		Name: m.Name, Digest: s.Digest, Size: s.Size, Version: m.Version, Commit: m.Commit,
		Labels: m.Labels, Tags: m.Tags, Object: s.Object, Origin: r.origin, Created: r.created,
	}})
	if err != nil {
		return fsm.Artifact{}, false, err
	}
	if err := res.Err(); err != nil {
		return fsm.Artifact{}, false, err
	}
	return *res.Artifact, res.Status == fsm.StatusCreated, nil
}

// FederationFeed answers another datacenter's read of this cluster's
// feed after index after (peer service). A node behind the leader answers
// from what it has applied: a reader's checkpoint is the last index it was
// given, so it misses nothing, and gets the rest from the next read.
func (n *Node) FederationFeed(after uint64, limit int) FeedPage {
	recs, more := n.fsm.Feed(after, limit)
	return FeedPage{Datacenter: n.cfg.Datacenter, Records: recs, More: more,
		Lag: n.fsm.FeedLag(after), Rules: n.fsm.ReplicationRules()}
}

// FederationSummary answers another datacenter's anti-entropy read of a
// bucket of this cluster's state (peer service), from what this node has
// applied: a node behind the leader answers an older state, which the
// reader's next run compares again.
func (n *Node) FederationSummary(req federation.SummaryRequest) (federation.Summary, error) {
	return federation.Summarize(n.fsm, n.cfg.Datacenter, req)
}

// OpenContent opens the content of a live artifact for another
// datacenter's copy (peer service), after a read barrier when this node
// does not know the name.
func (n *Node) OpenContent(ctx context.Context, name string) (io.ReadCloser, fsm.Artifact, error) {
	a, err := n.Stat(ctx, name)
	if err != nil {
		return nil, fsm.Artifact{}, err
	}
	rc, err := n.Open(ctx, a, 0, a.Size)
	if err != nil {
		return nil, fsm.Artifact{}, err
	}
	return rc, a, nil
}

// FederationJoin contacts WAN gossip addresses of other datacenters.
func (n *Node) FederationJoin(ctx context.Context, addrs []string) (int, error) {
	if n.fed == nil {
		return 0, ErrFederationOff
	}
	return n.fed.Join(addrs)
}

// FederationStatus reports every other datacenter: reachability, lag,
// checkpoint, errors and conflicts.
func (n *Node) FederationStatus(ctx context.Context) ([]FederationStatus, error) {
	if n.fed == nil {
		return nil, ErrFederationOff
	}
	return n.fed.Status(ctx), nil
}

// FederationLags is the replicator's last view of each datacenter, for
// metrics; nil with federation off.
func (n *Node) FederationLags() []FederationLag {
	if n.fed == nil {
		return nil
	}
	return n.fed.Lags()
}

// Datacenter is the node's datacenter.
func (n *Node) Datacenter() string { return n.cfg.Datacenter }

// ReplicationRules lists the rules stored in this cluster.
func (n *Node) ReplicationRules() []fsm.ReplicationRule { return n.fsm.ReplicationRules() }

// SetReplicationRule adds (add true) or removes a replication rule.
func (n *Node) SetReplicationRule(ctx context.Context, r fsm.ReplicationRule, add bool, actor string) error {
	op := fsm.OpRmReplRule
	if add {
		op = fsm.OpSetReplRule
	}
	res, err := n.apply(ctx, fsm.Command{Op: op, Actor: actor, Fed: &fsm.FedChange{Rule: &r}})
	if err != nil {
		return err
	}
	if res.Status == fsm.StatusExists {
		return nil
	}
	if err := res.Err(); err != nil {
		return err
	}
	if n.fed != nil {
		n.fed.Wake()
	}
	return nil
}

// Origin is the datacenter name's artifact was pushed to when it came here
// by replication, pull-through or a bundle; "" for a push to this cluster.
func (n *Node) Origin(name string) string { return n.fsm.Origin(name) }
