package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pier-registry/pier/transport/apiclient"
)

// federationCmd is `pier federation join|status`.
func (c *cli) federationCmd() *cobra.Command {
	join := &cobra.Command{
		Use:   "join ADDR[,ADDR...]",
		Short: "link this datacenter to another one",
		Long: `Makes the answering node contact a node of another datacenter on its --wan-addr; the
two datacenters then copy each other's artifacts. Needs a node started with --wan-addr.`,
		Example: `  pier federation join 10.0.2.11:7947
  pier federation join 10.0.2.11:7947,10.0.2.12:7947 --server 10.0.1.5:8081`,
		Args: minArgs(1, "the WAN address (host:port) of a node of another datacenter"),
		RunE: func(cmd *cobra.Command, args []string) error {
			addrs := splitAddrs(strings.Join(args, ","))
			if len(addrs) == 0 {
				return usagef("federation join takes the WAN address (host:port) of a node of another datacenter")
			}
			client, err := c.client()
			if err != nil {
				return err
			}
			if err := client.FederationJoin(ctxOf(cmd), addrs); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "joined the WAN pool through %s\n", strings.Join(addrs, ", "))
			return nil
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "show how replication from each other datacenter stands",
		Long: `Per other datacenter: reachable, lag (artifacts, bytes, seconds), checkpoint/head,
errors, and conflicts (a name bound to different bytes on each side, never overwritten).`,
		Example: `  pier federation status
  pier federation status --server 127.0.0.1:18091 -o json`,
		Args: noArgs,
	}
	output := outputFlag(status)
	status.RunE = func(cmd *cobra.Command, args []string) error {
		client, err := c.client()
		if err != nil {
			return err
		}
		st, err := client.FederationStatus(ctxOf(cmd))
		if err != nil {
			return err
		}
		if *output == "json" {
			return c.printJSON(st)
		}
		return c.printFederation(st)
	}
	cmd := &cobra.Command{
		Use:   "federation",
		Short: "link this datacenter to others, and see how replication stands",
		Long: `Links datacenters (each its own cluster) over WAN gossip, and reports replication.
Needs a node started with --wan-addr, and the admin scope.`,
		Example: `  pier federation join 10.0.2.11:7947
  pier federation status`,
	}
	return c.clientFlags(groupCmd(cmd, join, status))
}

func (c *cli) printFederation(st apiclient.FederationStatus) error {
	t := newTable("DATACENTER", "REACHABLE", "LAG ARTIFACTS", "LAG BYTES", "LAG SECONDS", "CHECKPOINT", "ERRORS", "CONFLICTS")
	for _, r := range st.Remotes {
		t.row(r.Datacenter, fmt.Sprint(r.Reachable), fmt.Sprint(r.LagArtifacts), humanBytes(r.LagBytes),
			fmt.Sprintf("%.1f", r.LagSeconds), fmt.Sprintf("%d/%d", r.Checkpoint, r.Head), fmt.Sprint(r.Errors), fmt.Sprint(len(r.Conflicts)))
	}
	if err := t.write(c.stdout); err != nil {
		return err
	}
	for _, r := range st.Remotes {
		for _, cf := range r.Conflicts {
			fmt.Fprintf(c.stdout, "conflict with %s: %s is %s here, %s there\n", r.Datacenter, cf.Name, cf.LocalDigest, cf.RemoteDigest)
		}
		if r.LastError != "" {
			fmt.Fprintf(c.stderr, "%s: last error: %s\n", r.Datacenter, r.LastError)
		}
	}
	if len(st.Remotes) == 0 {
		fmt.Fprintf(c.stderr, "%s sees no other datacenter in the WAN pool\n", st.Datacenter)
	}
	return nil
}

// replicateCmd is `pier replicate add|ls|rm`.
func (c *cli) replicateCmd() *cobra.Command {
	var rule apiclient.ReplicationRule
	ruleFlags := func(cmd *cobra.Command) {
		fs := cmd.Flags()
		fs.StringVar(&rule.From, "from", "", "the source `datacenter`")
		fs.StringVar(&rule.To, "to", "", "the target `datacenter`")
		fs.StringVar(&rule.Prefix, "prefix", "", "only names starting with `prefix`")
		fs.StringVar(&rule.Tag, "tag", "", "only artifacts carrying `tag` (copied as soon as they get it)")
	}
	change := func(add bool) func(cmd *cobra.Command, args []string) error {
		return func(cmd *cobra.Command, args []string) error {
			if rule.From == "" || rule.To == "" {
				return usagef("needs --from and --to")
			}
			client, err := c.client()
			if err != nil {
				return err
			}
			if err := client.SetReplicationRule(ctxOf(cmd), rule, add); err != nil {
				return err
			}
			verb := "added"
			if !add {
				verb = "removed"
			}
			fmt.Fprintf(c.stdout, "rule %s: %s -> %s, prefix %q, tag %q\n", verb, rule.From, rule.To, rule.Prefix, rule.Tag)
			return nil
		}
	}
	add := &cobra.Command{
		Use:     "add --from DC --to DC [--prefix P] [--tag T]",
		Short:   "add a replication rule",
		Example: "  pier replicate add --from dc1 --to dc2 --tag production-ready\n  pier replicate add --from dc1 --to dc2 --prefix team/",
		Args:    noArgs,
		RunE:    change(true),
	}
	ruleFlags(add)
	rm := &cobra.Command{
		Use:     "rm --from DC --to DC [--prefix P] [--tag T]",
		Short:   "remove a replication rule",
		Example: "  pier replicate rm --from dc1 --to dc2 --tag production-ready",
		Args:    noArgs,
		RunE:    change(false),
	}
	ruleFlags(rm)
	ls := &cobra.Command{
		Use:     "ls",
		Short:   "list the replication rules",
		Example: "  pier replicate ls\n  pier replicate ls -o json",
		Args:    noArgs,
	}
	readRunE(c, ls, (*apiclient.Client).ReplicationRules, func(rules []apiclient.ReplicationRule) error {
		t := newTable("FROM", "TO", "PREFIX", "TAG")
		for _, r := range rules {
			t.row(r.From, r.To, fmt.Sprintf("%q", r.Prefix), dash(r.Tag))
		}
		if err := t.write(c.stdout); err != nil {
			return err
		}
		if len(rules) == 0 {
			fmt.Fprintln(c.stderr, "no rules here: every datacenter copies everything from every other (rules stored in another datacenter apply too)")
		}
		return nil
	})
	cmd := &cobra.Command{
		Use:   "replicate",
		Short: "choose what each datacenter copies from the others",
		Long: `With no rule naming a datacenter as target it copies everything from every other one;
with rules, only what they name (a tag rule copies an artifact as soon as it gets the tag).
A rule may be added in either datacenter. Needs the admin scope.`,
		Example: `  pier replicate add --from dc1 --to dc2 --tag production-ready
  pier replicate ls`,
	}
	return c.clientFlags(groupCmd(cmd, add, ls, rm))
}

// splitAddrs splits a comma-separated list of addresses.
func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}
