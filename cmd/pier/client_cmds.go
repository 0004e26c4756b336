package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pier-registry/pier/transport/apiclient"
)

// client builds an API client for --server (else $PIER_SERVER, else the
// default), with --token and --ca-cert or their environment variables.
func (c *cli) client() (*apiclient.Client, error) {
	return c.clientFor(c.servers())
}

// servers is the --server value, or its default.
func (c *cli) servers() string {
	if c.server != "" {
		return c.server
	}
	if s := strings.TrimSpace(c.getenv("PIER_SERVER")); s != "" {
		return s
	}
	return defaultServer
}

func (c *cli) clientFor(servers string) (*apiclient.Client, error) {
	list := splitServers(servers)
	if len(list) == 0 {
		return nil, usagef("--server is empty")
	}
	opts := []apiclient.Option{apiclient.WithUserAgent("pier-cli/" + pierVersion)}
	token := c.token
	if token == "" {
		token = strings.TrimSpace(c.getenv("PIER_TOKEN"))
	}
	if token != "" {
		opts = append(opts, apiclient.WithToken(token))
	}
	caCert := c.caCert
	if caCert == "" {
		caCert = strings.TrimSpace(c.getenv("PIER_CA_CERT"))
	}
	if caCert != "" {
		pem, err := os.ReadFile(caCert)
		if err != nil {
			return nil, fmt.Errorf("--ca-cert: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-cert %s: no PEM certificate in it", caCert)
		}
		opts = append(opts, apiclient.WithRootCAs(pool))
	}
	return apiclient.New(list, opts...)
}

// newBar returns a progress bar on the terminal, or nil (which draws
// nothing) when stderr is not a terminal.
func (c *cli) newBar(label string, total int64) *progressBar {
	if c.progress == nil {
		return nil
	}
	width := 80
	if c.termWidth != nil {
		width = c.termWidth()
	}
	return newProgressBar(c.progress, label, total, width, c.now)
}

// parseLabels turns repeated key=value flags into a map, refusing duplicates
// with different values rather than silently keeping one of them.
func parseLabels(list []string) (map[string]string, error) {
	if len(list) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(list))
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("label %q: want key=value", kv)
		}
		if old, dup := m[k]; dup && old != v {
			return nil, usagef("label %q given twice with different values", k)
		}
		m[k] = v
	}
	return m, nil
}

func (c *cli) pushCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "push FILE",
		Short: "upload a file as an artifact",
		Long: `Uploads FILE under --name (default: the file's base name). The file is hashed first and
the node refuses the upload if the bytes it receives do not match. --commit defaults to
'git rev-parse HEAD' when the current directory is inside a git work tree (--commit= to
omit it). Pushing the same bytes again is harmless and adds the labels and tags it names;
pushing other bytes under an existing name fails with exit status 4. A file over 64 MiB
is sent as a resumable upload: after a dropped connection pier asks the node what it
stored and sends only the rest.`,
		Example: `  pier push myapp-v1.2.3.jar --version 1.2.3 --label os=linux --tag staging-validated
  pier push build/app.jar --name team/myapp/1.2.4/app.jar --commit "$(git rev-parse HEAD)"
  pier push app.tgz -o json | jq -r .digest`,
		Args: exactArgs(1, "exactly one FILE"),
	}
	c.clientFlags(cmd)
	fs := cmd.Flags()
	name := fs.String("name", "", "artifact `name` (default: the file's base name)")
	version := fs.String("version", "", "`version` recorded with the artifact")
	commit := fs.String("commit", "", "source `commit` (default: git HEAD of the current directory; --commit= to omit)")
	labels := fs.StringArray("label", nil, "`key=value` label, repeatable")
	tags := fs.StringArray("tag", nil, "`tag` to apply, repeatable")
	output := outputFlag(cmd)

	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := ctxOf(cmd)
		file := args[0]
		lbls, err := parseLabels(*labels)
		if err != nil {
			return err
		}
		for _, t := range *tags {
			if t == "" {
				return usagef("empty --tag")
			}
		}
		artName := *name
		if artName == "" {
			artName = filepath.Base(file)
		}
		cm := *commit
		if !flagChanged(fs, "commit") && c.gitCommit != nil {
			cm = c.gitCommit(ctx)
		}
		client, err := c.client()
		if err != nil {
			return err
		}

		sum, size, err := c.hashFile(file, artName)
		if err != nil {
			return err
		}
		// What the name held before, to say what a re-push added.
		before, _ := client.Info(ctx, artName, false)
		bar := c.newBar(artName, size)
		art, created, err := client.Push(ctx, artName, apiclient.FileBody(file), size, apiclient.PushOptions{
			Version:  *version,
			Commit:   cm,
			Labels:   lbls,
			Tags:     *tags,
			SHA256:   sum,
			Progress: bar.Set,
		})
		if err != nil {
			bar.Clear()
			if apiclient.IsConflict(err) {
				return fmt.Errorf("%w\n(artifacts are immutable: push under a new name or version)", err)
			}
			return err
		}
		bar.Finish()
		if *output == "json" {
			return c.printJSON(art)
		}
		verb := "created"
		if !created {
			verb = "unchanged"
			if added := addedTo(before, art); added != "" {
				verb = "updated (added " + added + ")"
			}
		}
		fmt.Fprintf(c.stdout, "%s %s %s (%s)\n", verb, art.Name, art.Digest, humanBytes(art.Size))
		return nil
	}
	return cmd
}

