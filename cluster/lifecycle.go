package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pier-registry/pier/fsm"
)

// ErrLeaving marks a call that conflicts with a leave in progress.
var ErrLeaving = errors.New("node is leaving")

// Left is closed once the node has left the cluster after a Leave; the
// process that runs the node exits then.
func (n *Node) Left() <-chan struct{} { return n.left }

// Draining returns how many shards are still placed on node.
func (n *Node) Draining(node string) int {
	count := 0
	for obj := range n.fsm.AllObjects() {
		for _, p := range obj.Placement {
			if p == node {
				count++
			}
		}
	}
	return count
}

// Leave drains this node and takes it out of the cluster: it is marked
// draining in raft, the leader's repair re-homes every shard it holds (the
// shards serve reads until then), leadership moves away if it had it, it is
// marked left and removed from raft, and it leaves gossip. Pulls keep
// working throughout. Leave returns once the node is marked draining (an
// error then is the caller's to see); the rest runs on a goroutine the node
// owns, which Shutdown stops, and Left is closed at its end. A leave that
// fails on the way is logged and may be asked for again.
func (n *Node) Leave(ctx context.Context) error {
	if !n.leaving.CompareAndSwap(false, true) {
		return ErrLeaving
	}
	if err := n.setNodeState(ctx, n.cfg.ID, fsm.NodeDraining); err != nil {
		n.leaving.Store(false)
		return err
	}
	n.log.Info("draining: shards move to other nodes", "shards", n.Draining(n.cfg.ID))
	if !n.spawn(func(ctx context.Context) {
		if err := n.finishLeave(ctx); err != nil {
			n.leaving.Store(false)
			if ctx.Err() == nil {
				n.log.Error("leave failed; ask again to retry", "error", err)
			}
		}
	}) {
		n.leaving.Store(false)
		return ErrShutdown
	}
	return nil
}

// finishLeave waits for the drain, then takes the node out of raft and
// gossip and closes Left.
func (n *Node) finishLeave(ctx context.Context) error {
	if err := poll(ctx, 200*time.Millisecond, func() bool { return n.Draining(n.cfg.ID) == 0 }); err != nil {
		return fmt.Errorf("drain: %d shards left: %w", n.Draining(n.cfg.ID), err)
	}
	if n.IsLeader() {
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			return fmt.Errorf("hand leadership over: %w", err)
		}
	}
	if err := n.setNodeState(ctx, n.cfg.ID, fsm.NodeLeft); err != nil {
		return err
	}
	// The leader's reconcile removes this node from raft; wait for it to
	// happen, but a node cut off at this point leaves gossip all the same.
	wctx, cancel := context.WithTimeout(ctx, 20*n.electionTimeout())
	_ = poll(wctx, 50*time.Millisecond, func() bool { return !n.inRaft(n.cfg.ID) })
	cancel()
	if err := n.pool.Leave(5 * time.Second); err != nil {
		n.log.Warn("leave gossip", "error", err)
	}
	n.log.Info("left the cluster")
	close(n.left)
	return nil
}

// Remove evicts a node that is gone for good: it is marked left, the leader
// removes it from raft, and repair rebuilds its shards from the survivors
// without waiting for RepairAfter.
func (n *Node) Remove(ctx context.Context, id string) error {
	if id == n.cfg.ID {
		return fmt.Errorf("%w: a node cannot remove itself; use leave", fsm.ErrInvalid)
	}
	if !n.inRaft(id) && n.fsm.NodeState(id) == fsm.NodeActive {
		if _, ok := n.pool.Get(id); !ok {
			return fmt.Errorf("%w: no node %q", fsm.ErrNotFound, id)
		}
	}
	return n.setNodeState(ctx, id, fsm.NodeLeft)
}

// Join joins the gossip pool of another cluster through addrs; that
// cluster's leader then adds this node to raft. Only a node without raft
// state of its own can join: one that bootstrapped alone holds its own
// cluster's log, which the other cluster's leader would not accept.
func (n *Node) Join(ctx context.Context, addrs []string) error {
	if n.isBooted() && n.ownCluster() {
		return fmt.Errorf("%w: this node already formed its own cluster; start it with an empty data dir "+
			"and --bootstrap-expect 0 (or with --join) to join another", fsm.ErrConflict)
	}
	if _, err := n.pool.Join(addrs); err != nil {
		return fmt.Errorf("join %v: %w: %w", addrs, ErrPeerUnreachable, err)
	}
	return nil
}

// ownCluster reports whether this node's raft configuration has no other
// server in it.
func (n *Node) ownCluster() bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if s.ID != raft.ServerID(n.cfg.ID) {
			return false
		}
	}
	return true
}

// raftServers counts the servers in the raft configuration.
func (n *Node) raftServers() int {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	return len(f.Configuration().Servers)
}

func (n *Node) inRaft(id string) bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	return slices.ContainsFunc(f.Configuration().Servers, func(s raft.Server) bool { return s.ID == raft.ServerID(id) })
}

func (n *Node) setNodeState(ctx context.Context, id string, st fsm.NodeState) error {
	res, err := n.apply(ctx, fsm.Command{Op: fsm.OpSetNodeState, Node: &fsm.NodeChange{Node: id, State: st}})
	if err == nil {
		err = res.Err()
	}
	if err != nil {
		return fmt.Errorf("mark %s %s: %w", id, st, err)
	}
	n.pool.Notify()
	return nil
}
