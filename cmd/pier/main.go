// Command pier is both a Pier node (pier serve) and the command-line client
// for a Pier cluster (push, pull, ls, ...).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/pier-registry/pier/transport/apiclient"
)

// pierVersion is set at build time with -ldflags "-X main.pierVersion=v1.2.3".
var pierVersion = "dev"

// defaultServer is used when neither --server nor PIER_SERVER is given; it
// matches the default HTTP address of pier serve.
const defaultServer = "127.0.0.1:8081"

// Exit statuses, documented in `pier --help` and the README. Scripts branch
// on them, so they never change meaning.
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2 // a mistake in the command line
	exitNotFound = 3 // the API answered 404
	exitConflict = 4 // the API answered 409, or pull would overwrite a different file
)

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
	// server, token and caCert are the client flags --server, --token and
	// --ca-cert; empty means "from the environment" (clientFlags).
	server, token, caCert string
}

func main() {
	args := os.Args[1:]
	ctx := context.Background()
	// serve installs its own signal handling; a handler installed here
	// would swallow Ctrl-C if it did not.
	if len(args) == 0 || args[0] != "serve" {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		// After the first interrupt has cancelled the command (which
		// removes partial downloads), a second one kills pier outright.
		go func() {
			<-ctx.Done()
			stop()
		}()
	}

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
	os.Exit(c.run(ctx, args))
}

// usageError is a mistake in the command line; it exits with status 2 and
// is followed by a pointer to the command's help.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error {
	return &usageError{msg: fmt.Sprintf(format, a...)}
}

// localConflictError is a refusal that is not the server's: pull would
// replace a different file. It exits like a 409.
type localConflictError struct{ msg string }

func (e *localConflictError) Error() string { return e.msg }

// run executes one command line and returns the process exit status (the
// exit* constants).
func (c *cli) run(ctx context.Context, args []string) int {
	root := c.rootCmd()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	path := "pier"
	if cmd != nil {
		path = cmd.CommandPath()
	}
	var ue *usageError
	var lc *localConflictError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(c.stderr, "%s: %s\nRun '%s --help' for usage.\n", path, ue.msg, path)
		return exitUsage
	case apiclient.IsNotFound(err):
		fmt.Fprintf(c.stderr, "%s: %v\n", path, err)
		return exitNotFound
	case apiclient.IsConflict(err) || errors.As(err, &lc):
		fmt.Fprintf(c.stderr, "%s: %v\n", path, err)
		return exitConflict
	default:
		fmt.Fprintf(c.stderr, "%s: %v\n", path, err)
		return exitError
	}
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