// hashFile computes the SHA-256 that the server will verify the upload
// against. It also pins the size: both come from the same open file.
func (c *cli) hashFile(file, label string) (sum string, size int64, err error) {
	f, err := os.Open(file)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	if !st.Mode().IsRegular() {
		return "", 0, fmt.Errorf("%s is not a regular file", file)
	}
	h := sha256.New()
	bar := c.newBar("hashing "+label, st.Size())
	if _, err := io.Copy(h, &progressReader{r: f, bar: bar}); err != nil {
		bar.Clear()
		return "", 0, fmt.Errorf("hash %s: %w", file, err)
	}
	bar.Clear()
	return hex.EncodeToString(h.Sum(nil)), st.Size(), nil
}

func (c *cli) pullCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pull NAME",
		Short: "download an artifact",
		Long: `Downloads NAME to -o FILE (default: NAME's base name in the current directory; '-' for
stdout). An -o that is an existing directory or ends in '/' receives NAME's base name;
missing directories are created. The download goes to a temporary file that is renamed
into place only after its SHA-256 matches the digest the node announced.

An existing file with the same bytes is left as it is; one with other bytes is kept and
pull exits with status 4, unless --force replaces it.`,
		Example: `  pier pull myapp-v1.2.3.jar
  pier pull team/myapp/1.2.4/app.jar -o /opt/myapp/releases/
  pier pull myapp-v1.2.3.jar -o app.jar --force
  pier pull "$(pier latest 'myapp-*' --tag production-ready)" -o - | tar -tz`,
		Args:              exactArgs(1, "exactly one NAME"),
		ValidArgsFunction: c.completeNames,
	}
	c.clientFlags(cmd)
	out := cmd.Flags().StringP("output", "o", "", "output `file` or directory, or - for stdout (default: NAME's base name)")
	force := cmd.Flags().BoolP("force", "f", false, "replace an existing file that holds other bytes")

	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := ctxOf(cmd)
		name := args[0]
		client, err := c.client()
		if err != nil {
			return err
		}
		dest := *out
		switch {
		case dest == "":
			dest = path.Base(name)
		case dest == "-":
		case strings.HasSuffix(dest, "/") || strings.HasSuffix(dest, string(filepath.Separator)):
			dest = filepath.Join(dest, path.Base(name))
		default:
			if st, err := os.Stat(dest); err == nil && st.IsDir() {
				dest = filepath.Join(dest, path.Base(name))
			}
		}
		if dest != "-" {
			done, err := c.checkExisting(ctx, client, name, dest, *force)
			if done || err != nil {
				return err
			}
		}

		body, info, err := client.Get(ctx, name)
		if err != nil {
			return err
		}
		defer body.Close()
		want, ok := strings.CutPrefix(info.Digest, "sha256:")
		if !ok {
			return fmt.Errorf("pull %s: server sent no sha256 ETag (got %q), refusing an unverifiable download", name, info.ETag)
		}
		bar := c.newBar(name, info.Size)
		src := &progressReader{r: body, bar: bar}

		if dest == "-" {
			// Stdout cannot be taken back, so the check can only report a
			// mismatch after the fact, through the exit status.
			err := copyVerified(c.stdout, src, want, info.Size)
			if err != nil {
				bar.Clear()
				return fmt.Errorf("pull %s: %w", name, err)
			}
			bar.Finish()
			return nil
		}
		if dir := filepath.Dir(dest); dir != "." {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				bar.Clear()
				return fmt.Errorf("pull %s: %w", name, err)
			}
		}
		if err := writeVerified(dest, src, want, info.Size); err != nil {
			bar.Clear()
			return fmt.Errorf("pull %s to %s: %w", name, dest, err)
		}
		bar.Finish()
		fmt.Fprintf(c.stdout, "saved %s %s (%s)\n", dest, info.Digest, humanBytes(src.n))
		return nil
	}
	return cmd
}

