package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pier-registry/pier/transport/apiclient"
)

// tokenCmd is `pier token create|ls|revoke|rotate`.
func (c *cli) tokenCmd(fs *flag.FlagSet) func(context.Context, []string) error {
	server := c.serverFlag(fs)
	name := fs.String("name", "", "create: the token's `name` (letters, digits, . _ -)")
	owner := fs.String("owner", "", "create: who the token belongs to, as histories and the audit log show it (default: the name)")
	var scopes stringList
	fs.Var(&scopes, "scope", "create: a grant, `action[:pattern]` (repeatable): pull, push, tag, delete, admin")
	ttl := fs.String("ttl", "", "create: how long the token works, e.g. 90d or 12h (default: until revoked)")
	grace := fs.String("grace", "", "rotate: how long the old secret keeps working, e.g. 24h (default: not at all)")
	output := fs.String("o", "table", "output: table or json")
	return func(ctx context.Context, args []string) error {
		if len(args) == 0 {
			return usagef("token needs a subcommand: create, ls, revoke or rotate")
		}
		if *output != "table" && *output != "json" {
			return usagef("-o takes table or json")
		}
		client, err := c.client(*server)
		if err != nil {
			return err
		}
		switch sub, rest := args[0], args[1:]; sub {
		case "create":
			if len(rest) != 0 || *name == "" || len(scopes) == 0 {
				return usagef("token create takes --name and at least one --scope, and no arguments")
			}
			t, err := client.CreateToken(ctx, apiclient.TokenRequest{Name: *name, Owner: *owner, Scopes: scopes, TTL: *ttl})
			if err != nil {
				return err
			}
			return c.printSecret(t, *output)
		case "rotate":
			if len(rest) != 1 {
				return usagef("token rotate takes one NAME")
			}
			t, err := client.RotateToken(ctx, rest[0], *grace)
			if err != nil {
				return err
			}
			return c.printSecret(t, *output)
		case "revoke":
			if len(rest) != 1 {
				return usagef("token revoke takes one NAME")
			}
			if err := client.RevokeToken(ctx, rest[0]); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "revoked %s\n", rest[0])
			return nil
		case "ls":
			if len(rest) != 0 {
				return usagef("token ls takes no arguments")
			}
			ts, err := client.Tokens(ctx)
			if err != nil {
				return err
			}
			if *output == "json" {
				return c.printJSON(ts)
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tOWNER\tSCOPES\tCREATED\tEXPIRES\tOLD SECRET UNTIL")
			for _, t := range ts {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Owner, strings.Join(t.Scopes, ","),
					t.Created.UTC().Format(time.RFC3339), when(t.Expires), when(t.GraceEnds))
			}
			return tw.Flush()
		default:
			return usagef("unknown token subcommand %q: create, ls, revoke or rotate", sub)
		}
	}
}

// printSecret shows a new secret: the only time anyone sees it.
func (c *cli) printSecret(t apiclient.Token, output string) error {
	if output == "json" {
		return c.printJSON(struct {
			Name    string     `json:"name"`
			Secret  string     `json:"secret"`
			Scopes  []string   `json:"scopes"`
			Expires *time.Time `json:"expires"`
		}{t.Name, t.Secret, t.Scopes, t.Expires})
	}
	fmt.Fprintln(c.stdout, t.Secret)
	fmt.Fprintf(c.stderr, "token %s (%s), expires %s: the secret above is shown only now\n", t.Name, strings.Join(t.Scopes, ","), when(t.Expires))
	return nil
}

func when(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

// accessCmd is `pier access [anonymous-pull --prefix P ... | --none]`.
func (c *cli) accessCmd(fs *flag.FlagSet) func(context.Context, []string) error {
	server := c.serverFlag(fs)
	var prefixes stringList
	fs.Var(&prefixes, "prefix", "anonymous-pull: names starting with `P` may be pulled without a token (repeatable)")
	none := fs.Bool("none", false, "anonymous-pull: nobody pulls without a token")
	return func(ctx context.Context, args []string) error {
		client, err := c.client(*server)
		if err != nil {
			return err
		}
		var a apiclient.Access
		switch {
		case len(args) == 0:
			if a, err = client.Access(ctx); err != nil {
				return err
			}
		case len(args) == 1 && args[0] == "anonymous-pull":
			if (len(prefixes) == 0) == !*none {
				return usagef("access anonymous-pull takes --prefix P (repeatable) or --none")
			}
			want := apiclient.Access{AnonymousPull: []string{}}
			for _, p := range prefixes {
				want.AnonymousPull = append(want.AnonymousPull, p+"*")
			}
			if a, err = client.SetAccess(ctx, want); err != nil {
				return err
			}
		default:
			return usagef("access takes no arguments, or anonymous-pull")
		}
		if len(a.AnonymousPull) == 0 {
			fmt.Fprintln(c.stdout, "anonymous pull: nowhere")
			return nil
		}
		fmt.Fprintf(c.stdout, "anonymous pull: %s\n", strings.Join(a.AnonymousPull, ", "))
		return nil
	}
}
