package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pier-registry/pier/transport/apiclient"
)

// statusCmd prints the cluster's health as one node sees it.
func (c *cli) statusCmd(fs *flag.FlagSet) func(context.Context, []string) error {
	server := c.serverFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	return func(ctx context.Context, args []string) error {
		if len(args) != 0 {
			return usagef("status takes no arguments")
		}
		client, err := c.client(*server)
		if err != nil {
			return err
		}
		s, err := client.Status(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
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
}

// leaveCmd drains one node and waits until it is gone.
func (c *cli) leaveCmd(fs *flag.FlagSet) func(context.Context, []string) error {
	server := c.serverFlag(fs)
	return func(ctx context.Context, args []string) error {
		if len(args) != 0 {
			return usagef("leave takes no arguments: --server names the node that leaves")
		}
		servers := splitServers(*server)
		if len(servers) != 1 {
			return usagef("leave needs exactly one --server: the node that leaves")
		}
		node, err := c.client(servers[0])
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
}

// removeCmd evicts dead nodes.
func (c *cli) removeCmd(fs *flag.FlagSet) func(context.Context, []string) error {
	server := c.serverFlag(fs)
	return func(ctx context.Context, args []string) error {
		if len(args) == 0 {
			return usagef("remove needs the id of a node")
		}
		client, err := c.client(*server)
		if err != nil {
			return err
		}
		for _, id := range args {
			if err := client.Remove(ctx, id); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "removed %s: its shards are being rebuilt on the other nodes\n", id)
		}
		return nil
	}
}

// joinCmd makes a node join another cluster.
func (c *cli) joinCmd(fs *flag.FlagSet) func(context.Context, []string) error {
	server := c.serverFlag(fs)
	return func(ctx context.Context, args []string) error {
		if len(args) == 0 {
			return usagef("join needs the gossip address of a member of the cluster to join")
		}
		servers := splitServers(*server)
		if len(servers) != 1 {
			return usagef("join needs exactly one --server: the node that joins")
		}
		client, err := c.client(servers[0])
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