// checkExisting looks at a file already at dest: the same bytes as name
// make the pull a no-op (done), other bytes refuse it unless force.
func (c *cli) checkExisting(ctx context.Context, client *apiclient.Client, name, dest string, force bool) (done bool, err error) {
	st, err := os.Stat(dest)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("pull %s: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		return false, fmt.Errorf("pull %s: %s exists and is not a regular file", name, dest)
	}
	if force {
		return false, nil
	}
	info, err := client.Head(ctx, name)
	if err != nil {
		return false, err
	}
	f, err := os.Open(dest)
	if err != nil {
		return false, fmt.Errorf("pull %s: %w", name, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, fmt.Errorf("pull %s: hash the existing %s: %w", name, dest, err)
	}
	have := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if strings.EqualFold(have, info.Digest) {
		fmt.Fprintf(c.stdout, "unchanged %s %s (%s)\n", dest, info.Digest, humanBytes(st.Size()))
		return true, nil
	}
	return false, &localConflictError{msg: fmt.Sprintf("%s exists and holds other bytes (%s) than %s (%s); --force replaces it",
		dest, shortDigest(have), name, shortDigest(info.Digest))}
}

// copyVerified copies src to w and fails if the bytes do not hash to
// wantHex or, when size >= 0, are not exactly size bytes long.
func copyVerified(w io.Writer, src io.Reader, wantHex string, size int64) error {
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), src)
	if err != nil {
		return err
	}
	if size >= 0 && n != size {
		return fmt.Errorf("received %d bytes, server announced %d", n, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, wantHex) {
		return fmt.Errorf("digest mismatch: received sha256:%s, server announced sha256:%s", got, strings.ToLower(wantHex))
	}
	return nil
}

// writeVerified streams src into a temporary file next to dest and renames
// it over dest only once its digest checks out, so dest is never left
// holding a partial or corrupt artifact, whatever goes wrong.
func writeVerified(dest string, src io.Reader, wantHex string, size int64) (err error) {
	dir, base := filepath.Split(dest)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".pier-*.tmp")
	if err != nil {
		// CreateTemp's error names the random temporary file, which means
		// nothing to the user: name the directory instead.
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("cannot write into %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := copyVerified(tmp, src, wantHex, size); err != nil {
		return err
	}
	// Without the sync a crash shortly after the rename could leave an
	// empty or truncated file under the final name.
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// CreateTemp makes the file private; downloads get the usual mode, or
	// keep the mode of the file they replace.
	mode := os.FileMode(0o644)
	if st, err := os.Stat(dest); err == nil && st.Mode().IsRegular() {
		mode = st.Mode().Perm()
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dest)
}

// listFilters are the listing filters ls and latest share: every query
// parameter of GET /api/v1/artifacts (docs/api.md).
type listFilters struct {
	prefix, tag, digest, version, commit, order string
	labels                                      []string
}

