package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pier-registry/pier/transport/apiclient"
)

// rootLong is `pier --help`'s text: where clients connect and what the exit
// statuses mean (README: The CLI says the same).
const rootLong = `Pier is a peer-to-peer artifact registry. 'pier serve' runs a node; every
other command is an HTTP client of a node's public API.

Client commands talk to --server (default $PIER_SERVER, else ` + defaultServer + `); a
comma-separated list fails over to the next node. --token (or $PIER_TOKEN) is the
access token; --ca-cert (or $PIER_CA_CERT) trusts the CA of nodes serving HTTPS.
Read commands take -o table (the default) or -o json.

Exit status:
  0  success
  1  an error (the node unreachable, a refusal other than below, a digest mismatch)
  2  usage: a mistake in the command line
  3  not found: the API answered 404 (no such artifact, token, node ...)
  4  conflict: the API answered 409 (the name holds other bytes, or was deleted),
     or pull would replace a different local file (use --force)`

// rootCmd builds the whole command tree. It is built afresh per run, so
// flag values never leak from one run to the next (tests run many).
func (c *cli) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "pier",
		Short: "Pier: a peer-to-peer artifact registry",
		Long:  rootLong,
		Example: `  pier serve --id node1 --bootstrap-expect 1 --insecure --auth=false
  pier push myapp-v1.2.3.jar --version 1.2.3 --tag staging-validated
  pier ls 'myapp-*' -o json
  pier completion bash > /etc/bash_completion.d/pier`,
		Version:           versionString(),
		SilenceErrors:     true,
		SilenceUsage:      true,
		Args:              noSubcommand,
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("a command is required")
		},
		// The default completion command is replaced by ours, which has
		// an example like every other command.
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.SetVersionTemplate("pier {{.Version}}\n")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{msg: err.Error() + singleDashHint(cmd, err)}
	})
	root.AddGroup(&cobra.Group{ID: "artifacts", Title: "Artifacts:"},
		&cobra.Group{ID: "cluster", Title: "Cluster:"},
		&cobra.Group{ID: "admin", Title: "Access and policies:"})

	add := func(group string, cmds ...*cobra.Command) {
		for _, cmd := range cmds {
			cmd.GroupID = group
			root.AddCommand(cmd)
		}
	}
	add("artifacts", c.pushCmd(), c.pullCmd(), c.lsCmd(), c.infoCmd(), c.tagCmd(true), c.tagCmd(false),
		c.rmCmd(), c.latestCmd(), c.exportCmd(), c.importCmd())
	add("cluster", serveCmd(), c.membersCmd(), c.statusCmd(), c.leaveCmd(), c.removeCmd(), c.joinCmd(),
		c.healthCmd(), c.federationCmd(), c.replicateCmd(), c.keygenCmd())
	add("admin", c.tokenCmd(), c.accessCmd(), c.retentionCmd(), c.quotaCmd(), c.auditCmd())
	root.AddCommand(c.completionCmd(root), c.versionCmd())

	root.InitDefaultHelpCmd()
	for _, cmd := range root.Commands() {
		if cmd.Name() == "help" {
			cmd.Example = "  pier help push\n  pier help token create"
		}
	}
	return root
}

// singleDashHint points a user of the old single-dash spelling (-commit,
// which pflag reads as -c -o -m ...) at the long flag it meant.
func singleDashHint(cmd *cobra.Command, err error) string {
	_, arg, ok := strings.Cut(err.Error(), "unknown shorthand flag: ")
	if !ok {
		return ""
	}
	_, word, ok := strings.Cut(arg, " in -")
	name, _, _ := strings.Cut(word, "=")
	if !ok || len(name) < 2 || cmd.Flags().Lookup(name) == nil {
		return ""
	}
	return fmt.Sprintf(" (long flags take two dashes: --%s)", name)
}

// noSubcommand refuses a word that names no command: cobra would otherwise
// run the parent with it as an argument.
func noSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q", args[0])
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return usagef("%s", msg)
}

// groupCmd makes cmd a parent of subcommands: run alone or with an unknown
// word, it is a usage error listing them.
func groupCmd(cmd *cobra.Command, subs ...*cobra.Command) *cobra.Command {
	cmd.Args = noSubcommand
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var names []string
		for _, s := range cmd.Commands() {
			names = append(names, s.Name())
		}
		return usagef("%s needs a subcommand: %s", cmd.Name(), strings.Join(names, ", "))
	}
	cmd.AddCommand(subs...)
	return cmd
}

// exactArgs, noArgs, minArgs and rangeArgs check the positional arguments
// and name what is wanted in a usage error (exit 2).
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("want %s, got %d arguments", what, len(args))
		}
		return nil
	}
}

func noArgs(_ *cobra.Command, args []string) error {
	if len(args) != 0 {
		return usagef("takes no arguments, got %q", args)
	}
	return nil
}

func minArgs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) < n {
			return usagef("want %s", what)
		}
		return nil
	}
}

func maxArgs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) > n {
			return usagef("want at most %s, got %q", what, args)
		}
		return nil
	}
}

