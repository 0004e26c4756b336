package clustertest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
	"github.com/pier-registry/pier/transport/server"
)

// importAnswer is the JSON of POST /api/v1/import.
type importAnswer struct {
	cluster.ImportResult
	Error string `json:"error"`
}

func importBundle(t *testing.T, base string, b []byte) (int, importAnswer) {
	t.Helper()
	r := Do(t, http.MethodPost, base+"/api/v1/import", bytes.NewReader(b), nil)
	var a importAnswer
	r.JSON(t, &a)
	return r.Status, a
}

// Acceptance 6: a bundle exported from dc1 and imported into a cluster
// with no link to it pulls identical on every node, with its metadata and
// origin; a re-import changes nothing; a name the target holds with other
// bytes keeps them; a bundle with a wrong digest binds nothing of that
// entry, and a truncated one stops with a clear error.
func TestBundleExportImportWithNoLink(t *testing.T) {
	dc1 := New(t, 3, Options{})
	dc3 := New(t, 3, Options{Tune: func(i int, cfg *server.Config) { cfg.Node.Datacenter = "dc3" }})

	big := bytes.Repeat([]byte("sneakernet bytes "), 20000) // 340 KB: erasure-coded
	small := []byte("a small artifact, replicated in full")
	clash1, clash3 := []byte("dc1's bytes of team/clash.bin"), []byte("dc3's own bytes of team/clash.bin")
	fedPut(t, dc1.Nodes[0].URL, "team/app-2.0.jar", big, http.Header{
		"X-Pier-Version": {"2.0"}, "X-Pier-Commit": {"cafe01"}, "X-Pier-Label": {"team=core"}, "X-Pier-Tag": {"production-ready"}})
	fedPut(t, dc1.Nodes[1].URL, "team/notes.txt", small, http.Header{"X-Pier-Label": {"kind=doc"}})
	fedPut(t, dc1.Nodes[2].URL, "team/clash.bin", clash1, nil)
	fedPut(t, dc1.Nodes[0].URL, "other/skip.bin", []byte("not under the prefix"), nil)
	fedPut(t, dc3.Nodes[0].URL, "team/clash.bin", clash3, nil)
	// A tag added after the push: the import keeps when it was added.
	if r := Do(t, http.MethodPut, dc1.Nodes[1].URL+"/api/v1/tags/verified?name=team/notes.txt", nil, nil); r.Status != http.StatusOK {
		t.Fatalf("tag: %d %s", r.Status, r.Body)
	}

	r := Do(t, http.MethodGet, dc1.Nodes[1].URL+"/api/v1/export?prefix=team/", nil, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("export: %d %s", r.Status, r.Body)
	}
	bundle := r.Body
	t.Logf("bundle of 3 artifacts: %d bytes", len(bundle))

	// A bundle with one flipped byte in the big artifact: that entry is
	// refused (its digest), the others go in.
	bad := bytes.Clone(bundle)
	i := bytes.Index(bad, big[:4096])
	if i < 0 {
		t.Fatal("big artifact not found in the bundle")
	}
	bad[i+1000] ^= 1
	st, a := importBundle(t, dc3.Nodes[1].URL, bad)
	if st != http.StatusOK || len(a.Errors) != 1 || a.Errors[0].Name != "team/app-2.0.jar" ||
		!strings.Contains(a.Errors[0].Error, "sha256") || a.Imported != 1 {
		t.Fatalf("import with a wrong digest: %d %+v", st, a)
	}
	for _, n := range dc3.Nodes {
		if _, _, ok := n.Srv.Node.FSM().Binding("team/app-2.0.jar"); ok {
			t.Fatalf("%s: the entry with a wrong digest is bound", n.ID)
		}
	}

	// Cut in the middle of the big artifact's bytes: 400, nothing of it
	// bound, and the answer says how far it got.
	st, a = importBundle(t, dc3.Nodes[2].URL, bundle[:i+50000])
	if st != http.StatusBadRequest || a.Complete || !strings.Contains(a.Error, "corrupt bundle") {
		t.Fatalf("truncated import: %d %+v", st, a)
	}
	if _, _, ok := dc3.Nodes[0].Srv.Node.FSM().Binding("team/app-2.0.jar"); ok {
		t.Fatal("the truncated entry is bound")
	}
	// Not a bundle at all.
	if st, a := importBundle(t, dc3.Nodes[0].URL, []byte("GET / HTTP/1.0\r\n")); st != http.StatusBadRequest || a.Error == "" {
		t.Fatalf("garbage import: %d %+v", st, a)
	}

	// The whole bundle: the big one now, notes skipped, the clash kept.
	st, a = importBundle(t, dc3.Nodes[1].URL, bundle)
	if st != http.StatusOK || !a.Complete || a.Imported != 1 || a.Skipped != 1 || a.Datacenter != "dc1" || len(a.Errors) != 0 ||
		len(a.Conflicts) != 1 || a.Conflicts[0].LocalDigest != Digest(clash3) || a.Conflicts[0].BundleDigest != Digest(clash1) {
		t.Fatalf("import: %d %+v", st, a)
	}
	if err := pulled(t, dc3, "team/app-2.0.jar", big); err != nil {
		t.Fatal(err)
	}
	if err := pulled(t, dc3, "team/notes.txt", small); err != nil {
		t.Fatal(err)
	}
	if err := pulled(t, dc3, "team/clash.bin", clash3); err != nil {
		t.Fatal(err)
	}
	if r := Do(t, http.MethodGet, dc3.Nodes[0].URL+"/artifacts/other/skip.bin", nil, nil); r.Status != http.StatusNotFound {
		t.Fatalf("outside the prefix: %d", r.Status)
	}
	for _, name := range []string{"team/app-2.0.jar", "team/notes.txt"} {
		src, _ := dc1.Nodes[0].Srv.Node.FSM().Get(name)
		for _, n := range dc3.Nodes {
			got, err := n.Srv.Node.StatFresh(context.Background(), name) // tags: after a barrier
			if err != nil || got.Digest != src.Digest || got.Version != src.Version || got.Commit != src.Commit ||
				!got.Created.Equal(src.Created) || fmt.Sprint(got.Labels) != fmt.Sprint(src.Labels) ||
				fmt.Sprint(got.Tags) != fmt.Sprint(src.Tags) {
				t.Fatalf("%s: %s imported as %+v, source %+v", n.ID, name, got, src)
			}
		}
		if src, got := dc1.Nodes[0].Srv.Node.History(name), dc3.Nodes[0].Srv.Node.History(name); fmt.Sprint(lastTimes(src)) != fmt.Sprint(lastTimes(got)) {
			t.Fatalf("%s: tag history %+v, source %+v", name, got, src)
		}
		var info struct {
			Origin  string `json:"origin"`
			Created string `json:"created"`
		}
		Do(t, http.MethodGet, dc3.Nodes[2].URL+"/api/v1/artifacts/"+name, nil, nil).JSON(t, &info)
		if info.Origin != "dc1" || info.Created != src.Created.UTC().Format(time.RFC3339) {
			t.Fatalf("%s: info %+v", name, info)
		}
	}

	// Again: nothing new.
	st, a = importBundle(t, dc3.Nodes[0].URL, bundle)
	if st != http.StatusOK || a.Imported != 0 || a.Skipped != 2 || len(a.Conflicts) != 1 {
		t.Fatalf("re-import: %d %+v", st, a)
	}

	// since after everything: an empty bundle, still whole.
	r = Do(t, http.MethodGet, dc1.Nodes[0].URL+"/api/v1/export?since="+time.Now().Add(time.Hour).UTC().Format(time.RFC3339), nil, nil)
	if st, a := importBundle(t, dc3.Nodes[0].URL, r.Body); st != http.StatusOK || !a.Complete || a.Imported+a.Skipped != 0 {
		t.Fatalf("empty bundle: %d %+v", st, a)
	}
	if r := Do(t, http.MethodGet, dc1.Nodes[0].URL+"/api/v1/export?since=yesterday", nil, nil); r.Status != http.StatusBadRequest {
		t.Fatalf("bad since: %d %s", r.Status, r.Body)
	}
}