func (f *listFilters) declare(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.prefix, "prefix", "", "only names starting with `prefix`")
	fs.StringVar(&f.tag, "tag", "", "only artifacts carrying `tag`")
	fs.StringArrayVar(&f.labels, "label", nil, "only artifacts with label `key=value` (repeatable: all must match)")
	fs.StringVar(&f.digest, "digest", "", "only artifacts whose digest is or starts with `sha256:hex` (or hex)")
	fs.StringVar(&f.version, "version", "", "only artifacts of this `version`")
	fs.StringVar(&f.commit, "commit", "", "only artifacts whose commit is or starts with `commit`")
	fs.StringVar(&f.order, "order", "", "'version' lists the highest version first (semver-aware) instead of the newest")
	_ = cmd.RegisterFlagCompletionFunc("order", cobra.FixedCompletions([]string{"version"}, cobra.ShellCompDirectiveNoFileComp))
}

// options checks the filters and turns them, with the optional glob
// argument, into the API's.
func (f *listFilters) options(args []string) (apiclient.ListOptions, error) {
	opts := apiclient.ListOptions{Prefix: f.prefix, Tag: f.tag, Labels: f.labels, Version: f.version, Commit: f.commit, Order: f.order}
	if len(args) == 1 {
		opts.Glob = args[0]
	}
	for _, l := range f.labels {
		if k, _, ok := strings.Cut(l, "="); !ok || k == "" {
			return opts, usagef("--label %q: want key=value", l)
		}
	}
	if f.order != "" && f.order != "version" {
		return opts, usagef("--order %q: the only order besides newest first is version", f.order)
	}
	opts.Digest = f.digest
	if f.digest != "" && !strings.HasPrefix(f.digest, "sha256:") {
		opts.Digest = "sha256:" + f.digest
	}
	return opts, nil
}

func listOptionsPrefix(prefix string) apiclient.ListOptions {
	return apiclient.ListOptions{Prefix: prefix, Limit: 100}
}

func (c *cli) lsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ls [GLOB]",
		Short: "list artifacts, newest first",
		Long: `Lists the artifacts matching the filters, newest first (--order version: highest
version first). GLOB matches whole names, '*' standing for any run of characters (quote
it from the shell); a GLOB without '*' is one name. --limit bounds how many are listed
(0: all of them, fetched page by page).`,
		Example: `  pier ls
  pier ls 'myapp-*' --order version --limit 5
  pier ls --prefix team/myapp/ --label os=linux --tag production-ready
  pier ls --digest 3a7bd3e2360a -o json
  pier ls --commit 9f1c2ab --version 1.2.3`,
		Args:              maxArgs(1, "one GLOB"),
		ValidArgsFunction: c.completeNames,
	}
	c.clientFlags(cmd)
	var f listFilters
	f.declare(cmd)
	limit := cmd.Flags().Int("limit", 0, "list at most `N` artifacts (0: all)")
	output := outputFlag(cmd)

	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		opts, err := f.options(args)
		if err != nil {
			return err
		}
		if *limit < 0 {
			return usagef("--limit %d: want 0 (all) or more", *limit)
		}
		if *limit > 0 {
			opts.Limit = min(*limit, 1000) // the API's largest page
		}
		client, err := c.client()
		if err != nil {
			return err
		}
		arts := []apiclient.Artifact{}
		for a, err := range client.ListAll(ctxOf(cmd), opts) {
			if err != nil {
				return err
			}
			arts = append(arts, a)
			if *limit > 0 && len(arts) == *limit {
				break
			}
		}
		if *output == "json" {
			return c.printJSON(arts)
		}
		t := newTable("NAME", "VERSION", "SIZE", "DIGEST", "CREATED", "TAGS")
		for _, a := range arts {
			t.row(a.Name, dash(a.Version), humanBytes(a.Size), shortDigest(a.Digest), formatTime(a.Created), dash(strings.Join(a.Tags, ",")))
		}
		return t.write(c.stdout)
	}
	return cmd
}

