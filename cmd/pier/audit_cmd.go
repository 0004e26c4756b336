package main

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/pier-registry/pier/transport/apiclient"
)

// auditCmd is `pier audit`.
func (c *cli) auditCmd(fs *flag.FlagSet) func(context.Context, []string) error {
	server := c.serverFlag(fs)
	since := fs.Uint64("since", 0, "only entries after this `seq` (the seq column of an earlier run)")
	actor := fs.String("actor", "", "only entries by this actor (a token's owner, anonymous, pier)")
	action := fs.String("action", "", "only this action: push, delete, tag, untag, token, access, retention, quota, denied")
	limit := fs.Int("limit", 100, "at most this many entries (at most 1000)")
	output := fs.String("o", "table", "output: table or json")
	return func(ctx context.Context, args []string) error {
		if len(args) != 0 {
			return usagef("audit takes no arguments")
		}
		client, err := c.client(*server)
		if err != nil {
			return err
		}
		es, err := client.Audit(ctx, apiclient.AuditQuery{Since: *since, Actor: *actor, Action: *action, Limit: *limit})
		if err != nil {
			return err
		}
		if *output == "json" {
			return c.printJSON(es)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tSOURCE\tACTION\tTARGET\tDETAIL\tOUTCOME")
		for _, e := range es {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.UTC().Format(time.RFC3339), e.Actor,
				dash(e.Source), e.Action, dash(e.Target), dash(e.Detail), e.Outcome)
		}
		return tw.Flush()
	}
}
