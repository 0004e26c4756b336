package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/pier-registry/pier/transport/apiclient"
)

// retentionCmd is `pier retention set|ls|rm|run`.
func (c *cli) retentionCmd(fs *flag.FlagSet) func(context.Context, []string) error {
	server := c.serverFlag(fs)
	prefix := fs.String("prefix", "", "set, rm: the policy's name `prefix` (empty: every artifact)")
	keepLast := fs.Int("keep-last", 0, "set: keep the `N` newest artifacts under the prefix")
	maxAge := fs.String("max-age", "", "set: delete artifacts older than this, e.g. 90d (with --keep-last: only beyond the N newest)")
	var protect stringList
	fs.Var(&protect, "protect-tag", "set: never delete artifacts with this `tag` (repeatable)")
	dryRun := fs.Bool("dry-run", false, "set, run: print what would be deleted, and change nothing")
	output := fs.String("o", "table", "output: table or json")
	return func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return usagef("retention takes one subcommand: set, ls, rm or run")
		}
		if *output != "table" && *output != "json" {
			return usagef("-o takes table or json")
		}
		client, err := c.client(*server)
		if err != nil {
			return err
		}
		switch args[0] {
		case "set":
			p := apiclient.RetentionPolicy{Prefix: *prefix, KeepLast: *keepLast, MaxAge: *maxAge, ProtectTags: protect}
			if *dryRun {
				ds, err := client.RunRetention(ctx, true, &p)
				if err != nil {
					return err
				}
				return c.printDeletions(ds, *output, true)
			}
			if err := client.SetRetention(ctx, p); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "retention policy for %q set; the leader applies it every --retention-interval (pier retention run applies it now)\n", *prefix)
			return nil
		case "ls":
			ps, err := client.RetentionPolicies(ctx)
			if err != nil {
				return err
			}
			if *output == "json" {
				return c.printJSON(ps)
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "PREFIX\tKEEP LAST\tMAX AGE\tPROTECTED TAGS")
			for _, p := range ps {
				fmt.Fprintf(tw, "%q\t%s\t%s\t%s\n", p.Prefix, dashInt(p.KeepLast), dash(p.MaxAge), dash(strings.Join(p.ProtectTags, ",")))
			}
			return tw.Flush()
		case "rm":
			if err := client.RemoveRetention(ctx, *prefix); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "retention policy for %q removed\n", *prefix)
			return nil
		case "run":
			ds, err := client.RunRetention(ctx, *dryRun, nil)
			if err != nil {
				return err
			}
			return c.printDeletions(ds, *output, *dryRun)
		}
		return usagef("unknown retention subcommand %q: set, ls, rm or run", args[0])
	}
}

func (c *cli) printDeletions(ds []apiclient.RetentionDeletion, output string, dry bool) error {
	if output == "json" {
		return c.printJSON(ds)
	}
	verb := "deleted"
	if dry {
		verb = "would delete"
	}
	var total int64
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSIZE\tPOLICY\tWHY")
	for _, d := range ds {
		total += d.Size
		fmt.Fprintf(tw, "%s\t%s\t%q\t%s\n", d.Name, humanBytes(d.Size), d.Policy, d.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "%s %d artifacts, %s\n", verb, len(ds), humanBytes(total))
	return nil
}

func dashInt(n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}
