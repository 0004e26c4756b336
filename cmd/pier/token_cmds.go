package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pier-registry/pier/transport/apiclient"
)

// tokenCmd is `pier token create|ls|revoke|rotate`.
func (c *cli) tokenCmd() *cobra.Command {
	create := &cobra.Command{
		Use:   "create --name NAME --scope SCOPE...",
		Short: "issue a token and print its secret once",
		Long: `Issues a token and prints its secret: the only time anyone sees it. Scopes are pull,
push, tag (on tag names), delete and admin, each with an optional :pattern where * matches
anything (push:myapp-*, tag:production-ready).`,
		Example: `  CI=$(pier token create --name ci --owner build-bot --scope 'push:myapp-*' --scope pull --ttl 90d)
  pier token create --name release --scope tag:production-ready --scope pull -o json`,
		Args: noArgs,
	}
	name := create.Flags().String("name", "", "the token's `name` (letters, digits, . _ -)")
	owner := create.Flags().String("owner", "", "who the token belongs to, as histories and the audit log show it (default: the name)")
	scopes := create.Flags().StringArray("scope", nil, "a grant, `action[:pattern]` (repeatable): pull, push, tag, delete, admin")
	ttl := create.Flags().String("ttl", "", "how long the token works, e.g. 90d or 12h (default: until revoked)")
	createOut := outputFlag(create)
	create.RunE = func(cmd *cobra.Command, args []string) error {
		if *name == "" || len(*scopes) == 0 {
			return usagef("token create takes --name and at least one --scope")
		}
		client, err := c.client()
		if err != nil {
			return err
		}
		t, err := client.CreateToken(ctxOf(cmd), apiclient.TokenRequest{Name: *name, Owner: *owner, Scopes: *scopes, TTL: *ttl})
		if err != nil {
			return err
		}
		return c.printSecret(t, *createOut)
	}

	rotate := &cobra.Command{
		Use:   "rotate NAME",
		Short: "give a token a new secret",
		Long:  `Prints a new secret for NAME; the old one keeps working for --grace.`,
		Example: `  pier token rotate ci --grace 24h
  pier token rotate ci -o json`,
		Args: exactArgs(1, "one NAME"),
	}
	grace := rotate.Flags().String("grace", "", "how long the old secret keeps working, e.g. 24h (default: not at all)")
	rotateOut := outputFlag(rotate)
	rotate.RunE = func(cmd *cobra.Command, args []string) error {
		client, err := c.client()
		if err != nil {
			return err
		}
		t, err := client.RotateToken(ctxOf(cmd), args[0], *grace)
		if err != nil {
			return err
		}
		return c.printSecret(t, *rotateOut)
	}

	revoke := &cobra.Command{
		Use:     "revoke NAME",
		Short:   "revoke a token",
		Long:    `Revokes NAME: every node refuses it as soon as it applies the change (milliseconds).`,
		Example: `  pier token revoke ci`,
		Args:    exactArgs(1, "one NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := c.client()
			if err != nil {
				return err
			}
			if err := client.RevokeToken(ctxOf(cmd), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "revoked %s\n", args[0])
			return nil
		},
	}

	ls := &cobra.Command{
		Use:     "ls",
		Short:   "list the tokens (never their secrets)",
		Example: "  pier token ls\n  pier token ls -o json",
		Args:    noArgs,
	}
	readRunE(c, ls, (*apiclient.Client).Tokens, func(ts []apiclient.Token) error {
		t := newTable("NAME", "OWNER", "SCOPES", "CREATED", "EXPIRES", "OLD SECRET UNTIL")
		for _, tk := range ts {
			t.row(tk.Name, tk.Owner, strings.Join(tk.Scopes, ","), tk.Created.UTC().Format(time.RFC3339), when(tk.Expires), when(tk.GraceEnds))
		}
		return t.write(c.stdout)
	})

	cmd := &cobra.Command{
		Use:   "token",
		Short: "manage access tokens",
		Long: `Manages access tokens. Needs a token with the admin scope (--token, or PIER_TOKEN). The
cluster's first admin token is in the data dir of the node that issued it:
<data-dir>/admin.token.`,
		Example: `  export PIER_TOKEN=$(cat data/node*/admin.token)
  pier token create --name ci --scope 'push:myapp-*' --scope pull --ttl 90d
  pier token ls`,
	}
	return c.clientFlags(groupCmd(cmd, create, ls, revoke, rotate))
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
func (c *cli) accessCmd() *cobra.Command {
	anon := &cobra.Command{
		Use:   "anonymous-pull --prefix P... | --none",
		Short: "let anyone pull names under some prefixes",
		Long:  `Replaces the list of name prefixes anyone may pull without a token.`,
		Example: `  pier access anonymous-pull --prefix public- --prefix docs/
  pier access anonymous-pull --none`,
		Args: noArgs,
	}
	prefixes := anon.Flags().StringArray("prefix", nil, "names starting with `P` may be pulled without a token (repeatable)")
	none := anon.Flags().Bool("none", false, "nobody pulls without a token")
	anonOut := outputFlag(anon)
	anon.RunE = func(cmd *cobra.Command, args []string) error {
		if (len(*prefixes) == 0) == !*none {
			return usagef("takes --prefix P (repeatable) or --none")
		}
		client, err := c.client()
		if err != nil {
			return err
		}
		want := apiclient.Access{AnonymousPull: []string{}}
		for _, p := range *prefixes {
			want.AnonymousPull = append(want.AnonymousPull, p+"*")
		}
		a, err := client.SetAccess(ctxOf(cmd), want)
		if err != nil {
			return err
		}
		return c.printAccess(a, *anonOut)
	}
	cmd := &cobra.Command{
		Use:   "access",
		Short: "show or set who may pull without a token",
		Long:  `Prints the access policy: the name patterns anyone may pull without a token.`,
		Example: `  pier access
  pier access -o json
  pier access anonymous-pull --prefix public-`,
		Args: noSubcommand,
	}
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		client, err := c.client()
		if err != nil {
			return err
		}
		a, err := client.Access(ctxOf(cmd))
		if err != nil {
			return err
		}
		return c.printAccess(a, *output)
	}
	cmd.AddCommand(anon)
	return c.clientFlags(cmd)
}

func (c *cli) printAccess(a apiclient.Access, output string) error {
	if output == "json" {
		if a.AnonymousPull == nil {
			a.AnonymousPull = []string{}
		}
		return c.printJSON(a)
	}
	if len(a.AnonymousPull) == 0 {
		fmt.Fprintln(c.stdout, "anonymous pull: nowhere")
		return nil
	}
	fmt.Fprintf(c.stdout, "anonymous pull: %s\n", strings.Join(a.AnonymousPull, ", "))
	return nil
}
