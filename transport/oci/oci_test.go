package oci

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/pier-registry/pier/fsm"
)

type env struct {
	t    *testing.T
	node *fakeNode
	srv  *httptest.Server
	dir  string
}

func newEnv(t *testing.T, gate Gate, opts ...func(*Config)) *env {
	t.Helper()
	node := newFakeNode()
	dir := t.TempDir()
	cfg := Config{Node: node, Gate: gate, UploadDir: dir, MaxManifestSize: 64 << 10, ClusterKeys: []string{"test-cluster-key"}}
	for _, o := range opts {
		o(&cfg)
	}
	reg, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	return &env{t: t, node: node, srv: srv, dir: dir}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (e *env) do(method, path string, body io.Reader, h map[string]string) answer {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

func (a answer) code(t *testing.T) string {
	t.Helper()
	var eb errorBody
	if err := json.Unmarshal(a.body, &eb); err != nil || len(eb.Errors) != 1 {
		t.Fatalf("not a spec error body (%d): %q", a.status, a.body)
	}
	return eb.Errors[0].Code
}

func dg(b []byte) digest { return sum("sha256", b) }

func TestParseRoutes(t *testing.T) {
	for _, tc := range []struct {
		path            string
		ok              bool
		kind, repo, arg string
	}{
		{"/v2/", true, "base", "", ""},
		{"/v2/_catalog", true, "catalog", "", ""},
		{"/v2/a/b/blobs/sha256:x", true, "blob", "a/b", "sha256:x"},
		{"/v2/a/blobs/uploads/", true, "uploads", "a", ""},
		{"/v2/a/blobs/uploads/id", true, "upload", "a", "id"},
		{"/v2/a/blobs/b/manifests/latest", true, "manifest", "a/blobs/b", "latest"},
		{"/v2/a/manifests/x/blobs/uploads/", true, "uploads", "a/manifests/x", ""},
		{"/v2/a/tags/list", true, "tags", "a", ""},
		{"/v2/a/referrers/sha256:x", true, "referrers", "a", "sha256:x"},
		{"/v2/a/tags/listx", false, "", "", ""},
		{"/v2/a/blobs/x/y", false, "", "", ""},
		{"/v2/a/blobs/uploads/x/y", false, "", "", ""},
		{"/v2/blobs/x", false, "", "", ""},
		{"/v2/a", false, "", "", ""},
	} {
		rt, ok := parse(tc.path)
		if ok != tc.ok || (ok && (rt.kind != tc.kind || rt.repo != tc.repo || rt.arg != tc.arg)) {
			t.Errorf("parse(%q) = %+v %v", tc.path, rt, ok)
		}
	}
}

func TestParseDigestAndRange(t *testing.T) {
	good := "sha256:" + strings.Repeat("a", 64)
	for s, ok := range map[string]bool{
		good:                                 true,
		"sha512:" + strings.Repeat("0", 128): true,
		"sha256:" + strings.Repeat("A", 64):  false,
		"sha256:" + strings.Repeat("a", 63):  false,
		"sha256:" + strings.Repeat("g", 64):  false,
		"md5:" + strings.Repeat("0", 32):     false,
		strings.Repeat("a", 64):              false,
	} {
		if _, err := parseDigest(s); (err == nil) != ok {
			t.Errorf("parseDigest(%q): %v", s, err)
		}
	}
	for _, tc := range []struct {
		h           string
		off, n      int64
		partial, ok bool
	}{
		{"", 0, 10, false, true},
		{"bytes=2-4", 2, 3, true, true},
		{"bytes=2-", 2, 8, true, true},
		{"bytes=-3", 7, 3, true, true},
		{"bytes=5-100", 5, 5, true, true},
		{"bytes=10-", 0, 0, false, false},
		{"bytes=4-2", 0, 0, false, false},
		{"bytes=x-2", 0, 0, false, false},
		{"items=0-1", 0, 10, false, true},
	} {
		off, n, partial, ok := parseRange(tc.h, 10)
		if off != tc.off || n != tc.n || partial != tc.partial || ok != tc.ok {
			t.Errorf("parseRange(%q) = %d %d %v %v", tc.h, off, n, partial, ok)
		}
	}
}

// A chunked upload refuses a chunk out of order, a chunk shorter than its
// Content-Range and a wrong final digest, each leaving the session as it
// was; the right chunks then make the blob.
func TestChunkedUploadRefusalsChangeNothing(t *testing.T) {
	e := newEnv(t, fakeGate{})
	blob := bytes.Repeat([]byte("0123456789"), 100)
	a := e.do("POST", "/v2/r/blobs/uploads/", nil, nil)
	if a.status != http.StatusAccepted {
		t.Fatalf("POST: %d %s", a.status, a.body)
	}
	loc := a.header.Get("Location")
	patch := func(from, to int, body []byte) answer {
		return e.do("PATCH", loc, bytes.NewReader(body), map[string]string{"Content-Range": fmt.Sprintf("%d-%d", from, to)})
	}
	if a := patch(0, 499, blob[:500]); a.status != http.StatusAccepted || a.header.Get("Range") != "0-499" {
		t.Fatalf("first chunk: %d %q", a.status, a.header.Get("Range"))
	}
	if a := patch(600, 699, blob[600:700]); a.status != http.StatusRequestedRangeNotSatisfiable || a.header.Get("Range") != "0-499" {
		t.Fatalf("chunk out of order: %d %q", a.status, a.header.Get("Range"))
	}
	if a := patch(500, 599, blob[500:550]); a.status != http.StatusBadRequest || a.code(t) != codeSizeInvalid {
		t.Fatalf("short chunk: %d %s", a.status, a.body)
	}
	if a := e.do("PUT", loc+"?digest="+dg([]byte("x")).String(), bytes.NewReader(blob[500:]), nil); a.status != http.StatusBadRequest || a.code(t) != codeDigestInvalid {
		t.Fatalf("wrong digest: %d %s", a.status, a.body)
	}
	if a := e.do("GET", loc, nil, nil); a.status != http.StatusNoContent || a.header.Get("Range") != "0-499" {
		t.Fatalf("session after refusals: %d %q", a.status, a.header.Get("Range"))
	}
	if e.node.uploads != 0 {
		t.Fatalf("%d artifacts committed by refused requests", e.node.uploads)
	}
	// Another repository cannot continue the session.
	if a := e.do("GET", strings.Replace(loc, "/v2/r/", "/v2/s/", 1), nil, nil); a.status != http.StatusNotFound || a.code(t) != codeBlobUploadUnknown {
		t.Fatalf("session from another repo: %d %s", a.status, a.body)
	}
	if a := e.do("PUT", loc+"?digest="+dg(blob).String(), bytes.NewReader(blob[500:]), nil); a.status != http.StatusCreated {
		t.Fatalf("final PUT: %d %s", a.status, a.body)
	}
	if a := e.do("GET", "/v2/r/blobs/"+dg(blob).String(), nil, nil); a.status != http.StatusOK || !bytes.Equal(a.body, blob) {
		t.Fatalf("GET blob: %d", a.status)
	}
	if files, _ := os.ReadDir(e.dir); len(files) != 0 {
		t.Fatalf("session files left behind: %d", len(files))
	}
}

func TestSHA512Blob(t *testing.T) {
	e := newEnv(t, fakeGate{})
	blob := []byte("sha512 content")
	s := sha512.Sum512(blob)
	d := "sha512:" + hex.EncodeToString(s[:])
	wrong := "sha512:" + strings.Repeat("0", 128)
	if a := e.do("POST", "/v2/r/blobs/uploads/?digest="+wrong, bytes.NewReader(blob), nil); a.status != http.StatusBadRequest || a.code(t) != codeDigestInvalid {
		t.Fatalf("wrong sha512: %d %s", a.status, a.body)
	}
	if e.node.uploads != 0 {
		t.Fatal("a blob with a wrong sha512 was committed")
	}
	if a := e.do("POST", "/v2/r/blobs/uploads/?digest="+d, bytes.NewReader(blob), nil); a.status != http.StatusCreated {
		t.Fatalf("sha512 push: %d %s", a.status, a.body)
	}
	if a := e.do("HEAD", "/v2/r/blobs/"+d, nil, nil); a.status != http.StatusOK || a.header.Get("Docker-Content-Digest") != d {
		t.Fatalf("HEAD sha512 blob: %d %v", a.status, a.header)
	}
}

func (e *env) pushBlob(repo string, b []byte) {
	e.t.Helper()
	if a := e.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+dg(b).String(), bytes.NewReader(b), nil); a.status != http.StatusCreated {
		e.t.Fatalf("push blob: %d %s", a.status, a.body)
	}
}

func imageManifest(config []byte, layers ...[]byte) []byte {
	m := manifest{SchemaVersion: 2, MediaType: mediaOCIManifest,
		Config: &descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: dg(config).String(), Size: int64(len(config))}}
	for _, l := range layers {
		m.Layers = append(m.Layers, descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: dg(l).String(), Size: int64(len(l))})
	}
	b, _ := json.Marshal(m)
	return b
}

