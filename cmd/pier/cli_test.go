package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pier-registry/pier/testing/clustertest"
	"github.com/pier-registry/pier/transport/apiclient"
	"github.com/pier-registry/pier/transport/server"
)

// walk calls fn on cmd and every command under it, hidden ones (cobra's
// own __complete) excepted.
func walk(cmd *cobra.Command, fn func(*cobra.Command)) {
	if cmd.Hidden {
		return
	}
	fn(cmd)
	for _, sub := range cmd.Commands() {
		walk(sub, fn)
	}
}

// Every command's --help shows an example: the user report was that none
// had one.
func TestEveryCommandHasAnExample(t *testing.T) {
	root := newTestCLI(nil).rootCmd()
	n := 0
	walk(root, func(cmd *cobra.Command) {
		n++
		if strings.TrimSpace(cmd.Example) == "" {
			t.Errorf("%q has no Example", cmd.CommandPath())
		}
		if cmd.Short == "" {
			t.Errorf("%q has no Short", cmd.CommandPath())
		}
	})
	if n < 30 {
		t.Fatalf("walked %d commands: the tree is not what it seems", n)
	}
	// And the example is what --help prints.
	c := newTestCLI(nil)
	if code := c.run(context.Background(), []string{"token", "rotate", "--help"}); code != 0 || !strings.Contains(c.out.String(), "pier token rotate ci --grace 24h") {
		t.Fatalf("token rotate --help: exit %d, %q", code, c.out)
	}
}

// writeCommands change something, or run a node, or print no data: they
// need no -o json. Every other runnable command is a read command and must
// have -o, which TestReadCommandsPrintJSON then runs.
var writeCommands = []string{
	"pier push", "pier pull", "pier tag", "pier untag", "pier rm", "pier serve", "pier leave", "pier remove",
	"pier join", "pier health", "pier keygen", "pier completion", "pier help",
	"pier federation join", "pier replicate add", "pier replicate rm",
	"pier token revoke", "pier retention rm", "pier retention set", "pier quota set", "pier quota rm",
	"pier export", "pier import",
}

