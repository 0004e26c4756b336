// Command pier is both a Pier node (pier serve) and the command-line client
// for a Pier cluster (push, pull, ls, ...).
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"
)

// pierVersion is set at build time with -ldflags "-X main.pierVersion=v1.2.3".
var pierVersion = "dev"

// defaultServer is used when neither --server nor PIER_SERVER is given; it
// matches the default HTTP address of pier serve.
const defaultServer = "127.0.0.1:8081"

// cli holds what the commands need from the outside world, so tests can run
// them in-process with buffers instead of the real terminal and environment.
type cli struct {
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	// progress is where progress bars are drawn; nil disables them (stderr
	// is not a terminal, or in tests).
	progress io.Writer
	// termWidth reports the terminal's columns for the progress bar.
	termWidth func() int
	// gitCommit returns the HEAD commit of the git work tree containing the
	// current directory, or "" when there is none.
	gitCommit func(context.Context) string
	now       func() time.Time
	// caCert is --ca-cert: the CA file that https:// servers are checked
	// against, besides the system's.
	caCert string
	// token is --token: the secret sent as a bearer token.
	token string
}

// command is one pier subcommand.
type command struct {
	name    string
	args    string // synopsis after "pier NAME"
	summary string // one line for "pier help"
	help    string // paragraph for "pier help NAME"
	// setup declares the command's flags on fs and returns the function
	// that runs it with the positional arguments.
	setup func(c *cli, fs *flag.FlagSet) func(ctx context.Context, args []string) error
}

