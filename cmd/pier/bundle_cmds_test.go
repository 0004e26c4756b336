package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pier-registry/pier/testing/clustertest"
	"github.com/pier-registry/pier/transport/server"
)

// pier export from one cluster and pier import into another with no link:
// the artifact pulls identical; a second import skips it (exit 0); an
// existing bundle file is kept without --force (exit 4); a name bound to
// other bytes is a conflict (exit 4); a truncated bundle is an error (exit
// 1) that binds nothing of the cut entry.
func TestExportImportCLI(t *testing.T) {
	src := clustertest.New(t, 1, clustertest.Options{})
	dst := clustertest.New(t, 1, clustertest.Options{Tune: func(_ int, cfg *server.Config) { cfg.Node.Datacenter = "dc3" }})
	dir := t.TempDir()
	app := filepath.Join(dir, "app-1.0.jar")
	body := bytes.Repeat([]byte("bundled "), 50000)
	if err := os.WriteFile(app, body, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(server string, args ...string) (int, *testCLI) {
		c := newTestCLI(map[string]string{"PIER_SERVER": server})
		return c.run(context.Background(), args), c
	}
	if code, c := run(src.Nodes[0].URL, "push", app, "--version", "1.0", "--tag", "qa"); code != 0 {
		t.Fatalf("push: %s", c.errOut)
	}
	bundle := filepath.Join(dir, "mirror.tar")
	if code, c := run(src.Nodes[0].URL, "export", "--since", "1h", "-o", bundle); code != 0 || !strings.Contains(c.out.String(), "exported 1 artifacts") {
		t.Fatalf("export: exit %d: %s %s", code, c.out, c.errOut)
	}
	if code, c := run(src.Nodes[0].URL, "export", "-o", bundle); code != exitConflict {
		t.Fatalf("export over an existing file: exit %d: %s", code, c.errOut)
	}
	if _, err := os.Stat(bundle + ".partial"); !os.IsNotExist(err) {
		t.Fatalf("partial file left: %v", err)
	}

	// Cut inside the artifact's bytes: exit 1, nothing bound.
	whole, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.tar")
	os.WriteFile(cut, whole[:200000], 0o644)
	if code, c := run(dst.Nodes[0].URL, "import", cut); code != exitError || !strings.Contains(c.errOut.String(), "corrupt bundle") {
		t.Fatalf("truncated import: exit %d: %s %s", code, c.out, c.errOut)
	}
	if _, ok := dst.Nodes[0].Srv.Node.FSM().Get("app-1.0.jar"); ok {
		t.Fatal("the cut entry is bound")
	}

	code, c := run(dst.Nodes[0].URL, "import", bundle, "-o", "json")
	var res struct {
		Imported   int    `json:"imported"`
		Datacenter string `json:"datacenter"`
	}
	if code != 0 || json.Unmarshal(c.out.Bytes(), &res) != nil || res.Imported != 1 || res.Datacenter != "dc1" {
		t.Fatalf("import: exit %d: %s %s", code, c.out, c.errOut)
	}
	pulled := filepath.Join(dir, "pulled.jar")
	if code, c := run(dst.Nodes[0].URL, "pull", "app-1.0.jar", "-o", pulled); code != 0 {
		t.Fatalf("pull: %s", c.errOut)
	}
	if got, _ := os.ReadFile(pulled); !bytes.Equal(got, body) {
		t.Fatal("pulled bytes differ")
	}
	a, _ := dst.Nodes[0].Srv.Node.FSM().Get("app-1.0.jar")
	s, _ := src.Nodes[0].Srv.Node.FSM().Get("app-1.0.jar")
	if a.Version != "1.0" || !a.HasTag("qa") || !a.Created.Equal(s.Created) || a.Created.After(time.Now()) {
		t.Fatalf("imported %+v, source %+v", a, s)
	}
	if code, c := run(dst.Nodes[0].URL, "import", bundle); code != 0 || !strings.Contains(c.out.String(), "dc1") {
		t.Fatalf("re-import: exit %d: %s %s", code, c.out, c.errOut)
	}

	// A third cluster that holds the name with other bytes.
	other := clustertest.New(t, 1, clustertest.Options{Tune: func(_ int, cfg *server.Config) { cfg.Node.Datacenter = "dc4" }})
	os.WriteFile(app, []byte("dc4's own app-1.0.jar"), 0o644)
	if code, c := run(other.Nodes[0].URL, "push", app); code != 0 {
		t.Fatalf("push: %s", c.errOut)
	}
	if code, c := run(other.Nodes[0].URL, "import", bundle); code != exitConflict || !strings.Contains(c.out.String(), "conflict: app-1.0.jar") {
		t.Fatalf("conflicting import: exit %d: %s %s", code, c.out, c.errOut)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                     {},
		"2026-12-01":           time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		"2026-12-01T10:00:00Z": time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
		"72h":                  now.Add(-72 * time.Hour),
	} {
		if got, err := parseSince(in, now); err != nil || !got.Equal(want) {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"yesterday", "-1h", "2026-13-01"} {
		if _, err := parseSince(bad, now); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
