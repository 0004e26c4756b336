package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/pier-registry/pier/transport/apiclient"
)

// federationCmd is `pier federation join|status`.
func (c *cli) federationCmd(fs *flag.FlagSet) func(context.Context, []string) error {
	server := c.serverFlag(fs)
	output := fs.String("o", "table", "status: table or json")
	return func(ctx context.Context, args []string) error {
		if len(args) == 0 {
			return usagef("federation takes a subcommand: join ADDR[,ADDR...] or status")
		}
		if *output != "table" && *output != "json" {
			return usagef("-o takes table or json")
		}
		client, err := c.client(*server)
		if err != nil {
			return err
		}
		switch args[0] {
		case "join":
			addrs := splitAddrs(strings.Join(args[1:], ","))
			if len(addrs) == 0 {
				return usagef("federation join takes the WAN address (host:port) of a node of another datacenter")
			}
			if err := client.FederationJoin(ctx, addrs); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "joined the WAN pool through %s\n", strings.Join(addrs, ", "))
			return nil
		case "status":
			if len(args) != 1 {
				return usagef("federation status takes no arguments")
			}
			st, err := client.FederationStatus(ctx)
			if err != nil {
				return err
			}
			if *output == "json" {
				return c.printJSON(st)
			}
			return c.printFederation(st)
		}
		return usagef("unknown federation subcommand %q: join or status", args[0])
	}
}

func (c *cli) printFederation(st apiclient.FederationStatus) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "DATACENTER\tREACHABLE\tLAG ARTIFACTS\tLAG BYTES\tLAG SECONDS\tCHECKPOINT\tERRORS\tCONFLICTS\n")
	for _, r := range st.Remotes {
		fmt.Fprintf(tw, "%s\t%v\t%d\t%s\t%.1f\t%d/%d\t%d\t%d\n", r.Datacenter, r.Reachable, r.LagArtifacts,
			humanBytes(r.LagBytes), r.LagSeconds, r.Checkpoint, r.Head, r.Errors, len(r.Conflicts))
	}
	if err := tw.Flush(); err != nil {
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
func (c *cli) replicateCmd(fs *flag.FlagSet) func(context.Context, []string) error {
	server := c.serverFlag(fs)
	from := fs.String("from", "", "add, rm: the source `datacenter`")
	to := fs.String("to", "", "add, rm: the target `datacenter`")
	prefix := fs.String("prefix", "", "add, rm: only names starting with `prefix`")
	tag := fs.String("tag", "", "add, rm: only artifacts carrying `tag` (copied as soon as they get it)")
	output := fs.String("o", "table", "ls: table or json")
	return func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return usagef("replicate takes one subcommand: add, ls or rm")
		}
		client, err := c.client(*server)
		if err != nil {
			return err
		}
		rule := apiclient.ReplicationRule{From: *from, To: *to, Prefix: *prefix, Tag: *tag}
		switch args[0] {
		case "add", "rm":
			if rule.From == "" || rule.To == "" {
				return usagef("replicate %s needs --from and --to", args[0])
			}
			if err := client.SetReplicationRule(ctx, rule, args[0] == "add"); err != nil {
				return err
			}
			verb := "added"
			if args[0] == "rm" {
				verb = "removed"
			}
			fmt.Fprintf(c.stdout, "rule %s: %s -> %s, prefix %q, tag %q\n", verb, rule.From, rule.To, rule.Prefix, rule.Tag)
			return nil
		case "ls":
			rules, err := client.ReplicationRules(ctx)
			if err != nil {
				return err
			}
			if *output == "json" {
				return c.printJSON(rules)
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "FROM\tTO\tPREFIX\tTAG")
			for _, r := range rules {
				fmt.Fprintf(tw, "%s\t%s\t%q\t%s\n", r.From, r.To, r.Prefix, dash(r.Tag))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(rules) == 0 {
				fmt.Fprintln(c.stderr, "no rules here: every datacenter copies everything from every other (rules stored in another datacenter apply too)")
			}
			return nil
		}
		return usagef("unknown replicate subcommand %q: add, ls or rm", args[0])
	}
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