// commands lists the subcommands in the order "pier help" shows them.
// serve is dispatched separately because it is implemented elsewhere and
// parses its own flags.
func commands() []*command {
	return []*command{
		{name: "push", args: "FILE [--name N] [--version V] [--commit C] [--label k=v ...] [--tag t ...] [--json]",
			summary: "upload a file as an artifact",
			help: "Uploads FILE under --name (default: the file's base name). The file is hashed first and\n" +
				"the server refuses the upload if the bytes it receives do not match. --commit defaults to\n" +
				"`git rev-parse HEAD` when the current directory is inside a git work tree. Pushing the same\n" +
				"bytes again is harmless; pushing different bytes under an existing name fails.",
			setup: (*cli).pushCmd},
		{name: "pull", args: "NAME [-o FILE]",
			summary: "download an artifact",
			help: "Downloads NAME to FILE (default: NAME's base name in the current directory; '-' for stdout;\n" +
				"an existing directory receives the base name). The download goes to a temporary file that is\n" +
				"renamed into place only after its SHA-256 matches the digest the server announced.",
			setup: (*cli).pullCmd},
		{name: "ls", args: "[--prefix P] [--tag T] [--label k=v] [--json]",
			summary: "list artifacts, newest first",
			help:    "Lists every artifact matching the filters, newest first.",
			setup:   (*cli).lsCmd},
		{name: "info", args: "NAME [--history]",
			summary: "show an artifact's metadata as JSON",
			help:    "Prints NAME's metadata as JSON; --history adds the tag audit trail.",
			setup:   (*cli).infoCmd},
		{name: "tag", args: "NAME TAG [--json]",
			summary: "add a tag to an artifact",
			help:    "Adds TAG to NAME. Tagging is the only mutable part of an artifact.",
			setup:   tagSetup(true)},
		{name: "untag", args: "NAME TAG [--json]",
			summary: "remove a tag from an artifact",
			help:    "Removes TAG from NAME.",
			setup:   tagSetup(false)},
		{name: "rm", args: "NAME...",
			summary: "delete artifacts",
			help: "Deletes each NAME. A deleted name stays bound to its digest, so it can never be\n" +
				"reused for different bytes.",
			setup: (*cli).rmCmd},
		{name: "latest", args: "[--prefix P] [--tag T]",
			summary: "print the name of the newest matching artifact",
			help:    "Prints the name of the newest artifact whose name starts with P and that carries T.",
			setup:   (*cli).latestCmd},
		{name: "members", args: "[--json]",
			summary: "show cluster membership",
			help:    "Lists the cluster's nodes as seen by the node that answers.",
			setup:   (*cli).membersCmd},
		{name: "status", args: "[--json]",
			summary: "show cluster health and redundancy",
			help: "Prints the leader, term, commit index, node and object counts, and how many objects are\n" +
				"fully redundant, degraded (shards missing but readable), at risk (one more loss makes them\n" +
				"unreadable) or unavailable.",
			setup: (*cli).statusCmd},
		{name: "leave", args: "--server NODE",
			summary: "drain a node and take it out of the cluster",
			help: "Marks NODE draining, waits while every shard it holds moves to other nodes (pulls keep\n" +
				"working), then NODE leaves raft and gossip and its process exits.",
			setup: (*cli).leaveCmd},
		{name: "remove", args: "ID...",
			summary: "evict dead nodes",
			help:    "Marks each node ID as gone for good: it leaves raft and its shards are rebuilt from the survivors.",
			setup:   (*cli).removeCmd},
		{name: "join", args: "GOSSIP-ADDR... --server NODE",
			summary: "make a node join a cluster",
			help: "Makes NODE join the cluster that has a member at GOSSIP-ADDR. NODE must not have formed a\n" +
				"cluster of its own: start it with --bootstrap-expect 0 and an empty data dir.",
			setup: (*cli).joinCmd},
		{name: "health", args: "[--server ADDR] [--timeout D]",
			summary: "exit 0 when a node is ready",
			help:    "Checks one node's /readyz and exits 0 if it is ready, 1 if not: a container health check.",
			setup:   (*cli).healthCmd},
		{name: "token", args: "create|ls|revoke|rotate ...",
			summary: "manage access tokens",
			help: "  pier token create --name ci --scope push:myapp-* --scope pull --ttl 90d [--owner O] [-o json]\n" +
				"      prints the secret once; scopes are pull, push, tag (on tag names), delete, admin,\n" +
				"      each with an optional :pattern where * matches anything (push:myapp-*, tag:production-ready)\n" +
				"  pier token ls [-o json]\n" +
				"  pier token revoke NAME          refused everywhere as soon as the nodes apply it\n" +
				"  pier token rotate NAME [--grace 24h]   new secret; the old one works for the grace period\n" +
				"Needs a token with the admin scope (--token, or PIER_TOKEN). The cluster's first admin token\n" +
				"is in the data dir of the node that issued it: <data-dir>/admin.token.",
			setup: (*cli).tokenCmd},
		{name: "access", args: "[anonymous-pull --prefix P ... | --none]",
			summary: "show or set who may pull without a token",
			help: "Without arguments prints the access policy. 'pier access anonymous-pull --prefix public-' lets\n" +
				"anyone pull names starting with public- (repeat --prefix for more; --none closes it again).",
			setup: (*cli).accessCmd},
		{name: "retention", args: "set|ls|rm|run ...",
			summary: "keep the newest artifacts, delete the rest",
			help: "  pier retention set --prefix myapp- --keep-last 10 --max-age 90d --protect-tag production-ready [--dry-run]\n" +
				"      a policy per prefix (the longest matching prefix governs a name); --dry-run prints what it\n" +
				"      would delete now and saves nothing\n" +
				"  pier retention ls | rm --prefix P | run [--dry-run]\n" +
				"The leader applies the policies every --retention-interval (1h). Deletions are tombstones: a\n" +
				"deleted name stays bound to its bytes' digest forever; the bytes are reclaimed on every node\n" +
				"once no artifact references them. Needs the admin scope.",
			setup: (*cli).retentionCmd},
		{name: "quota", args: "set|ls|rm ...",
			summary: "bound the bytes and artifacts under a prefix",
			help: "  pier quota set --prefix team-a/ --max-bytes 50G --max-count 10000\n" +
				"  pier quota ls | rm --prefix P\n" +
				"A push that would take a prefix over its quota gets 507 with a message naming the quota;\n" +
				"re-pushing bytes a name holds already takes no room. Needs the admin scope.",
			setup: (*cli).quotaCmd},
		{name: "federation", args: "join ADDR[,ADDR...] | status [-o json]",
			summary: "link this datacenter to others, and see how replication stands",
			help: "  pier federation join 10.0.2.11:7947   contact a node of another datacenter on its --wan-addr\n" +
				"  pier federation status                per other datacenter: reachable, lag (artifacts, bytes,\n" +
				"                                        seconds), checkpoint/head, errors, conflicts\n" +
				"Needs a node started with --wan-addr, and the admin scope.",
			setup: (*cli).federationCmd},
		{name: "replicate", args: "add|ls|rm --from DC --to DC [--prefix P] [--tag T]",
			summary: "choose what each datacenter copies from the others",
			help: "  pier replicate add --from dc1 --to dc2 --tag production-ready\n" +
				"  pier replicate ls | rm --from dc1 --to dc2 [--prefix P] [--tag T]\n" +
				"With no rule naming a datacenter as target it copies everything from every other one. A rule\n" +
				"may be added in either datacenter. Needs the admin scope.",
			setup: (*cli).replicateCmd},
		{name: "audit", args: "[--since SEQ] [--actor A] [--action X] [--limit N] [-o json]",
			summary: "show the audit log",
			help: "Prints who pushed, deleted, tagged, changed tokens, access, retention or quotas, from which\n" +
				"address, when and with what outcome, and the requests refused for bad or missing credentials,\n" +
				"oldest first. The log is the same on every node (it comes from raft) and keeps the newest\n" +
				"100,000 entries of the last 90 days. Follow it: pass the last SEQ seen as --since. Needs admin.",
			setup: (*cli).auditCmd},
		{name: "keygen", args: "",
			summary: "print a new random cluster key",
			help: "Prints 32 random bytes in base64: a value for `pier serve --cluster-key` (every node of a\n" +
				"cluster needs the same key; README: Running nodes).",
			setup: (*cli).keygenCmd},
		{name: "version", args: "",
			summary: "print the version",
			help:    "Prints pier's version.",
			setup:   (*cli).versionCmd},
	}
}