// clientFlags declares --server, --token and --ca-cert on cmd and its
// subcommands. Their defaults come from the environment when the command
// runs (client), not when it is built, so the help text stays the same.
func (c *cli) clientFlags(cmd *cobra.Command) *cobra.Command {
	fs := cmd.PersistentFlags()
	fs.StringVar(&c.server, "server", "", "node `addresses`, comma-separated, tried in order; https://host:port for nodes serving TLS (env PIER_SERVER, default "+defaultServer+")")
	fs.StringVar(&c.token, "token", "", "access token `secret` sent with every request (env PIER_TOKEN)")
	fs.StringVar(&c.caCert, "ca-cert", "", "PEM `file` of the CA that signed the nodes' HTTPS certificates (env PIER_CA_CERT)")
	return cmd
}

// readRunE gives a read command its -o flag and a RunE that fetches its
// answer from a node (fetch: a method expression of apiclient.Client) and prints it as JSON with -o json, else through
// table.
func readRunE[T any](c *cli, cmd *cobra.Command, fetch func(*apiclient.Client, context.Context) (T, error), table func(T) error) {
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		client, err := c.client()
		if err != nil {
			return err
		}
		v, err := fetch(client, ctxOf(cmd))
		if err != nil {
			return err
		}
		if *output == "json" {
			return c.printJSON(v)
		}
		return table(v)
	}
}

// outputFlag declares -o/--output table|json on cmd, and --json, the older
// spelling of -o json that scripts may still use (hidden).
func outputFlag(cmd *cobra.Command) *string {
	out := "table"
	cmd.Flags().VarP(outputValue{&out}, "output", "o", "output `format`: table or json")
	f := cmd.Flags().VarPF(jsonAlias{&out}, "json", "", "same as -o json")
	f.NoOptDefVal = "true"
	f.Hidden = true
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return &out
}

// outputValue is -o: only table and json are accepted, so a typo is a
// usage error before anything is sent.
type outputValue struct{ p *string }

func (o outputValue) String() string { return *o.p }
func (o outputValue) Type() string   { return "format" }

func (o outputValue) Set(s string) error {
	if s != "table" && s != "json" {
		return fmt.Errorf("%q: want table or json", s)
	}
	*o.p = s
	return nil
}

// jsonAlias is --json: true selects json output.
type jsonAlias struct{ p *string }

func (j jsonAlias) String() string { return strconv.FormatBool(*j.p == "json") }
func (j jsonAlias) Type() string   { return "bool" }

func (j jsonAlias) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	if b {
		*j.p = "json"
	}
	return nil
}

func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	// Names and labels may contain &, < and >; escaping them would only
	// make the output harder to read and to grep.
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// completionCmd is `pier completion bash|zsh|fish`.
func (c *cli) completionCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "print a shell completion script",
		Long: `Prints a script that makes the shell complete pier's commands, flags and
artifact names (these are asked of --server as you type).`,
		Example: `  source <(pier completion bash)                       # this shell only
  pier completion bash > /etc/bash_completion.d/pier     # every new bash
  pier completion zsh > "${fpath[1]}/_pier"
  pier completion fish > ~/.config/fish/completions/pier.fish`,
		Args:      exactArgs(1, "one shell: bash, zsh or fish"),
		ValidArgs: []string{"bash", "zsh", "fish"},
		RunE: func(cmd *cobra.Command, args []string) error {
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(c.stdout, true)
			case "zsh":
				return root.GenZshCompletion(c.stdout)
			case "fish":
				return root.GenFishCompletion(c.stdout, true)
			}
			return usagef("unknown shell %q: bash, zsh or fish", args[0])
		},
	}
}

func (c *cli) keygenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen",
		Short: "print a new random cluster key",
		Long: `Prints 32 random bytes in base64: a value for 'pier serve --cluster-key' (every
node of a cluster needs the same key; README: Running nodes).`,
		Example: `  SECRET=$(pier keygen)
  pier serve --id node1 --cluster-key "$SECRET" --bootstrap-expect 3 --join 10.0.0.6:7946`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			key := make([]byte, 32)
			_, _ = rand.Read(key) // crypto/rand.Read never fails
			fmt.Fprintln(c.stdout, base64.StdEncoding.EncodeToString(key))
			return nil
		},
	}
}

func (c *cli) versionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "version",
		Short:   "print the version",
		Example: "  pier version\n  pier version -o json",
		Args:    noArgs,
	}
	output := outputFlag(cmd)
	cmd.RunE = func(*cobra.Command, []string) error {
		if *output == "json" {
			return c.printJSON(map[string]string{"version": pierRelease(), "go": runtime.Version(),
				"os": runtime.GOOS, "arch": runtime.GOARCH})
		}
		fmt.Fprintf(c.stdout, "pier %s\n", versionString())
		return nil
	}
	return cmd
}

func pierRelease() string {
	v := pierVersion
	if v == "dev" {
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	return v
}

func versionString() string {
	return fmt.Sprintf("%s (%s %s/%s)", pierRelease(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// completeNames completes an artifact name from the listing of --server:
// the names starting with what was typed so far.
func (c *cli) completeNames(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	client, err := c.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	page, err := client.List(ctxOf(cmd), listOptionsPrefix(toComplete))
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, a := range page.Artifacts {
		names = append(names, a.Name)
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// flagChanged reports whether the flag name was given on the command line.
func flagChanged(fs *pflag.FlagSet, name string) bool {
	f := fs.Lookup(name)
	return f != nil && f.Changed
}

// ctxOf is the command's context, never nil (tests may run a command
// without one).
func ctxOf(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}