// Export needs pull on every name under its prefix, import needs admin.
func TestBundleAuth(t *testing.T) {
	c, admin := authCluster(t, 1)
	n := c.Nodes[0].URL
	if st := authed(t, "PUT", n+"/artifacts/team/a.bin", admin, []byte("team bytes")); st != http.StatusCreated {
		t.Fatalf("push: %d", st)
	}
	reader := createToken(t, n, admin, `{"name":"mirror","owner":"mirror-bot","scopes":["pull:team/*"]}`)
	get := func(secret, q string) Response {
		req, _ := http.NewRequest("GET", n+"/api/v1/export"+q, nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return Response{Status: resp.StatusCode, Body: b}
	}
	var bundle []byte
	Eventually(t, Wait(), func() error {
		r := get(reader, "?prefix=team/")
		if r.Status != http.StatusOK {
			return fmt.Errorf("export of team/ with pull:team/*: %d %s", r.Status, r.Body)
		}
		bundle = r.Body
		return nil
	})
	if r := get(reader, ""); r.Status != http.StatusForbidden {
		t.Fatalf("export of everything with pull:team/*: %d %s", r.Status, r.Body)
	}
	if st := authed(t, "POST", n+"/api/v1/import", reader, bundle); st != http.StatusForbidden {
		t.Fatalf("import with a pull token: %d", st)
	}
	if st := authed(t, "POST", n+"/api/v1/import", "", bundle); st != http.StatusUnauthorized {
		t.Fatalf("import without a token: %d", st)
	}
	if st := authed(t, "POST", n+"/api/v1/import", admin, bundle); st != http.StatusOK {
		t.Fatalf("import with admin: %d", st)
	}
}

// lastTimes is when each tag was last changed, and how.
func lastTimes(h []fsm.TagEvent) map[string]string {
	out := map[string]string{}
	for _, e := range h {
		out[e.Tag] = e.Action + "@" + e.Time.UTC().Format(time.RFC3339Nano)
	}
	return out
}
