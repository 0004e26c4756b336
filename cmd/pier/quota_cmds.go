package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/pier-registry/pier/transport/apiclient"
)

// quotaCmd is `pier quota set|ls|rm`.
func (c *cli) quotaCmd(fs *flag.FlagSet) func(context.Context, []string) error {
	server := c.serverFlag(fs)
	prefix := fs.String("prefix", "", "set, rm: the quota's name `prefix`")
	maxBytes := fs.String("max-bytes", "", "set: most bytes under the prefix, e.g. 50G (K, M, G, T: powers of 1024)")
	maxCount := fs.Int64("max-count", 0, "set: most artifacts under the prefix")
	output := fs.String("o", "table", "output: table or json")
	return func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return usagef("quota takes one subcommand: set, ls or rm")
		}
		client, err := c.client(*server)
		if err != nil {
			return err
		}
		switch args[0] {
		case "set":
			b, err := parseBytes(*maxBytes)
			if err != nil {
				return usagef("--max-bytes: %v", err)
			}
			if err := client.SetQuota(ctx, apiclient.Quota{Prefix: *prefix, MaxBytes: b, MaxCount: *maxCount}); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "quota for %q set\n", *prefix)
			return nil
		case "rm":
			if err := client.RemoveQuota(ctx, *prefix); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "quota for %q removed\n", *prefix)
			return nil
		case "ls":
			qs, err := client.Quotas(ctx)
			if err != nil {
				return err
			}
			if *output == "json" {
				return c.printJSON(qs)
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "PREFIX\tBYTES\tMAX BYTES\tCOUNT\tMAX COUNT")
			for _, q := range qs {
				fmt.Fprintf(tw, "%q\t%s\t%s\t%d\t%s\n", q.Prefix, humanBytes(q.UsedBytes), limit(q.MaxBytes, humanBytes), q.UsedCount,
					limit(q.MaxCount, func(n int64) string { return fmt.Sprint(n) }))
			}
			return tw.Flush()
		}
		return usagef("unknown quota subcommand %q: set, ls or rm", args[0])
	}
}

func limit(n int64, f func(int64) string) string {
	if n == 0 {
		return "-"
	}
	return f(n)
}

// parseBytes reads 512, 10K, 64M, 50G, 2T (powers of 1024); "" is 0.
func parseBytes(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	mult := int64(1)
	u := strings.ToUpper(strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(s), "B"), "I"))
	if u != "" {
		switch u[len(u)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			u = u[:len(u)-1]
		}
	}
	n, err := strconv.ParseInt(u, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q: want a size such as 50G", s)
	}
	return n * mult, nil
}