// shortDigest keeps the first 12 hex digits, like short git hashes: enough
// to tell artifacts apart in a table.
func shortDigest(d string) string {
	h := strings.TrimPrefix(d, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func (c *cli) infoCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "info NAME",
		Short: "show an artifact's metadata",
		Long: `Prints NAME's metadata: digest, size, version, commit, created, labels and tags;
--history adds the tag history (who added or removed which tag, when).`,
		Example: `  pier info myapp-v1.2.3.jar
  pier info myapp-v1.2.3.jar --history
  pier info myapp-v1.2.3.jar -o json | jq -r .digest`,
		Args:              exactArgs(1, "exactly one NAME"),
		ValidArgsFunction: c.completeNames,
	}
	c.clientFlags(cmd)
	history := cmd.Flags().Bool("history", false, "include the tag history")
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		client, err := c.client()
		if err != nil {
			return err
		}
		art, err := client.Info(ctxOf(cmd), args[0], *history)
		if err != nil {
			return err
		}
		if *output == "json" {
			return c.printJSON(art)
		}
		t := newTable("name:", art.Name)
		t.row("digest:", art.Digest)
		t.row("size:", fmt.Sprintf("%s (%d bytes)", humanBytes(art.Size), art.Size))
		t.row("version:", dash(art.Version))
		t.row("commit:", dash(art.Commit))
		t.row("created:", formatTime(art.Created))
		var labels []string
		for _, k := range slices.Sorted(maps.Keys(art.Labels)) {
			labels = append(labels, k+"="+art.Labels[k])
		}
		t.row("labels:", dash(strings.Join(labels, ", ")))
		t.row("tags:", dash(strings.Join(art.Tags, ", ")))
		if err := t.write(c.stdout); err != nil {
			return err
		}
		if *history {
			fmt.Fprintln(c.stdout, "tag history:")
			h := newTable("  TIME", "ACTION", "TAG", "ACTOR")
			for _, e := range art.TagHistory {
				h.row("  "+formatTime(e.Time), e.Action, e.Tag, dash(e.Actor))
			}
			return h.write(c.stdout)
		}
		return nil
	}
	return cmd
}

// tagCmd builds the tag (add) or untag command.
func (c *cli) tagCmd(add bool) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tag NAME TAG",
		Short: "add a tag to an artifact",
		Long: `Adds TAG to NAME (recorded in the tag history with the token's owner). Tags are the
only mutable part of an artifact: promote a build by tagging it.`,
		Example: `  pier tag myapp-v1.2.3.jar production-ready
  pier tag team/myapp/1.2.4/app.jar staging-validated -o json`,
		Args:              exactArgs(2, "NAME and TAG"),
		ValidArgsFunction: c.completeNames,
	}
	verb := "tagged"
	if !add {
		cmd.Use, cmd.Short, verb = "untag NAME TAG", "remove a tag from an artifact", "untagged"
		cmd.Long = "Removes TAG from NAME (recorded in the tag history)."
		cmd.Example = "  pier untag myapp-v1.2.3.jar production-ready"
	}
	c.clientFlags(cmd)
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		name, tag := args[0], args[1]
		if tag == "" {
			return usagef("empty TAG")
		}
		client, err := c.client()
		if err != nil {
			return err
		}
		var art apiclient.Artifact
		if add {
			art, err = client.Tag(ctxOf(cmd), name, tag)
		} else {
			art, err = client.Untag(ctxOf(cmd), name, tag)
		}
		if err != nil {
			return err
		}
		if *output == "json" {
			return c.printJSON(art)
		}
		tags := strings.Join(art.Tags, ", ")
		if tags == "" {
			tags = "none"
		}
		fmt.Fprintf(c.stdout, "%s %s %s (tags: %s)\n", verb, art.Name, tag, tags)
		return nil
	}
	return cmd
}

