package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pier-registry/pier/transport/apiclient"
)

type testCLI struct {
	*cli
	out, errOut *bytes.Buffer
}

func newTestCLI(env map[string]string) *testCLI {
	out, errOut := &bytes.Buffer{}, &bytes.Buffer{}
	return &testCLI{
		cli: &cli{
			stdout:    out,
			stderr:    errOut,
			getenv:    func(k string) string { return env[k] },
			gitCommit: func(context.Context) string { return "deadbeef" },
			now:       time.Now,
		},
		out:    out,
		errOut: errOut,
	}
}

// fakeServer is a minimal stand-in for a node's public API.
type fakeServer struct {
	mu       sync.Mutex
	objects  map[string][]byte
	etags    map[string]string // overrides the computed ETag
	pushed   http.Header
	pushBody []byte
}

func newFakeServer(t *testing.T) (*fakeServer, *httptest.Server) {
	f := &fakeServer{objects: map[string][]byte{}, etags: map[string]string{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	jsonErr := func(status int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": msg})
	}
	name, isObject := strings.CutPrefix(r.URL.Path, "/artifacts/")
	switch {
	case isObject && r.Method == http.MethodPut:
		body, _ := io.ReadAll(r.Body)
		sum := sha256.Sum256(body)
		hexSum := hex.EncodeToString(sum[:])
		if want := r.Header.Get("X-Checksum-Sha256"); want != "" && want != hexSum {
			jsonErr(400, "checksum mismatch")
			return
		}
		status := 201
		if old, ok := f.objects[name]; ok {
			if !bytes.Equal(old, body) {
				jsonErr(409, name+" is bound to other bytes")
				return
			}
			status = 200
		}
		f.objects[name] = body
		f.pushed = r.Header.Clone()
		f.pushBody = body
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(apiclient.Artifact{
			Name: name, Size: int64(len(body)), Digest: "sha256:" + hexSum,
			Version: r.Header.Get("X-Pier-Version"), Commit: r.Header.Get("X-Pier-Commit"),
			Tags: r.Header.Values("X-Pier-Tag"),
		})
	case isObject && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		body, ok := f.objects[name]
		if !ok {
			jsonErr(404, "no such artifact")
			return
		}
		sum := sha256.Sum256(body)
		etag := `"sha256:` + hex.EncodeToString(sum[:]) + `"`
		if e, ok := f.etags[name]; ok {
			etag = e
		}
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/api/v1/artifacts/"):
		name := strings.TrimPrefix(r.URL.Path, "/api/v1/artifacts/")
		if _, ok := f.objects[name]; !ok {
			jsonErr(404, "delete "+name+": not found: "+name)
			return
		}
		delete(f.objects, name)
		w.WriteHeader(http.StatusNoContent)
	case r.URL.Path == "/api/v1/artifacts":
		writeTestJSON(w, apiclient.ListPage{Artifacts: []apiclient.Artifact{{
			Name: "team/app.jar", Size: 1_500_000, Digest: "sha256:" + strings.Repeat("ab", 32),
			Created: time.Date(2026, 11, 25, 19, 0, 0, 0, time.UTC), Tags: []string{"prod", "qa"},
		}}, NextPageToken: map[string]string{"": "p2"}[r.URL.Query().Get("page_token")]})
	case r.URL.Path == "/api/v1/cluster/members":
		writeTestJSON(w, apiclient.MembersResponse{Leader: "node1", Members: []apiclient.Member{
			{ID: "node1", Datacenter: "dc1", HTTPAddr: "127.0.0.1:8081", State: "alive", Role: "leader"},
			{ID: "node2", Datacenter: "dc2", HTTPAddr: "127.0.0.1:8082", State: "suspect", Role: "voter"},
		}})
	case r.URL.Path == "/api/v1/latest":
		w.Header().Set("Location", "/artifacts/team/app%201.jar")
		w.WriteHeader(http.StatusFound)
	default:
		jsonErr(404, "not found")
	}
}

func writeTestJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func TestPullVerifiesDigest(t *testing.T) {
	f, srv := newFakeServer(t)
	f.objects["team/app.jar"] = []byte("the real bytes")
	f.objects["team/bad.jar"] = []byte("corrupted bytes")
	f.etags["team/bad.jar"] = `"sha256:` + strings.Repeat("0", 64) + `"`
	f.objects["team/noetag.jar"] = []byte("x")
	f.etags["team/noetag.jar"] = `"v1"`

	dir := t.TempDir()
	c := newTestCLI(map[string]string{"PIER_SERVER": srv.URL})

	// Good download, into a directory given with -o after the name.
	if code := c.run(context.Background(), []string{"pull", "team/app.jar", "-o", dir}); code != 0 {
		t.Fatalf("pull failed (%d): %s", code, c.errOut)
	}
	got, err := os.ReadFile(filepath.Join(dir, "app.jar"))
	if err != nil || string(got) != "the real bytes" {
		t.Fatalf("content %q, %v", got, err)
	}
	if !strings.HasPrefix(c.out.String(), "saved "+filepath.Join(dir, "app.jar")+" sha256:") {
		t.Fatalf("stdout %q", c.out)
	}

	// Wrong digest: non-zero exit and nothing left behind, not even the
	// temporary file.
	for _, name := range []string{"team/bad.jar", "team/noetag.jar"} {
		c := newTestCLI(nil)
		dest := filepath.Join(dir, "out.bin")
		code := c.run(context.Background(), []string{"pull", "--server", srv.URL, "-o", dest, name})
		if code != 1 {
			t.Fatalf("%s: exit %d, want 1", name, code)
		}
		if name == "team/bad.jar" && !strings.Contains(c.errOut.String(), "digest mismatch") {
			t.Fatalf("%s: stderr %q", name, c.errOut)
		}
		entries, _ := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if !slices.Equal(names, []string{"app.jar"}) {
			t.Fatalf("%s: files left behind: %q", name, names)
		}
	}

	// A failed pull must not clobber an existing file of the same name,
	// not even with --force.
	dest := filepath.Join(dir, "app.jar")
	if code := newTestCLI(nil).run(context.Background(), []string{"pull", "--server", srv.URL, "-o", dest, "--force", "team/bad.jar"}); code != 1 {
		t.Fatalf("exit %d", code)
	}
	if got, _ := os.ReadFile(dest); string(got) != "the real bytes" {
		t.Fatalf("existing file overwritten with %q", got)
	}

	// Missing artifact: exit 3.
	c = newTestCLI(nil)
	if code := c.run(context.Background(), []string{"pull", "--server", srv.URL, "nope"}); code != 3 || !strings.Contains(c.errOut.String(), "404") {
		t.Fatalf("exit %d stderr %q", code, c.errOut)
	}
}

// pull never replaces a file holding other bytes unless told --force,
// leaves one holding the same bytes alone, and creates the directories -o
// names.
func TestPullExistingFilesAndDirectories(t *testing.T) {
	f, srv := newFakeServer(t)
	f.objects["team/app.jar"] = []byte("release bytes")
	dir := t.TempDir()
	dest := filepath.Join(dir, "app.jar")
	if err := os.WriteFile(dest, []byte("my local edit"), 0o600); err != nil {
		t.Fatal(err)
	}
	pull := func(args ...string) (*testCLI, int) {
		c := newTestCLI(map[string]string{"PIER_SERVER": srv.URL})
		return c, c.run(context.Background(), append([]string{"pull", "team/app.jar"}, args...))
	}

	c, code := pull("-o", dest)
	if code != 4 || !strings.Contains(c.errOut.String(), "--force") {
		t.Fatalf("a different file: exit %d, stderr %q; want 4 naming --force", code, c.errOut)
	}
	if got, _ := os.ReadFile(dest); string(got) != "my local edit" {
		t.Fatalf("the local file was replaced without --force: %q", got)
	}
	if c, code = pull("-o", dest, "--force"); code != 0 {
		t.Fatalf("--force: exit %d: %s", code, c.errOut)
	}
	if got, _ := os.ReadFile(dest); string(got) != "release bytes" {
		t.Fatalf("--force did not replace the file: %q", got)
	}
	if c, code = pull("-o", dest); code != 0 || !strings.HasPrefix(c.out.String(), "unchanged "+dest) {
		t.Fatalf("the same bytes again: exit %d, stdout %q, stderr %q", code, c.out, c.errOut)
	}

	for _, o := range []string{filepath.Join(dir, "new", "deep") + "/", filepath.Join(dir, "other", "dir", "x.jar")} {
		if c, code = pull("-o", o); code != 0 {
			t.Fatalf("-o %s: exit %d: %s", o, code, c.errOut)
		}
		want := o
		if strings.HasSuffix(o, "/") {
			want = filepath.Join(o, "app.jar")
		}
		if got, err := os.ReadFile(want); err != nil || string(got) != "release bytes" {
			t.Fatalf("-o %s: %s holds %q, %v", o, want, got, err)
		}
	}
}

func TestPullToStdout(t *testing.T) {
	f, srv := newFakeServer(t)
	f.objects["a/b.txt"] = []byte("to stdout")
	c := newTestCLI(nil)
	if code := c.run(context.Background(), []string{"pull", "a/b.txt", "--server", srv.URL, "-o", "-"}); code != 0 {
		t.Fatalf("exit %d: %s", code, c.errOut)
	}
	if c.out.String() != "to stdout" {
		t.Fatalf("stdout %q", c.out)
	}
}

func TestPushSendsChecksumAndMetadata(t *testing.T) {
	f, srv := newFakeServer(t)
	file := filepath.Join(t.TempDir(), "app.jar")
	if err := os.WriteFile(file, []byte("jar bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newTestCLI(map[string]string{"PIER_SERVER": "127.0.0.1:1," + srv.URL})
	args := []string{"push", file, "--name", "team/app.jar", "--version", "1.2.3", "--label", "os=linux", "--tag", "nightly", "--tag", "qa"}
	if code := c.run(context.Background(), args); code != 0 {
		t.Fatalf("exit %d: %s", code, c.errOut)
	}
	sum := sha256.Sum256([]byte("jar bytes"))
	hexSum := hex.EncodeToString(sum[:])
	f.mu.Lock()
	h := f.pushed
	f.mu.Unlock()
	if h.Get("X-Checksum-Sha256") != hexSum || h.Get("X-Pier-Version") != "1.2.3" || h.Get("X-Pier-Commit") != "deadbeef" ||
		h.Get("X-Pier-Label") != "os=linux" || !slices.Equal(h.Values("X-Pier-Tag"), []string{"nightly", "qa"}) {
		t.Fatalf("headers %v", h)
	}
	if want := "created team/app.jar sha256:" + hexSum + " (9 B)\n"; c.out.String() != want {
		t.Fatalf("stdout %q, want %q", c.out, want)
	}

	// Same bytes again: fine, reported as unchanged; --commit= suppresses
	// the git default.
	c = newTestCLI(map[string]string{"PIER_SERVER": srv.URL})
	if code := c.run(context.Background(), []string{"push", "--commit=", "--json", "--name", "team/app.jar", file}); code != 0 {
		t.Fatalf("exit %d: %s", code, c.errOut)
	}
	var art apiclient.Artifact
	if err := json.Unmarshal(c.out.Bytes(), &art); err != nil || art.Name != "team/app.jar" || art.Commit != "" {
		t.Fatalf("json output %q (%v)", c.out, err)
	}

	// Different bytes under the same name: conflict, exit 4, explained.
	if err := os.WriteFile(file, []byte("other bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	c = newTestCLI(map[string]string{"PIER_SERVER": srv.URL})
	if code := c.run(context.Background(), []string{"push", file, "--name", "team/app.jar"}); code != 4 {
		t.Fatalf("exit %d, want 4", code)
	}
	if !strings.Contains(c.errOut.String(), "409") || !strings.Contains(c.errOut.String(), "immutable") {
		t.Fatalf("stderr %q", c.errOut)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"push"},
		{"push", "a", "b"},
		{"push", "a", "--label", "novalue"},
		{"tag", "only-name"},
		{"ls", "a*", "b*"},
		{"ls", "-o", "yaml"},
		{"ls", "--order", "size"},
		{"ls", "--nope"},
		{"ls", "-json"},
		{"token"},
		{"token", "frob"},
		{"frobnicate"},
		{},
	} {
		c := newTestCLI(nil)
		if code := c.run(context.Background(), args); code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", args, code, c.errOut)
		}
	}
	c := newTestCLI(nil)
	if code := c.run(context.Background(), []string{"push", "-h"}); code != 0 || !strings.Contains(c.out.String(), "pier push FILE") {
		t.Errorf("push -h: exit %d, %q", code, c.out)
	}
	c = newTestCLI(nil)
	if code := c.run(context.Background(), []string{"help", "pull"}); code != 0 || !strings.Contains(c.out.String(), "-o, --output file") {
		t.Errorf("help pull: exit %d, %q", code, c.out)
	}
}

// The old single-dash spelling of a long flag is a usage error that names
// the flag meant.
func TestSingleDashLongFlagHint(t *testing.T) {
	c := newTestCLI(nil)
	if code := c.run(context.Background(), []string{"ls", "-commit", "abc"}); code != 2 || !strings.Contains(c.errOut.String(), "two dashes: --commit") {
		t.Fatalf("exit %d, stderr %q", code, c.errOut)
	}
}

func TestListAndMembersTables(t *testing.T) {
	_, srv := newFakeServer(t)
	c := newTestCLI(nil)
	if code := c.run(context.Background(), []string{"ls", "--server", srv.URL, "--prefix", "team/"}); code != 0 {
		t.Fatalf("exit %d: %s", code, c.errOut)
	}
	want := "NAME          VERSION  SIZE    DIGEST        CREATED               TAGS\n" +
		"team/app.jar  -        1.5 MB  abababababab  2026-11-25T19:00:00Z  prod,qa\n" +
		"team/app.jar  -        1.5 MB  abababababab  2026-11-25T19:00:00Z  prod,qa\n"
	if c.out.String() != want {
		t.Fatalf("ls output\n%s\nwant\n%s", c.out, want)
	}

	c = newTestCLI(nil)
	if code := c.run(context.Background(), []string{"members", "--server", srv.URL}); code != 0 {
		t.Fatalf("exit %d: %s", code, c.errOut)
	}
	want = "ID     DATACENTER  HTTP            STATE    ROLE    STATUS  SHARDS  USED  FREE\n" +
		"node1  dc1         127.0.0.1:8081  alive    leader  -       -       -     -\n" +
		"node2  dc2         127.0.0.1:8082  suspect  voter   -       -       -     -\n"
	if c.out.String() != want {
		t.Fatalf("members output\n%s\nwant\n%s", c.out, want)
	}

	c = newTestCLI(nil)
	if code := c.run(context.Background(), []string{"latest", "--server", srv.URL, "--tag", "prod"}); code != 0 || c.out.String() != "team/app 1.jar\n" {
		t.Fatalf("latest: exit %d out %q err %q", code, c.out, c.errOut)
	}
}

// rm tries every name, says once which were not found, and exits 3.
func TestRmNamesAMissingNameOnce(t *testing.T) {
	f, srv := newFakeServer(t)
	f.objects["a.jar"] = []byte("a")
	c := newTestCLI(map[string]string{"PIER_SERVER": srv.URL})
	if code := c.run(context.Background(), []string{"rm", "nope.jar", "a.jar"}); code != 3 {
		t.Fatalf("exit %d, want 3: %s", code, c.errOut)
	}
	if c.out.String() != "deleted a.jar\n" || strings.Count(c.errOut.String(), "nope.jar") != 1 {
		t.Fatalf("stdout %q stderr %q", c.out, c.errOut)
	}
}

func TestSplitServers(t *testing.T) {
	if got := splitServers(" a:1, ,http://b:2 ,"); !slices.Equal(got, []string{"a:1", "http://b:2"}) {
		t.Fatalf("got %q", got)
	}
}

func TestHealthTarget(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		flag string
		env  map[string]string
		want string
	}{
		{"", nil, "http://127.0.0.1:8081"},
		{"10.0.0.1:9000", map[string]string{"PIER_SERVER": "a:1"}, "http://10.0.0.1:9000"},
		{"", map[string]string{"PIER_SERVER": "a:1,b:2"}, "http://a:1"},
		{"", map[string]string{"PIER_HTTP_ADDR": "0.0.0.0:8080"}, "http://127.0.0.1:8080"},
	}
	for _, tc := range cases {
		if got := healthTarget(tc.flag, env(tc.env)); got != tc.want {
			t.Errorf("healthTarget(%q, %v) = %q, want %q", tc.flag, tc.env, got, tc.want)
		}
	}
}

// --ca-cert (or PIER_CA_CERT) makes the CLI trust a node's HTTPS
// certificate; without it the same command fails on the certificate.
func TestCACertTrustsHTTPSNodes(t *testing.T) {
	f := &fakeServer{objects: map[string][]byte{}, etags: map[string]string{}}
	srv := httptest.NewTLSServer(f)
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"ls", "--server", srv.URL, "--prefix", "team/"}

	c := newTestCLI(nil)
	if code := c.run(context.Background(), args); code == 0 || !strings.Contains(c.errOut.String(), "certificate") {
		t.Fatalf("without --ca-cert: exit %d, stderr %q; want a certificate error", code, c.errOut)
	}
	c = newTestCLI(nil)
	if code := c.run(context.Background(), append(args, "--ca-cert", caFile)); code != 0 {
		t.Fatalf("--ca-cert: exit %d: %s", code, c.errOut)
	}
	c = newTestCLI(map[string]string{"PIER_CA_CERT": caFile})
	if code := c.run(context.Background(), args); code != 0 {
		t.Fatalf("PIER_CA_CERT: exit %d: %s", code, c.errOut)
	}
	c = newTestCLI(nil)
	if code := c.run(context.Background(), append(args, "--ca-cert", filepath.Join(t.TempDir(), "none.pem"))); code == 0 {
		t.Fatal("a missing --ca-cert file was accepted")
	}
}
