package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pier-registry/pier/cmd/pier/bytesize"
	"github.com/pier-registry/pier/transport/apiclient"
)

// quotaCmd is `pier quota set|ls|rm`.
func (c *cli) quotaCmd() *cobra.Command {
	set := &cobra.Command{
		Use:   "set --prefix P [--max-bytes SIZE] [--max-count N]",
		Short: "add or replace the quota of a prefix",
		Example: `  pier quota set --prefix team-a/ --max-bytes 50G --max-count 10000
  pier quota set --prefix _oci/team/ --max-bytes 200G`,
		Args: noArgs,
	}
	prefix := set.Flags().String("prefix", "", "the quota's name `prefix`")
	maxBytes := set.Flags().String("max-bytes", "", "most bytes under the prefix, e.g. 50G (K, M, G, T: powers of 1024)")
	maxCount := set.Flags().Int64("max-count", 0, "most artifacts under the prefix")
	set.RunE = func(cmd *cobra.Command, args []string) error {
		var b int64
		if *maxBytes != "" {
			var err error
			if b, err = bytesize.Parse(*maxBytes); err != nil {
				return usagef("--max-bytes: %v", err)
			}
		}
		client, err := c.client()
		if err != nil {
			return err
		}
		if err := client.SetQuota(ctxOf(cmd), apiclient.Quota{Prefix: *prefix, MaxBytes: b, MaxCount: *maxCount}); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "quota for %q set\n", *prefix)
		return nil
	}

	rm := &cobra.Command{
		Use:     "rm --prefix P",
		Short:   "drop the quota of a prefix",
		Example: "  pier quota rm --prefix team-a/",
		Args:    noArgs,
	}
	rmPrefix := rm.Flags().String("prefix", "", "the quota's name `prefix`")
	rm.RunE = func(cmd *cobra.Command, args []string) error {
		client, err := c.client()
		if err != nil {
			return err
		}
		if err := client.RemoveQuota(ctxOf(cmd), *rmPrefix); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "quota for %q removed\n", *rmPrefix)
		return nil
	}

	ls := &cobra.Command{
		Use:     "ls",
		Short:   "list the quotas with their usage",
		Example: "  pier quota ls\n  pier quota ls -o json",
		Args:    noArgs,
	}
	readRunE(c, ls, (*apiclient.Client).Quotas, func(qs []apiclient.Quota) error {
		t := newTable("PREFIX", "BYTES", "MAX BYTES", "COUNT", "MAX COUNT")
		for _, q := range qs {
			t.row(fmt.Sprintf("%q", q.Prefix), humanBytes(q.UsedBytes), limit(q.MaxBytes, humanBytes), fmt.Sprint(q.UsedCount),
				limit(q.MaxCount, func(n int64) string { return fmt.Sprint(n) }))
		}
		return t.write(c.stdout)
	})

	cmd := &cobra.Command{
		Use:   "quota",
		Short: "bound the bytes and artifacts under a prefix",
		Long: `A push that would take a prefix over its quota gets 507 with a message naming the
quota; re-pushing bytes a name holds already takes no room. Needs the admin scope.`,
		Example: `  pier quota set --prefix team-a/ --max-bytes 50G --max-count 10000
  pier quota ls`,
	}
	return c.clientFlags(groupCmd(cmd, set, ls, rm))
}

func limit(n int64, f func(int64) string) string {
	if n == 0 {
		return "-"
	}
	return f(n)
}