func TestManifestRefusals(t *testing.T) {
	e := newEnv(t, fakeGate{})
	config, layer := []byte("{}"), []byte("layer")
	e.pushBlob("r", config)
	e.pushBlob("r", layer)
	before := e.node.uploads
	ct := map[string]string{"Content-Type": mediaOCIManifest}
	good := imageManifest(config, layer)
	wrongSize := bytes.Replace(good, []byte(`"size":5`), []byte(`"size":6`), 1)
	for _, tc := range []struct {
		name, ref string
		body      []byte
		hdr       map[string]string
		status    int
		code      string
	}{
		{"not JSON", "t", []byte("{"), ct, 400, codeManifestInvalid},
		{"schema 1", "t", []byte(`{"schemaVersion":1}`), ct, 400, codeManifestInvalid},
		{"missing blob", "t", imageManifest(config, []byte("absent")), ct, 400, codeManifestBlobUnknown},
		{"wrong size", "t", wrongSize, ct, 400, codeManifestInvalid},
		{"digest mismatch", dg([]byte("other")).String(), good, ct, 400, codeDigestInvalid},
		{"bad tag", "-bad", good, ct, 400, codeManifestInvalid},
		{"media type mismatch", "t", good, map[string]string{"Content-Type": mediaOCIIndex}, 400, codeManifestInvalid},
		{"too large", "t", bytes.Repeat([]byte(" "), 65<<10), ct, 413, codeSizeInvalid},
	} {
		a := e.do("PUT", "/v2/r/manifests/"+tc.ref, bytes.NewReader(tc.body), tc.hdr)
		if a.status != tc.status || a.code(t) != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, a.status, a.body, tc.status, tc.code)
		}
	}
	if e.node.uploads != before {
		t.Fatalf("refused manifests committed %d artifacts", e.node.uploads-before)
	}
	if a := e.do("GET", "/v2/r/tags/list", nil, nil); !bytes.Contains(a.body, []byte(`"tags":[]`)) {
		t.Fatalf("tags after refusals: %s", a.body)
	}
}