func main() {
	args := os.Args[1:]
	// serve installs its own signal handling; a handler installed here
	// would swallow Ctrl-C if it did not.
	if len(args) > 0 && args[0] == "serve" {
		if err := runServe(args[1:]); err != nil {
			fmt.Fprintf(os.Stderr, "pier serve: %v\n", err)
			os.Exit(1)
		}
		return
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first interrupt has cancelled the command (which removes
	// partial downloads), a second one should kill pier outright.
	go func() {
		<-ctx.Done()
		stop()
	}()

	c := &cli{
		stdout:    os.Stdout,
		stderr:    os.Stderr,
		getenv:    os.Getenv,
		gitCommit: gitHeadCommit,
		now:       time.Now,
	}
	if fd := int(os.Stderr.Fd()); term.IsTerminal(fd) {
		c.progress = os.Stderr
		c.termWidth = func() int {
			w, _, err := term.GetSize(fd)
			if err != nil {
				return 80
			}
			return w
		}
	}
	code := c.run(ctx, args)
	stop()
	os.Exit(code)
}

// usageError is a mistake in the command line; it exits with status 2 and
// is followed by the command's synopsis.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error {
	return &usageError{msg: fmt.Sprintf(format, a...)}
}

// run executes one command line and returns the process exit status:
// 0 on success, 1 on failure, 2 on a usage error.
func (c *cli) run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		c.printHelp(c.stderr)
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			return c.helpFor(rest[0])
		}
		c.printHelp(c.stdout)
		return 0
	case "--version", "-version":
		name = "version"
	case "serve":
		if err := runServe(rest); err != nil {
			fmt.Fprintf(c.stderr, "pier serve: %v\n", err)
			return 1
		}
		return 0
	}
	cmd := findCommand(name)
	if cmd == nil {
		fmt.Fprintf(c.stderr, "pier: unknown command %q\n\n", name)
		c.printHelp(c.stderr)
		return 2
	}

	fs := c.newFlagSet(cmd)
	runFn := cmd.setup(c, fs)
	pos, err := parseInterspersed(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		// The flag package has already printed the error and the usage.
		return 2
	}
	err = runFn(ctx, pos)
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(c.stderr, "pier %s: %s\nusage: pier %s %s\n", cmd.name, ue.msg, cmd.name, cmd.args)
		return 2
	default:
		fmt.Fprintf(c.stderr, "pier: %v\n", err)
		return 1
	}
}

func findCommand(name string) *command {
	for _, cmd := range commands() {
		if cmd.name == name {
			return cmd
		}
	}
	return nil
}

func (c *cli) newFlagSet(cmd *command) *flag.FlagSet {
	fs := flag.NewFlagSet("pier "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() { c.printCommandHelp(fs.Output(), cmd, fs) }
	return fs
}

func (c *cli) printCommandHelp(w io.Writer, cmd *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: pier %s %s\n\n%s\n", cmd.name, cmd.args, cmd.help)
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprintf(w, "\nflags (may also follow the arguments):\n")
		fs.PrintDefaults()
	}
}