// Every read command prints JSON that parses with -o json, against a real
// node; a read command added without -o, or not run here, fails the test.
func TestReadCommandsPrintJSON(t *testing.T) {
	// With a WAN address, so that federation status has something to say.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wan := ln.Addr().String()
	ln.Close()
	cl := clustertest.New(t, 1, clustertest.Options{Tune: func(_ int, cfg *server.Config) {
		cfg.Node.WANBind = wan
		cfg.Node.WANGossip = clustertest.GossipConfig()
	}})
	srv := cl.Nodes[0].URL
	file := filepath.Join(t.TempDir(), "app-1.0.jar")
	if err := os.WriteFile(file, []byte("app bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"PIER_SERVER": srv}
	if c := newTestCLI(env); c.run(context.Background(), []string{"push", file, "--version", "1.0", "--tag", "qa", "--label", "os=linux"}) != 0 {
		t.Fatalf("push: %s", c.errOut)
	}

	// In order: rotate needs the token create made.
	reads := []struct {
		path string
		args []string
	}{
		{"pier ls", []string{"ls", "app-*", "--order", "version", "--label", "os=linux", "--limit", "5"}},
		{"pier info", []string{"info", "app-1.0.jar", "--history"}},
		{"pier latest", []string{"latest", "--prefix", "app-", "--tag", "qa"}},
		{"pier members", []string{"members"}},
		{"pier status", []string{"status"}},
		{"pier audit", []string{"audit"}},
		{"pier token ls", []string{"token", "ls"}},
		{"pier token create", []string{"token", "create", "--name", "ci", "--scope", "pull"}},
		{"pier token rotate", []string{"token", "rotate", "ci"}},
		{"pier access", []string{"access"}},
		{"pier access anonymous-pull", []string{"access", "anonymous-pull", "--prefix", "public-"}},
		{"pier retention ls", []string{"retention", "ls"}},
		{"pier retention run", []string{"retention", "run", "--dry-run"}},
		{"pier quota ls", []string{"quota", "ls"}},
		{"pier federation status", []string{"federation", "status"}},
		{"pier replicate ls", []string{"replicate", "ls"}},
		{"pier version", []string{"version"}},
	}
	walk(newTestCLI(nil).rootCmd(), func(cmd *cobra.Command) {
		path := cmd.CommandPath()
		if !cmd.Runnable() || slices.Contains(writeCommands, path) {
			return
		}
		run := slices.ContainsFunc(reads, func(r struct {
			path string
			args []string
		}) bool {
			return r.path == path
		})
		if !run && cmd.HasSubCommands() && cmd.Flags().Lookup("output") == nil {
			return // a group: it only names its subcommands
		}
		if cmd.Flags().Lookup("output") == nil {
			t.Errorf("%s: a read command without -o", path)
		}
		if !run {
			t.Errorf("%s: not run by this test", path)
		}
	})

	for _, r := range reads {
		path, args := r.path, r.args
		c := newTestCLI(env)
		if code := c.run(context.Background(), append(args, "-o", "json")); code != 0 {
			t.Errorf("%s -o json: exit %d: %s", path, code, c.errOut)
			continue
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(c.out.Bytes()))
		if err := dec.Decode(&v); err != nil {
			t.Errorf("%s -o json: %v in %q", path, err, c.out)
			continue
		}
		if dec.More() {
			t.Errorf("%s -o json: more than one JSON value in %q", path, c.out)
		}
		if v == nil {
			t.Errorf("%s -o json: null", path)
		}
	}
}

// A table stays aligned when a cell holds wide (CJK) or combining
// characters: columns are measured in terminal cells, not runes or bytes.
func TestTableAlignsByDisplayWidth(t *testing.T) {
	tb := newTable("NAME", "SIZE")
	tb.row("製品.jar", "1 B")         // 2 wide characters: 8 columns
	tb.row("cafe\u0301.txt", "2 B") // a combining accent: 8 columns
	tb.row("abc", "3 B")
	var b strings.Builder
	if err := tb.write(&b); err != nil {
		t.Fatal(err)
	}
	var cols []int
	for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		i := strings.LastIndex(line, "  ")
		cols = append(cols, displayWidth(line[:i+2]))
	}
	if !slices.Equal(cols, []int{10, 10, 10, 10}) {
		t.Fatalf("SIZE starts at columns %v, want 10 on every line:\n%s", cols, b.String())
	}
	for s, want := range map[string]int{"abc": 3, "製品": 4, "cafe\u0301": 4, "ｆｕｌｌ": 8} {
		if got := displayWidth(s); got != want {
			t.Errorf("displayWidth(%q) = %d, want %d", s, got, want)
		}
	}
}

// pier serve takes every flag from PIER_<FLAG> too, and a flag on the
// command line wins over the environment.
func TestServeFlagsFromEnvironment(t *testing.T) {
	var f serveFlags
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	f.declare(fs)
	if err := fs.Parse([]string{"--id", "cli-id", "--auth=false"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"PIER_ID": "env-id", "PIER_BOOTSTRAP_EXPECT": "3", "PIER_DATA_DIR": "/d",
		"PIER_REPAIR_AFTER": "7m", "PIER_AUTH": "true", "PIER_JOIN_WAN": "w:1"}
	if err := fromEnv(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if f.id != "cli-id" || f.auth || f.bootstrapExpect != 3 || f.dataDir != "/d" || f.repairAfter.Minutes() != 7 || f.joinWAN != "w:1" {
		t.Fatalf("flags %+v", f)
	}
	if err := fromEnv(fs, func(k string) (string, bool) { return "x", k == "PIER_MIN_FREE" }); err == nil || !strings.Contains(err.Error(), "PIER_MIN_FREE") {
		t.Fatalf("a bad PIER_MIN_FREE: %v", err)
	}

	// The help shows no made-up default for --bootstrap-expect, and
	// ends without "flag: help requested".
	c := newTestCLI(nil)
	if code := c.run(context.Background(), []string{"serve", "--help"}); code != 0 {
		t.Fatalf("serve --help: exit %d", code)
	}
	help := c.out.String() + c.errOut.String()
	if strings.Contains(help, "(default -1)") || strings.Contains(help, "help requested") || !strings.Contains(help, "--bootstrap-expect N") {
		t.Fatalf("serve --help:\n%s", help)
	}
}

// pier completion prints a script for bash, zsh and fish, and refuses
// another shell as a usage error.
func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_pier", "zsh": "#compdef pier", "fish": "complete -c pier"} {
		c := newTestCLI(nil)
		if code := c.run(context.Background(), []string{"completion", shell}); code != 0 || !strings.Contains(c.out.String(), want) {
			t.Errorf("completion %s: exit %d, %d bytes, no %q", shell, code, c.out.Len(), want)
		}
	}
	if code := newTestCLI(nil).run(context.Background(), []string{"completion", "tcsh"}); code != 2 {
		t.Errorf("completion tcsh: exit %d, want 2", code)
	}
	// The values of -o complete.
	c := newTestCLI(nil)
	if code := c.run(context.Background(), []string{"__complete", "ls", "-o", ""}); code != 0 || !strings.Contains(c.out.String(), "json") {
		t.Errorf("__complete ls -o: exit %d, %q", code, c.out)
	}
}

// ls and latest pass every filter the API has: a glob, --order version,
// --digest (hex, without sha256:), --version, --commit, --label, --limit.
func TestListFiltersReachTheAPI(t *testing.T) {
	cl := clustertest.New(t, 1, clustertest.Options{})
	env := map[string]string{"PIER_SERVER": cl.Nodes[0].URL}
	dir := t.TempDir()
	digests := map[string]string{}
	for _, a := range []struct{ name, version, commit, os string }{
		{"app-1.2.0.jar", "1.2.0", "aaaa1111", "linux"},
		{"app-1.10.0.jar", "1.10.0", "bbbb2222", "linux"},
		{"app-1.9.0.jar", "1.9.0", "cccc3333", "darwin"},
		{"other-2.0.jar", "2.0", "dddd4444", "linux"},
	} {
		file := filepath.Join(dir, a.name)
		if err := os.WriteFile(file, []byte("bytes of "+a.name), 0o644); err != nil {
			t.Fatal(err)
		}
		c := newTestCLI(env)
		if code := c.run(context.Background(), []string{"push", file, "--version", a.version, "--commit", a.commit, "--label", "os=" + a.os, "-o", "json"}); code != 0 {
			t.Fatalf("push %s: %s", a.name, c.errOut)
		}
		var art struct{ Digest string }
		if err := json.Unmarshal(c.out.Bytes(), &art); err != nil {
			t.Fatal(err)
		}
		digests[a.name] = art.Digest
	}
	names := func(args ...string) []string {
		t.Helper()
		c := newTestCLI(env)
		if code := c.run(context.Background(), append(append([]string{"ls"}, args...), "-o", "json")); code != 0 {
			t.Fatalf("ls %q: exit %d: %s", args, code, c.errOut)
		}
		var arts []struct{ Name string }
		if err := json.Unmarshal(c.out.Bytes(), &arts); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, a := range arts {
			out = append(out, a.Name)
		}
		return out
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"app-*", "--order", "version"}, []string{"app-1.10.0.jar", "app-1.9.0.jar", "app-1.2.0.jar"}},
		{[]string{"app-*", "--order", "version", "--limit", "2"}, []string{"app-1.10.0.jar", "app-1.9.0.jar"}},
		{[]string{"--prefix", "app-", "--label", "os=linux", "--order", "version"}, []string{"app-1.10.0.jar", "app-1.2.0.jar"}},
		{[]string{"--digest", strings.TrimPrefix(digests["app-1.9.0.jar"], "sha256:")[:12]}, []string{"app-1.9.0.jar"}},
		{[]string{"--commit", "bbbb"}, []string{"app-1.10.0.jar"}},
		{[]string{"--version", "2.0"}, []string{"other-2.0.jar"}},
		{[]string{"other-2.0.jar"}, []string{"other-2.0.jar"}},
	} {
		if got := names(tc.args...); !slices.Equal(got, tc.want) {
			t.Errorf("ls %q = %q, want %q", tc.args, got, tc.want)
		}
	}
	c := newTestCLI(env)
	if code := c.run(context.Background(), []string{"latest", "app-*", "--order", "version", "--label", "os=linux"}); code != 0 || c.out.String() != "app-1.10.0.jar\n" {
		t.Fatalf("latest: exit %d, %q %s", code, c.out, c.errOut)
	}
	c = newTestCLI(env)
	if code := c.run(context.Background(), []string{"latest", "--prefix", "none-"}); code != 3 {
		t.Fatalf("latest of nothing: exit %d, want 3 (%s)", code, c.errOut)
	}
}