// A tag moved between manifests resolves to the one that got it last, on
// every read, and the move takes it off the other; a tag deleted is gone
// while its manifest stays by digest.
func TestTagMovesAndDeletes(t *testing.T) {
	e := newEnv(t, fakeGate{})
	config, l1, l2 := []byte("{}"), []byte("one"), []byte("two")
	for _, b := range [][]byte{config, l1, l2} {
		e.pushBlob("r", b)
	}
	m1, m2 := imageManifest(config, l1), imageManifest(config, l2)
	ct := map[string]string{"Content-Type": mediaOCIManifest}
	for _, m := range [][]byte{m1, m2, m1} {
		if a := e.do("PUT", "/v2/r/manifests/v1", bytes.NewReader(m), ct); a.status != http.StatusCreated {
			t.Fatalf("PUT: %d %s", a.status, a.body)
		}
		if a := e.do("GET", "/v2/r/manifests/v1", nil, nil); !bytes.Equal(a.body, m) || a.header.Get("Content-Type") != mediaOCIManifest {
			t.Fatalf("after moving v1: got %s", a.header.Get("Docker-Content-Digest"))
		}
		holders := 0
		e.node.mu.Lock()
		for _, a := range e.node.arts {
			if slices.Contains(a.Tags, "v1") {
				holders++
			}
		}
		e.node.mu.Unlock()
		if holders != 1 {
			t.Fatalf("%d manifests hold v1 after the move", holders)
		}
	}
	// A half-done move (two holders) reads as the newer one.
	if _, err := e.node.Tag(t.Context(), manifestName("r", dg(m2)), "v1", "x", true); err != nil {
		t.Fatal(err)
	}
	if a := e.do("GET", "/v2/r/manifests/v1", nil, nil); !bytes.Equal(a.body, m2) {
		t.Fatalf("two holders: got %s, want the newer", a.header.Get("Docker-Content-Digest"))
	}
	if a := e.do("DELETE", "/v2/r/manifests/v1", nil, nil); a.status != http.StatusAccepted {
		t.Fatalf("DELETE tag: %d %s", a.status, a.body)
	}
	if a := e.do("GET", "/v2/r/manifests/v1", nil, nil); a.status != http.StatusNotFound || a.code(t) != codeManifestUnknown {
		t.Fatalf("deleted tag: %d %s", a.status, a.body)
	}
	if a := e.do("HEAD", "/v2/r/manifests/"+dg(m1).String(), nil, nil); a.status != http.StatusOK {
		t.Fatalf("manifest after its tag went: %d", a.status)
	}
	if a := e.do("DELETE", "/v2/r/manifests/"+dg(m1).String(), nil, nil); a.status != http.StatusAccepted {
		t.Fatalf("DELETE manifest: %d", a.status)
	}
	if a := e.do("GET", "/v2/r/manifests/"+dg(m1).String(), nil, nil); a.status != http.StatusNotFound {
		t.Fatalf("deleted manifest: %d", a.status)
	}
}

