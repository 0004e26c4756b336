package main

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pier-registry/pier/transport/apiclient"
)

// statusCmd prints the cluster's health as one node sees it.
func (c *cli) statusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "show cluster health and redundancy",
		Long: `Prints the leader, term, commit index, node and object counts, and how many objects
are fully redundant, degraded (shards missing but readable), at risk (one more loss makes
them unreadable) or unavailable; the answering node's GC and retention counters; the nodes
draining and what they still hold; HALTED when the state machine stopped at an entry.`,
		Example: `  pier status
  pier status --server 127.0.0.1:8083 -o json | jq .redundancy`,
		Args: noArgs,
	}
	c.clientFlags(cmd)
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		client, err := c.client()
		if err != nil {
			return err
		}
		s, err := client.Status(ctxOf(cmd))
		if err != nil {
			return err
		}
		if *output == "json" {
			return c.printJSON(s)
		}
		r := s.Redundancy
		fmt.Fprintf(c.stdout, "node %s, leader %s, term %d, commit index %d\n", s.Node, dash(s.Leader), s.Term, s.CommitIndex)
		if s.Halted != "" {
			fmt.Fprintf(c.stdout, "HALTED at %s\n  reads are served, writes are refused until every node runs a build that reads the entry\n", s.Halted)
		}
		fmt.Fprintf(c.stdout, "%d nodes, %d artifacts, %d objects, %s\n", s.Nodes, s.Artifacts, s.Objects, humanBytes(s.Bytes))
		fmt.Fprintf(c.stdout, "redundancy: %d full, %d degraded, %d at risk, %d unavailable\n",
			r["full"], r["degraded"], r["at_risk"], r["unavailable"])
		fmt.Fprintf(c.stdout, "reclaimed on %s: %s in %d shard files by GC; retention runs here deleted %d artifacts (%s)\n",
			s.Node, humanBytes(s.Stats["gc_removed_bytes"]), s.Stats["gc_removed"],
			s.Stats["retention_deleted"], humanBytes(s.Stats["retention_deleted_bytes"]))
		var ids []string
		for id := range s.Draining {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			fmt.Fprintf(c.stdout, "draining %s: %d shards to move\n", id, s.Draining[id])
		}
		return nil
	}
	return cmd
}

// leaveCmd drains one node and waits until it is gone.
func (c *cli) leaveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "leave --server NODE",
		Short: "drain a node and take it out of the cluster",
		Long: `Marks NODE draining, waits while every shard it holds moves to other nodes (pulls keep
working), then NODE leaves raft and gossip and its process exits. Ctrl-C stops the waiting,
not the drain.`,
		Example: `  pier leave --server 127.0.0.1:8083`,
		Args:    noArgs,
	}
	c.clientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := ctxOf(cmd)
		servers := splitServers(c.servers())
		if len(servers) != 1 {
			return usagef("leave needs exactly one --server: the node that leaves")
		}
		node, err := c.clientFor(servers[0])
		if err != nil {
			return err
		}
		before, err := node.Status(ctx)
		if err != nil {
			return err
		}
		if err := node.Leave(ctx); err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "%s is draining: its shards move to the other nodes\n", before.Node)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		last := -1
		for {
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s is still leaving (interrupted): %w", before.Node, ctx.Err())
			case <-t.C:
			}
			s, err := node.Status(ctx)
			if err != nil {
				var ue *apiclient.UnavailableError
				if errors.As(err, &ue) {
					fmt.Fprintf(c.stdout, "%s left the cluster\n", before.Node)
					return nil
				}
				return err
			}
			if left, ok := s.Draining[before.Node]; ok && left != last {
				fmt.Fprintf(c.stderr, "%d shards left on %s\n", left, before.Node)
				last = left
			}
		}
	}
	return cmd
}

// removeCmd evicts dead nodes.
func (c *cli) removeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remove ID...",
		Short: "evict dead nodes",
		Long: `Marks each node ID as gone for good: it leaves raft, and the leader rebuilds its shards
from the survivors. For a node that is alive, use 'pier leave'.`,
		Example: `  pier remove node3`,
		Args:    minArgs(1, "the id of a node"),
	}
	c.clientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		client, err := c.client()
		if err != nil {
			return err
		}
		for _, id := range args {
			if err := client.Remove(ctxOf(cmd), id); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "removed %s: its shards are being rebuilt on the other nodes\n", id)
		}
		return nil
	}
	return cmd
}

// joinCmd makes a node join another cluster.
func (c *cli) joinCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "join GOSSIP-ADDR... --server NODE",
		Short: "make a node join a cluster",
		Long: `Makes NODE join the cluster that has a member at GOSSIP-ADDR (host:port of its
--gossip-addr). NODE must not have formed a cluster of its own: start it with
--bootstrap-expect 0 and an empty data dir.`,
		Example: `  pier join 127.0.0.1:7941 --server 127.0.0.1:8084
  pier join 10.0.0.5:7946,10.0.0.6:7946 --server 10.0.0.9:8081`,
		Args: minArgs(1, "the gossip address of a member of the cluster to join"),
	}
	c.clientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := ctxOf(cmd)
		servers := splitServers(c.servers())
		if len(servers) != 1 {
			return usagef("join needs exactly one --server: the node that joins")
		}
		client, err := c.clientFor(servers[0])
		if err != nil {
			return err
		}
		var addrs []string
		for _, a := range args {
			addrs = append(addrs, splitServers(a)...)
		}
		if err := client.Join(ctx, addrs); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s joined through %s; the leader adds it to raft\n", servers[0], strings.Join(addrs, ","))
		return nil
	}
	return cmd
}

// usageCells formats a member's reported usage for the members table.
func usageCells(m apiclient.Member) (shards, used, free string) {
	shards, used, free = "-", "-", "-"
	if m.ShardFiles != nil {
		shards = fmt.Sprint(*m.ShardFiles)
	}
	if m.ShardBytes != nil {
		used = humanBytes(*m.ShardBytes)
	}
	if m.DiskFree != nil {
		free = humanBytes(*m.DiskFree)
	}
	return shards, used, free
}
