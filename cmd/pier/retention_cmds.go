package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pier-registry/pier/transport/apiclient"
)

// retentionCmd is `pier retention set|ls|rm|run`.
func (c *cli) retentionCmd() *cobra.Command {
	set := &cobra.Command{
		Use:   "set --prefix P [--keep-last N] [--max-age D] [--protect-tag T...]",
		Short: "add or replace the policy of a prefix",
		Long: `Sets the policy of a prefix (the longest matching prefix governs a name): it keeps the
--keep-last newest, and with --max-age deletes only those beyond them that are older;
artifacts with a --protect-tag are never deleted. --dry-run prints what it would delete now
and saves nothing.`,
		Example: `  pier retention set --prefix myapp- --keep-last 10 --max-age 90d --protect-tag production-ready --dry-run
  pier retention set --prefix myapp- --keep-last 10 --max-age 90d --protect-tag production-ready
  pier retention set --prefix _oci/team/ --images --keep-last 10 --protect-tag stable --untagged-max-age 7d --blob-grace 1h`,
		Args: noArgs,
	}
	var p apiclient.RetentionPolicy
	set.Flags().StringVar(&p.Prefix, "prefix", "", "the policy's name `prefix` (empty: every artifact)")
	set.Flags().IntVar(&p.KeepLast, "keep-last", 0, "keep the `N` newest artifacts under the prefix")
	set.Flags().StringVar(&p.MaxAge, "max-age", "", "delete artifacts older than this, e.g. 90d (with --keep-last: only beyond the N newest)")
	set.Flags().StringArrayVar(&p.ProtectTags, "protect-tag", nil, "never delete artifacts with this `tag` (repeatable)")
	set.Flags().BoolVar(&p.Images, "images", false, "a policy of OCI images on a prefix under _oci/: per repository, over its tagged manifests")
	set.Flags().StringVar(&p.UntaggedMaxAge, "untagged-max-age", "", "--images: delete manifests that have had no tag for this long, e.g. 7d")
	set.Flags().StringVar(&p.BlobGrace, "blob-grace", "", "--images: delete blobs no kept manifest references once this old, e.g. 1h")
	setDry := set.Flags().Bool("dry-run", false, "print what would be deleted, and change nothing")
	setOut := outputFlag(set)
	set.RunE = func(cmd *cobra.Command, args []string) error {
		client, err := c.client()
		if err != nil {
			return err
		}
		if *setDry {
			ds, err := client.RunRetention(ctxOf(cmd), true, &p)
			if err != nil {
				return err
			}
			return c.printDeletions(ds, *setOut, true)
		}
		if err := client.SetRetention(ctxOf(cmd), p); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "retention policy for %q set; the leader applies it every --retention-interval (pier retention run applies it now)\n", p.Prefix)
		return nil
	}

	ls := &cobra.Command{
		Use:     "ls",
		Short:   "list the policies",
		Example: "  pier retention ls\n  pier retention ls -o json",
		Args:    noArgs,
	}
	readRunE(c, ls, (*apiclient.Client).RetentionPolicies, func(ps []apiclient.RetentionPolicy) error {
		t := newTable("PREFIX", "KIND", "KEEP LAST", "MAX AGE", "PROTECTED TAGS", "UNTAGGED MAX AGE", "BLOB GRACE")
		for _, p := range ps {
			kind := "artifacts"
			if p.Images {
				kind = "images"
			}
			t.row(fmt.Sprintf("%q", p.Prefix), kind, dashInt(p.KeepLast), dash(p.MaxAge), dash(strings.Join(p.ProtectTags, ",")),
				dash(p.UntaggedMaxAge), dash(p.BlobGrace))
		}
		return t.write(c.stdout)
	})

	rm := &cobra.Command{
		Use:     "rm --prefix P",
		Short:   "drop the policy of a prefix",
		Example: "  pier retention rm --prefix myapp-",
		Args:    noArgs,
	}
	rmPrefix := rm.Flags().String("prefix", "", "the policy's name `prefix`")
	rm.RunE = func(cmd *cobra.Command, args []string) error {
		client, err := c.client()
		if err != nil {
			return err
		}
		if err := client.RemoveRetention(ctxOf(cmd), *rmPrefix); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "retention policy for %q removed\n", *rmPrefix)
		return nil
	}

	run := &cobra.Command{
		Use:   "run [--dry-run]",
		Short: "apply the policies now",
		Long:  `Applies every policy now (the leader also does it every --retention-interval, 1h).`,
		Example: `  pier retention run --dry-run      # what the policies delete now, and why
  pier retention run`,
		Args: noArgs,
	}
	runDry := run.Flags().Bool("dry-run", false, "print what would be deleted, and change nothing")
	runOut := outputFlag(run)
	run.RunE = func(cmd *cobra.Command, args []string) error {
		client, err := c.client()
		if err != nil {
			return err
		}
		ds, err := client.RunRetention(ctxOf(cmd), *runDry, nil)
		if err != nil {
			return err
		}
		return c.printDeletions(ds, *runOut, *runDry)
	}

	cmd := &cobra.Command{
		Use:   "retention",
		Short: "keep the newest artifacts, delete the rest",
		Long: `Retention policies, one per name prefix. Deletions are tombstones: a deleted name stays
bound to its bytes' digest forever; the bytes are reclaimed on every node once no artifact
references them. Needs the admin scope.`,
		Example: `  pier retention set --prefix myapp- --keep-last 10 --protect-tag production-ready
  pier retention run --dry-run`,
	}
	return c.clientFlags(groupCmd(cmd, set, ls, rm, run))
}

func (c *cli) printDeletions(ds []apiclient.RetentionDeletion, output string, dry bool) error {
	if output == "json" {
		if ds == nil {
			ds = []apiclient.RetentionDeletion{}
		}
		return c.printJSON(ds)
	}
	verb := "deleted"
	if dry {
		verb = "would delete"
	}
	var total int64
	t := newTable("NAME", "SIZE", "POLICY", "WHY")
	for _, d := range ds {
		total += d.Size
		t.row(d.Name, humanBytes(d.Size), fmt.Sprintf("%q", d.Policy), d.Reason)
	}
	if err := t.write(c.stdout); err != nil {
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