func TestTagsAndCatalogPages(t *testing.T) {
	e := newEnv(t, fakeGate{})
	config := []byte("{}")
	e.pushBlob("r", config)
	e.pushBlob("s/t", config)
	m := imageManifest(config)
	for _, tag := range []string{"c", "a", "b"} {
		if a := e.do("PUT", "/v2/r/manifests/"+tag, bytes.NewReader(m), map[string]string{"Content-Type": mediaOCIManifest}); a.status != http.StatusCreated {
			t.Fatalf("PUT %s: %d %s", tag, a.status, a.body)
		}
	}
	for q, want := range map[string]string{
		"":            `{"name":"r","tags":["a","b","c"]}`,
		"?n=2":        `{"name":"r","tags":["a","b"]}`,
		"?n=2&last=b": `{"name":"r","tags":["c"]}`,
		"?last=c":     `{"name":"r","tags":[]}`,
		"?n=0":        `{"name":"r","tags":[]}`,
	} {
		if a := e.do("GET", "/v2/r/tags/list"+q, nil, nil); string(a.body) != want {
			t.Errorf("tags%s: %s, want %s", q, a.body, want)
		}
	}
	if a := e.do("GET", "/v2/r/tags/list?n=-1", nil, nil); a.status != http.StatusBadRequest {
		t.Errorf("n=-1: %d", a.status)
	}
	if a := e.do("GET", "/v2/r/tags/list?n=1", nil, nil); a.header.Get("Link") != `</v2/r/tags/list?last=a&n=1>; rel="next"` {
		t.Errorf("Link: %q", a.header.Get("Link"))
	}
	if a := e.do("GET", "/v2/_catalog", nil, nil); string(a.body) != `{"repositories":["r","s/t"]}` {
		t.Errorf("catalog: %s", a.body)
	}
}

func TestReferrers(t *testing.T) {
	e := newEnv(t, fakeGate{})
	config := []byte("{}")
	e.pushBlob("r", config)
	subject := imageManifest(config)
	ct := map[string]string{"Content-Type": mediaOCIManifest}
	e.do("PUT", "/v2/r/manifests/base", bytes.NewReader(subject), ct)
	sig := manifest{SchemaVersion: 2, MediaType: mediaOCIManifest, ArtifactType: "application/vnd.example.sig",
		Config:      &descriptor{MediaType: "application/vnd.oci.empty.v1+json", Digest: dg(config).String(), Size: 2},
		Subject:     &descriptor{MediaType: mediaOCIManifest, Digest: dg(subject).String(), Size: int64(len(subject))},
		Annotations: map[string]string{"org.example": "yes"}}
	b, _ := json.Marshal(sig)
	a := e.do("PUT", "/v2/r/manifests/"+dg(b).String(), bytes.NewReader(b), ct)
	if a.status != http.StatusCreated || a.header.Get("OCI-Subject") != dg(subject).String() {
		t.Fatalf("PUT referrer: %d %v %s", a.status, a.header, a.body)
	}
	for q, n := range map[string]int{"": 1, "?artifactType=application/vnd.example.sig": 1, "?artifactType=other": 0} {
		a := e.do("GET", "/v2/r/referrers/"+dg(subject).String()+q, nil, nil)
		var idx manifest
		if err := json.Unmarshal(a.body, &idx); err != nil || a.header.Get("Content-Type") != mediaOCIIndex || len(idx.Manifests) != n {
			t.Fatalf("referrers%s: %d %s", q, a.status, a.body)
		}
		if n == 1 && (idx.Manifests[0].Digest != dg(b).String() || idx.Manifests[0].ArtifactType != sig.ArtifactType ||
			idx.Manifests[0].Annotations["org.example"] != "yes") {
			t.Fatalf("referrer entry: %s", a.body)
		}
	}
}