// pier retention set --images sets an images policy as the API takes it,
// and retention ls shows it.
func TestRetentionImagesPolicy(t *testing.T) {
	cl := clustertest.New(t, 1, clustertest.Options{})
	env := map[string]string{"PIER_SERVER": cl.Nodes[0].URL}
	c := newTestCLI(env)
	if code := c.run(context.Background(), []string{"retention", "set", "--prefix", "_oci/team/", "--images", "--keep-last", "2",
		"--untagged-max-age", "7d", "--blob-grace", "1h"}); code != 0 {
		t.Fatalf("retention set: exit %d: %s", code, c.errOut)
	}
	c = newTestCLI(env)
	if code := c.run(context.Background(), []string{"retention", "ls", "-o", "json"}); code != 0 {
		t.Fatalf("retention ls: exit %d: %s", code, c.errOut)
	}
	var ps []apiclient.RetentionPolicy
	if err := json.Unmarshal(c.out.Bytes(), &ps); err != nil {
		t.Fatal(err)
	}
	want := apiclient.RetentionPolicy{Prefix: "_oci/team/", KeepLast: 2, Images: true, UntaggedMaxAge: "7d", BlobGrace: "1h"}
	if len(ps) != 1 || ps[0].Prefix != want.Prefix || !ps[0].Images || ps[0].KeepLast != 2 || ps[0].UntaggedMaxAge == "" || ps[0].BlobGrace == "" {
		t.Fatalf("policies %+v, want %+v", ps, want)
	}
}
