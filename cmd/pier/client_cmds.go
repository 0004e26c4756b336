package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pier-registry/pier/transport/apiclient"
)

// client builds an API client for the --server value.
func (c *cli) client(servers string) (*apiclient.Client, error) {
	list := splitServers(servers)
	if len(list) == 0 {
		return nil, usagef("--server is empty")
	}
	opts := []apiclient.Option{apiclient.WithUserAgent("pier-cli/" + pierVersion)}
	if c.token != "" {
		opts = append(opts, apiclient.WithToken(c.token))
	}
	if c.caCert != "" {
		pem, err := os.ReadFile(c.caCert)
		if err != nil {
			return nil, fmt.Errorf("--ca-cert: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-cert %s: no PEM certificate in it", c.caCert)
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

func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	// Names and labels may contain &, < and >; escaping them would only
	// make the output harder to read and to grep.
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
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

func (c *cli) pushCmd(fs *flag.FlagSet) func(context.Context, []string) error {
	server := c.serverFlag(fs)
	name := fs.String("name", "", "artifact `name` (default: the file's base name)")
	version := fs.String("version", "", "`version` recorded with the artifact")
	commit := fs.String("commit", "", "source `commit` (default: git HEAD of the current directory; --commit= to omit)")
	var labels, tags stringList
	fs.Var(&labels, "label", "`key=value` label, repeatable")
	fs.Var(&tags, "tag", "`tag` to apply, repeatable")
	asJSON := fs.Bool("json", false, "print the stored artifact as JSON")

	return func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return usagef("want exactly one FILE, got %d arguments", len(args))
		}
		file := args[0]
		lbls, err := parseLabels(labels)
		if err != nil {
			return err
		}
		for _, t := range tags {
			if t == "" {
				return usagef("empty --tag")
			}
		}
		artName := *name
		if artName == "" {
			artName = filepath.Base(file)
		}
		commitSet := false
		fs.Visit(func(f *flag.Flag) { commitSet = commitSet || f.Name == "commit" })
		cm := *commit
		if !commitSet && c.gitCommit != nil {
			cm = c.gitCommit(ctx)
		}
		client, err := c.client(*server)
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
			Tags:     tags,
			SHA256:   sum,
			Progress: bar.Set,
		})
		if err != nil {
			bar.Clear()
			if apiclient.IsConflict(err) {
				return fmt.Errorf("%w\n(%s already holds different bytes; artifacts are immutable, push under a new name or version)", err, artName)
			}
			return err
		}
		bar.Finish()
		if *asJSON {
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

func (c *cli) pullCmd(fs *flag.FlagSet) func(context.Context, []string) error {
	server := c.serverFlag(fs)
	var out string
	fs.StringVar(&out, "o", "", "output `file`, or - for stdout (default: NAME's base name)")
	fs.StringVar(&out, "output", "", "same as -o")

	return func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return usagef("want exactly one NAME, got %d arguments", len(args))
		}
		name := args[0]
		client, err := c.client(*server)
		if err != nil {
			return err
		}
		dest := out
		if dest == "" {
			dest = path.Base(name)
		} else if dest != "-" {
			if st, err := os.Stat(dest); err == nil && st.IsDir() {
				dest = filepath.Join(dest, path.Base(name))
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
		if err := writeVerified(dest, src, want, info.Size); err != nil {
			bar.Clear()
			return fmt.Errorf("pull %s: %w", name, err)
		}
		bar.Finish()
		fmt.Fprintf(c.stdout, "saved %s %s (%s)\n", dest, info.Digest, humanBytes(src.n))
		return nil
	}
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
		return err
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

func (c *cli) lsCmd(fs *flag.FlagSet) func(context.Context, []string) error {
	server := c.serverFlag(fs)
	prefix := fs.String("prefix", "", "only names starting with `prefix`")
	tag := fs.String("tag", "", "only artifacts carrying `tag`")
	label := fs.String("label", "", "only artifacts with label `key=value`")
	asJSON := fs.Bool("json", false, "print a JSON array instead of a table")

	return func(ctx context.Context, args []string) error {
		if len(args) != 0 {
			return usagef("unexpected argument %q (use --prefix to filter by name)", args[0])
		}
		if *label != "" {
			if k, _, ok := strings.Cut(*label, "="); !ok || k == "" {
				return usagef("--label %q: want key=value", *label)
			}
		}
		client, err := c.client(*server)
		if err != nil {
			return err
		}
		arts := []apiclient.Artifact{}
		for a, err := range client.ListAll(ctx, apiclient.ListOptions{Prefix: *prefix, Tag: *tag, Label: *label}) {
			if err != nil {
				return err
			}
			arts = append(arts, a)
		}
		if *asJSON {
			return c.printJSON(arts)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSIZE\tDIGEST\tCREATED\tTAGS")
		for _, a := range arts {
			tags := strings.Join(a.Tags, ",")
			if tags == "" {
				tags = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Name, humanBytes(a.Size), shortDigest(a.Digest), formatTime(a.Created), tags)
		}
		return tw.Flush()
	}
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

func (c *cli) infoCmd(fs *flag.FlagSet) func(context.Context, []string) error {
	server := c.serverFlag(fs)
	history := fs.Bool("history", false, "include the tag history")
	return func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return usagef("want exactly one NAME, got %d arguments", len(args))
		}
		client, err := c.client(*server)
		if err != nil {
			return err
		}
		art, err := client.Info(ctx, args[0], *history)
		if err != nil {
			return err
		}
		return c.printJSON(art)
	}
}

// tagSetup builds the tag (add) or untag command.
func tagSetup(add bool) func(c *cli, fs *flag.FlagSet) func(context.Context, []string) error {
	return func(c *cli, fs *flag.FlagSet) func(context.Context, []string) error {
		server := c.serverFlag(fs)
		asJSON := fs.Bool("json", false, "print the updated artifact as JSON")
		return func(ctx context.Context, args []string) error {
			if len(args) != 2 {
				return usagef("want NAME and TAG, got %d arguments", len(args))
			}
			name, tag := args[0], args[1]
			if tag == "" {
				return usagef("empty TAG")
			}
			client, err := c.client(*server)
			if err != nil {
				return err
			}
			var art apiclient.Artifact
			verb := "tagged"
			if add {
				art, err = client.Tag(ctx, name, tag)
			} else {
				verb = "untagged"
				art, err = client.Untag(ctx, name, tag)
			}
			if err != nil {
				return err
			}
			if *asJSON {
				return c.printJSON(art)
			}
			tags := strings.Join(art.Tags, ", ")
			if tags == "" {
				tags = "none"
			}
			fmt.Fprintf(c.stdout, "%s %s %s (tags: %s)\n", verb, art.Name, tag, tags)
			return nil
		}
	}
}

func (c *cli) rmCmd(fs *flag.FlagSet) func(context.Context, []string) error {
	server := c.serverFlag(fs)
	return func(ctx context.Context, args []string) error {
		if len(args) == 0 {
			return usagef("want at least one NAME")
		}
		client, err := c.client(*server)
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
				errs = append(errs, err)
				continue
			}
			fmt.Fprintf(c.stdout, "deleted %s\n", name)
		}
		return errors.Join(errs...)
	}
}

func (c *cli) latestCmd(fs *flag.FlagSet) func(context.Context, []string) error {
	server := c.serverFlag(fs)
	prefix := fs.String("prefix", "", "only names starting with `prefix`")
	tag := fs.String("tag", "", "only artifacts carrying `tag`")
	return func(ctx context.Context, args []string) error {
		if len(args) != 0 {
			return usagef("unexpected argument %q (use --prefix)", args[0])
		}
		client, err := c.client(*server)
		if err != nil {
			return err
		}
		name, err := client.Latest(ctx, *prefix, *tag)
		if err != nil {
			return err
		}
		fmt.Fprintln(c.stdout, name)
		return nil
	}
}

func (c *cli) membersCmd(fs *flag.FlagSet) func(context.Context, []string) error {
	server := c.serverFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	return func(ctx context.Context, args []string) error {
		if len(args) != 0 {
			return usagef("members takes no arguments")
		}
		client, err := c.client(*server)
		if err != nil {
			return err
		}
		m, err := client.Members(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return c.printJSON(m)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tDC\tHTTP\tSTATE\tROLE\tSTATUS\tSHARDS\tUSED\tFREE")
		for _, mem := range m.Members {
			shards, used, free := usageCells(mem)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", mem.ID, dash(mem.Datacenter), dash(mem.HTTPAddr),
				dash(mem.State), dash(mem.Role), dash(mem.Status), shards, used, free)
		}
		return tw.Flush()
	}
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