func TestGateRefusals(t *testing.T) {
	e := newEnv(t, fakeGate{refuse: map[string]int{"": 401, fsm.ActionPush: 403, fsm.ActionDelete: 429}})
	a := e.do("GET", "/v2/", nil, nil)
	if a.status != 401 || !strings.HasPrefix(a.header.Get("WWW-Authenticate"), `Bearer realm="http://`) ||
		len(a.header.Values("WWW-Authenticate")) != 1 || a.code(t) != codeUnauthorized {
		t.Fatalf("401: %d %v %s", a.status, a.header, a.body)
	}
	if a := e.do("POST", "/v2/r/blobs/uploads/", nil, nil); a.status != 403 || a.code(t) != codeDenied {
		t.Fatalf("403: %d %s", a.status, a.body)
	}
	if a := e.do("DELETE", "/v2/r/blobs/"+dg(nil).String(), nil, nil); a.status != 429 || a.code(t) != codeTooManyRequests {
		t.Fatalf("429: %d %s", a.status, a.body)
	}
	if a := e.do("GET", "/v2/r/blobs/"+dg(nil).String(), nil, nil); a.status != 404 || a.code(t) != codeBlobUnknown {
		t.Fatalf("pull allowed: %d %s", a.status, a.body)
	}
	if a := e.do("POST", "/v2/r/manifests/x", nil, nil); a.status != http.StatusMethodNotAllowed || a.code(t) != codeUnsupported {
		t.Fatalf("405: %d %s", a.status, a.body)
	}
}

func TestBodyLimits(t *testing.T) {
	for st, code := range map[int]string{429: codeTooManyRequests, 413: codeSizeInvalid} {
		e := newEnv(t, fakeGate{refuse: map[string]int{"body": st}})
		blob := []byte("x")
		a := e.do("POST", "/v2/r/blobs/uploads/?digest="+dg(blob).String(), bytes.NewReader(blob), nil)
		if a.status != st || a.code(t) != code {
			t.Errorf("body refused with %d: %d %s", st, a.status, a.body)
		}
		if e.node.uploads != 0 {
			t.Errorf("a refused body was committed")
		}
	}
}

// A mount names its source, or not (the spec's anonymous mount): either
// way the blob is bound in the new repository; an unknown blob opens a
// session instead.
func TestMount(t *testing.T) {
	e := newEnv(t, fakeGate{})
	blob := []byte("shared layer")
	e.pushBlob("src", blob)
	for _, q := range []string{"&from=src", ""} {
		repo := "dst" + strings.TrimPrefix(q, "&from=")
		a := e.do("POST", "/v2/"+repo+"/blobs/uploads/?mount="+dg(blob).String()+q, nil, nil)
		if a.status != http.StatusCreated || a.header.Get("Location") != "/v2/"+repo+"/blobs/"+dg(blob).String() {
			t.Fatalf("mount %q: %d %v %s", q, a.status, a.header, a.body)
		}
		if a := e.do("GET", "/v2/"+repo+"/blobs/"+dg(blob).String(), nil, nil); !bytes.Equal(a.body, blob) {
			t.Fatalf("mounted blob in %s: %d", repo, a.status)
		}
	}
	if a := e.do("POST", "/v2/dst/blobs/uploads/?mount="+dg([]byte("unknown")).String()+"&from=src", nil, nil); a.status != http.StatusAccepted {
		t.Fatalf("mount of an unknown blob: %d, want 202", a.status)
	}
}

// A monolithic push whose body ends before its Content-Length stores
// nothing.
func TestTruncatedBody(t *testing.T) {
	e := newEnv(t, fakeGate{})
	blob := []byte("0123456789")
	req, _ := http.NewRequest("POST", e.srv.URL+"/v2/r/blobs/uploads/?digest="+dg(blob).String(), io.NopCloser(bytes.NewReader(blob[:5])))
	req.ContentLength = 10
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("truncated body: %d", resp.StatusCode)
		}
	}
	if e.node.uploads != 0 {
		t.Fatal("a truncated body was committed")
	}
}
