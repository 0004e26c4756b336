package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pier-registry/pier/transport/apiclient"
)

// exportCmd is `pier export`: a bundle of a cluster's artifacts in a file,
// for a network with no link to it.
func (c *cli) exportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export -o FILE",
		Short: "write artifacts to a bundle file for a cluster with no link",
		Long: `Writes the artifacts under --prefix created at or after --since to FILE, a tar bundle
that 'pier import' reads into a cluster with no network link to this one (a sneakernet
mirror). Each artifact keeps its version, commit, labels, tags, tag history, created time
and origin datacenter.

The bundle is checked while it is written (every artifact's SHA-256, the manifest at the
end) into FILE.partial, which is renamed to FILE only when whole. An existing FILE is
kept unless --force. --since takes an RFC 3339 time, a date (2026-12-01, UTC) or a
duration back from now (72h).`,
		Example: `  pier export -o mirror.tar
  pier export --prefix team/myapp/ --since 2026-12-01 -o myapp-december.tar
  pier export --since 72h -o last-3-days.tar --force`,
		Args: noArgs,
	}
	c.clientFlags(cmd)
	out := cmd.Flags().StringP("output", "o", "", "bundle `file` to write (required)")
	prefix := cmd.Flags().String("prefix", "", "only names starting with this `prefix`")
	sinceFlag := cmd.Flags().String("since", "", "only artifacts created at or after this `time` (RFC 3339, date or duration)")
	force := cmd.Flags().BoolP("force", "f", false, "replace an existing FILE")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if *out == "" {
			return usagef("-o FILE is required: the bundle is binary")
		}
		since, err := parseSince(*sinceFlag, time.Now())
		if err != nil {
			return usagef("--since: %v", err)
		}
		if _, err := os.Stat(*out); err == nil && !*force {
			return &localConflictError{msg: fmt.Sprintf("%s exists; --force replaces it", *out)}
		}
		client, err := c.client()
		if err != nil {
			return err
		}
		tmp := *out + ".partial"
		f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		bar := c.newBar("export "+filepath.Base(*out), -1)
		info, m, err := client.Export(ctxOf(cmd), *prefix, since, f, func(n int64) { bar.Set(n) })
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp, *out)
		}
		if err != nil {
			bar.Clear()
			os.Remove(tmp)
			return fmt.Errorf("export to %s: %w", *out, err)
		}
		bar.Finish()
		fmt.Fprintf(c.stdout, "exported %d artifacts (%s) from %s to %s\n", m.Artifacts, humanBytes(m.Bytes), info.Datacenter, *out)
		return nil
	}
	return cmd
}

// parseSince reads --since: an RFC 3339 time, a date (UTC), or a duration
// back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time, a date (2026-12-01) or a duration (72h)", s)
}

// importCmd is `pier import FILE`.
func (c *cli) importCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "read a bundle written by 'pier export' into this cluster",
		Long: `Sends FILE, a bundle written by 'pier export', to a node, which stores each artifact it
does not hold through its own write path (SHA-256 checked before the name is bound) with
the metadata, created time and origin datacenter the bundle carries. Needs admin.

Running it again is harmless: names bound to the same bytes are skipped. A name this
cluster binds to other bytes, or deleted here, is listed and left as it is. A bundle cut
short imports what came before the cut and says so.

Exit status: 0 when every artifact is imported or skipped; 4 when any conflicted or was
deleted here; 1 when an entry failed or the bundle is corrupt.`,
		Example: `  pier import mirror.tar --server 10.9.0.5:8081
  pier import myapp-december.tar -o json`,
		Args: exactArgs(1, "the bundle FILE"),
	}
	c.clientFlags(cmd)
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		path := args[0]
		st, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("import: %s is not a file", path)
		}
		client, err := c.client()
		if err != nil {
			return err
		}
		bar := c.newBar("import "+filepath.Base(path), st.Size())
		body := func() (io.ReadCloser, error) { return os.Open(path) }
		res, err := client.Import(ctxOf(cmd), body, st.Size(), func(n int64) { bar.Set(n) })
		bar.Clear()
		if res.Datacenter == "" && res.Imported == 0 && res.Skipped == 0 && err != nil {
			return err
		}
		if *output == "json" {
			if perr := c.printJSON(res); perr != nil {
				return perr
			}
		} else {
			c.printImport(res)
		}
		switch {
		case err != nil:
			return err
		case len(res.Errors) > 0:
			return fmt.Errorf("import: %d entries failed", len(res.Errors))
		case len(res.Conflicts) > 0 || len(res.Deleted) > 0:
			return &localConflictError{msg: fmt.Sprintf("import: %d names conflict, %d are deleted here; they were left as they are",
				len(res.Conflicts), len(res.Deleted))}
		case !res.Complete:
			return errors.New("import: the bundle was not read to its end")
		}
		return nil
	}
	return cmd
}

func (c *cli) printImport(r apiclient.ImportResult) {
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "SOURCE\tIMPORTED\tBYTES\tSKIPPED\tCONFLICTS\tDELETED HERE\tERRORS\tCOMPLETE\n")
	fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%d\t%v\n", r.Datacenter, r.Imported, humanBytes(r.Bytes), r.Skipped,
		len(r.Conflicts), len(r.Deleted), len(r.Errors), r.Complete)
	tw.Flush()
	for _, cf := range r.Conflicts {
		fmt.Fprintf(c.stdout, "conflict: %s is %s here, %s in the bundle (kept as it is here)\n", cf.Name, cf.LocalDigest, cf.BundleDigest)
	}
	if len(r.Deleted) > 0 {
		fmt.Fprintf(c.stdout, "deleted here, not restored: %s\n", strings.Join(r.Deleted, ", "))
	}
	for _, e := range r.Errors {
		fmt.Fprintf(c.stdout, "failed: %s: %s\n", e.Name, e.Error)
	}
}
