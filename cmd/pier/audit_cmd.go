package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/pier-registry/pier/transport/apiclient"
)

// auditCmd is `pier audit`.
func (c *cli) auditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "show the audit log",
		Long: `Prints who pushed, deleted, tagged, changed tokens, access, retention or quotas, from
which address, when and with what outcome, and the requests refused for bad or missing
credentials, oldest first. The log is the same on every node (it comes from raft) and keeps
the newest 100,000 entries of the last 90 days. Follow it: pass the last SEQ seen as
--since. Needs the admin scope.`,
		Example: `  pier audit --action denied --limit 20
  pier audit --actor build-bot --since 1200 -o json`,
		Args: noArgs,
	}
	c.clientFlags(cmd)
	fs := cmd.Flags()
	since := fs.Uint64("since", 0, "only entries after this `seq` (the seq column of an earlier run)")
	actor := fs.String("actor", "", "only entries by this actor (a token's owner, anonymous, pier)")
	action := fs.String("action", "", "only this action: push, delete, tag, untag, token, access, retention, quota, denied")
	limit := fs.Int("limit", 100, "at most this many entries (at most 1000)")
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		client, err := c.client()
		if err != nil {
			return err
		}
		es, err := client.Audit(ctxOf(cmd), apiclient.AuditQuery{Since: *since, Actor: *actor, Action: *action, Limit: *limit})
		if err != nil {
			return err
		}
		if *output == "json" {
			return c.printJSON(es)
		}
		t := newTable("SEQ", "TIME", "ACTOR", "SOURCE", "ACTION", "TARGET", "DETAIL", "OUTCOME")
		for _, e := range es {
			t.row(fmt.Sprint(e.Seq), e.Time.UTC().Format(time.RFC3339), e.Actor,
				dash(e.Source), e.Action, dash(e.Target), dash(e.Detail), e.Outcome)
		}
		return t.write(c.stdout)
	}
	return cmd
}