func (c *cli) helpFor(name string) int {
	if name == "serve" {
		fmt.Fprintln(c.stdout, "usage: pier serve [flags]\n\nRuns a Pier node. See 'pier serve -h' for its flags.")
		return 0
	}
	cmd := findCommand(name)
	if cmd == nil {
		fmt.Fprintf(c.stderr, "pier help: unknown command %q\n", name)
		return 2
	}
	fs := c.newFlagSet(cmd)
	fs.SetOutput(c.stdout)
	cmd.setup(c, fs)
	c.printCommandHelp(c.stdout, cmd, fs)
	return 0
}

func (c *cli) printHelp(w io.Writer) {
	fmt.Fprintf(w, "pier: distributed artifact registry\n\nusage: pier COMMAND [arguments] [flags]\n\ncommands:\n")
	fmt.Fprintf(w, "  %-8s %s\n", "serve", "run a node")
	for _, cmd := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", cmd.name, cmd.summary)
	}
	fmt.Fprintf(w, "  %-8s %s\n", "help", "show help for a command")
	fmt.Fprintf(w, "\nClient commands talk to --server (default $PIER_SERVER, else %s); give a\n"+
		"comma-separated list to fail over between nodes. Run 'pier help COMMAND' for details.\n", defaultServer)
}

// parseInterspersed parses fs from args but, unlike fs.Parse, does not stop
// at the first positional argument, so "pier push app.jar --tag x" works.
// A "--" ends flag parsing; everything after it is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" && !isFlagValue(fs, args[:consumed-1]) {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// isFlagValue reports whether the argument following before was consumed as
// the value of the last flag in before (as "--" is in "-o --").
func isFlagValue(fs *flag.FlagSet, before []string) bool {
	if len(before) == 0 {
		return false
	}
	last := before[len(before)-1]
	if len(last) < 2 || last[0] != '-' || last == "--" {
		return false
	}
	name := strings.TrimLeft(last, "-")
	if strings.Contains(name, "=") {
		return false
	}
	f := fs.Lookup(name)
	if f == nil {
		return false
	}
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return false
	}
	return true
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// serverFlag declares --server on a client command. The default is read
// when the flag set is built, so the help text shows the effective value.
func (c *cli) serverFlag(fs *flag.FlagSet) *string {
	def := strings.TrimSpace(c.getenv("PIER_SERVER"))
	if def == "" {
		def = defaultServer
	}
	fs.StringVar(&c.token, "token", strings.TrimSpace(c.getenv("PIER_TOKEN")),
		"access token `secret` sent with every request (env PIER_TOKEN)")
	fs.StringVar(&c.caCert, "ca-cert", strings.TrimSpace(c.getenv("PIER_CA_CERT")),
		"PEM `file` of the CA that signed the nodes' HTTPS certificates (env PIER_CA_CERT)")
	return fs.String("server", def, "node `address`es, comma-separated, tried in order; https://host:port for nodes serving TLS (env PIER_SERVER)")
}

// splitServers turns "a:1, b:2," into ["a:1" "b:2"].
func splitServers(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// gitHeadCommit returns HEAD of the git work tree around the current
// directory. Any failure (no git, not a repository, no commits yet) yields
// "", because the commit is optional metadata and must never block a push.
func gitHeadCommit(ctx context.Context) string {
	if _, err := exec.LookPath("git"); err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "--is-inside-work-tree", "HEAD").Output()
	if err != nil {
		return ""
	}
	f := strings.Fields(string(out))
	if len(f) != 2 || f[0] != "true" {
		return ""
	}
	return f[1]
}

func (c *cli) keygenCmd(fs *flag.FlagSet) func(context.Context, []string) error {
	return func(_ context.Context, args []string) error {
		if len(args) != 0 {
			return usagef("keygen takes no arguments")
		}
		key := make([]byte, 32)
		_, _ = rand.Read(key) // crypto/rand.Read never fails
		fmt.Fprintln(c.stdout, base64.StdEncoding.EncodeToString(key))
		return nil
	}
}

func (c *cli) versionCmd(fs *flag.FlagSet) func(context.Context, []string) error {
	return func(_ context.Context, args []string) error {
		if len(args) != 0 {
			return usagef("version takes no arguments")
		}
		v := pierVersion
		if v == "dev" {
			if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
				v = bi.Main.Version
			}
		}
		fmt.Fprintf(c.stdout, "pier %s (%s %s/%s)\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	}
}