func (c *cli) rmCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rm NAME...",
		Short: "delete artifacts",
		Long: `Deletes each NAME. A deleted name stays bound to its digest (a tombstone), so it can
never hold other bytes. Every NAME is tried; the exit status is 3 when one was not found.`,
		Example: `  pier rm myapp-v1.2.2.jar
  pier rm team/myapp/1.0/app.jar team/myapp/1.1/app.jar`,
		Args:              minArgs(1, "at least one NAME"),
		ValidArgsFunction: c.completeNames,
	}
	c.clientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := ctxOf(cmd)
		client, err := c.client()
		if err != nil {
			return err
		}
		// Every name is attempted, so one typo does not leave the rest in
		// place; the failures are reported together.
		var errs []error
		for _, name := range args {
			if err := client.Delete(ctx, name); err != nil {
				if ctx.Err() != nil {
					return err
				}
				if apiclient.IsNotFound(err) {
					// The client's and the node's wording each name it
					// again: say it once.
					err = &notFoundError{name: name, err: err}
				}
				errs = append(errs, err)
				continue
			}
			fmt.Fprintf(c.stdout, "deleted %s\n", name)
		}
		return errors.Join(errs...)
	}
	return cmd
}

// notFoundError says that name was not found, naming it once; it keeps the
// API's 404 for the exit status.
type notFoundError struct {
	name string
	err  error
}

func (e *notFoundError) Error() string { return e.name + ": not found" }
func (e *notFoundError) Unwrap() error { return e.err }

func (c *cli) latestCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "latest [GLOB]",
		Short: "print the name of the newest matching artifact",
		Long: `Prints the name of the first artifact 'pier ls' would list with the same filters: the
newest, or with --order version the highest version. -o json prints its metadata. Exit
status 3 when nothing matches.`,
		Example: `  pier latest --prefix myapp- --tag production-ready
  pier latest 'myapp-*.jar' --order version --label os=linux
  pier pull "$(pier latest --prefix myapp- --tag production-ready)"`,
		Args: maxArgs(1, "one GLOB"),
	}
	c.clientFlags(cmd)
	var f listFilters
	f.declare(cmd)
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		opts, err := f.options(args)
		if err != nil {
			return err
		}
		client, err := c.client()
		if err != nil {
			return err
		}
		name, err := client.LatestMatching(ctxOf(cmd), opts)
		if err != nil {
			return err
		}
		if *output == "json" {
			art, err := client.Info(ctxOf(cmd), name, false)
			if err != nil {
				return err
			}
			return c.printJSON(art)
		}
		fmt.Fprintln(c.stdout, name)
		return nil
	}
	return cmd
}

func (c *cli) membersCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "members",
		Short: "show cluster membership",
		Long: `Lists the nodes of the cluster as the answering node sees them: id, datacenter, HTTP
address, gossip state, raft role, membership status (active, draining, left), shard files,
bytes held and free disk.`,
		Example: `  pier members
  pier members --server 127.0.0.1:8082 -o json`,
		Args: noArgs,
	}
	c.clientFlags(cmd)
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		client, err := c.client()
		if err != nil {
			return err
		}
		m, err := client.Members(ctxOf(cmd))
		if err != nil {
			return err
		}
		if *output == "json" {
			return c.printJSON(m)
		}
		t := newTable("ID", "DATACENTER", "HTTP", "STATE", "ROLE", "STATUS", "SHARDS", "USED", "FREE")
		for _, mem := range m.Members {
			shards, used, free := usageCells(mem)
			t.row(mem.ID, dash(mem.Datacenter), dash(mem.HTTPAddr), dash(mem.State), dash(mem.Role), dash(mem.Status), shards, used, free)
		}
		return t.write(c.stdout)
	}
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// addedTo says what after holds that before did not: a re-push of the
// same bytes adds the version, commit, labels and tags it names.
func addedTo(before, after apiclient.Artifact) string {
	var added []string
	if before.Version == "" && after.Version != "" {
		added = append(added, "version "+after.Version)
	}
	if before.Commit == "" && after.Commit != "" {
		added = append(added, "commit "+after.Commit)
	}
	for _, k := range slices.Sorted(maps.Keys(after.Labels)) {
		if _, ok := before.Labels[k]; !ok {
			added = append(added, "label "+k+"="+after.Labels[k])
		}
	}
	for _, t := range after.Tags {
		if !slices.Contains(before.Tags, t) {
			added = append(added, "tag "+t)
		}
	}
	return strings.Join(added, ", ")
}
