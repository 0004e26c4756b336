package clustertest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pier-registry/pier/transport/server"
)

// ociClient speaks /v2/ to one node as a registry client does: every step
// is an HTTP request of the distribution spec, nothing else.
type ociClient struct {
	t    *testing.T
	base string
	user string // basic auth NAME:SECRET, as docker login sends it
}

func (o ociClient) do(method, path string, body []byte, header http.Header) Response {
	o.t.Helper()
	if header == nil {
		header = http.Header{}
	}
	if o.user != "" {
		name, secret, _ := strings.Cut(o.user, ":")
		req, _ := http.NewRequest(method, "http://x", nil)
		req.SetBasicAuth(name, secret)
		header.Set("Authorization", req.Header.Get("Authorization"))
	}
	var r *bytes.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	url := path
	if !strings.HasPrefix(path, "http") {
		url = o.base + path
	}
	if r == nil {
		return Do(o.t, method, url, nil, header)
	}
	return Do(o.t, method, url, r, header)
}

// pushMonolithic is POST ?digest= with the blob as body.
func (o ociClient) pushMonolithic(repo string, blob []byte) {
	o.t.Helper()
	resp := o.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+Digest(blob), blob,
		http.Header{"Content-Type": {"application/octet-stream"}})
	if resp.Status != http.StatusCreated || resp.Header.Get("Docker-Content-Digest") != Digest(blob) {
		o.t.Fatalf("monolithic push to %s: %d %s", repo, resp.Status, resp.Body)
	}
}

// pushChunked opens a session, PATCHes the blob in chunks of size, and
// closes it with an empty PUT ?digest=, following each Location.
func (o ociClient) pushChunked(repo string, blob []byte, size int) {
	o.t.Helper()
	resp := o.do("POST", "/v2/"+repo+"/blobs/uploads/", nil, nil)
	if resp.Status != http.StatusAccepted {
		o.t.Fatalf("open upload: %d %s", resp.Status, resp.Body)
	}
	loc := resp.Header.Get("Location")
	for off := 0; off < len(blob); off += size {
		end := min(off+size, len(blob))
		resp = o.do("PATCH", loc, blob[off:end], http.Header{
			"Content-Type":  {"application/octet-stream"},
			"Content-Range": {fmt.Sprintf("%d-%d", off, end-1)},
		})
		if resp.Status != http.StatusAccepted || resp.Header.Get("Range") != fmt.Sprintf("0-%d", end-1) {
			o.t.Fatalf("PATCH %d-%d: %d %q %s", off, end-1, resp.Status, resp.Header.Get("Range"), resp.Body)
		}
		loc = resp.Header.Get("Location")
	}
	resp = o.do("PUT", loc+"?digest="+Digest(blob), nil, nil)
	if resp.Status != http.StatusCreated {
		o.t.Fatalf("close upload: %d %s", resp.Status, resp.Body)
	}
}

func (o ociClient) putManifest(repo, ref string, m []byte) Response {
	o.t.Helper()
	return o.do("PUT", "/v2/"+repo+"/manifests/"+ref, m,
		http.Header{"Content-Type": {"application/vnd.oci.image.manifest.v1+json"}})
}

func ociManifest(config []byte, layers ...[]byte) []byte {
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int    `json:"size"`
	}
	m := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{2, "application/vnd.oci.image.manifest.v1+json",
		desc{"application/vnd.oci.image.config.v1+json", Digest(config), len(config)}, []desc{}}
	for _, l := range layers {
		m.Layers = append(m.Layers, desc{"application/vnd.oci.image.layer.v1.tar+gzip", Digest(l), len(l)})
	}
	b, _ := json.Marshal(m)
	return b
}

func ociErrorCode(t *testing.T, r Response) string {
	t.Helper()
	var e struct {
		Errors []struct{ Code string }
	}
	if err := json.Unmarshal(r.Body, &e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("not an OCI error body: %q", r.Body)
	}
	return e.Errors[0].Code
}

func patterned(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return b
}

// An image pushed to node 1 through /v2/ exactly as a client pushes it (a
// config blob in one request, a layer in chunks, a layer in a session
// closed by one PUT, a manifest under a tag) is pulled from node 3 with
// the same digests; the tag then moves to a second manifest and every node
// follows; a blob mounts into another repository; the pull goes on with the
// pushing node dead; bad input changes nothing.
func TestOCIPushOnOnePullFromAnother(t *testing.T) {
	c := New(t, 3, Options{})
	n1 := ociClient{t: t, base: c.Nodes[0].URL}
	n2 := ociClient{t: t, base: c.Nodes[1].URL}
	n3 := ociClient{t: t, base: c.Nodes[2].URL}

	if r := n3.do("GET", "/v2/", nil, nil); r.Status != http.StatusOK || r.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Fatalf("GET /v2/: %d %v", r.Status, r.Header)
	}

	const repo = "team/myapp"
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	layer1 := patterned(300<<10, 1) // over the small-object size: erasure-coded
	layer2 := patterned(40<<10, 2)
	n1.pushMonolithic(repo, config)
	n1.pushChunked(repo, layer1, 64<<10)
	// A session closed by a PUT that carries the whole blob.
	r := n1.do("POST", "/v2/"+repo+"/blobs/uploads/", nil, nil)
	if r.Status != http.StatusAccepted {
		t.Fatalf("open upload: %d %s", r.Status, r.Body)
	}
	loc := r.Header.Get("Location")
	// A wrong digest is refused and the session stays usable.
	if r := n1.do("PUT", loc+"?digest="+Digest([]byte("other")), layer2, nil); r.Status != http.StatusBadRequest || ociErrorCode(t, r) != "DIGEST_INVALID" {
		t.Fatalf("PUT with a wrong digest: %d %s", r.Status, r.Body)
	}
	if r := n1.do("GET", loc, nil, nil); r.Status != http.StatusNoContent || r.Header.Get("Range") != "0-0" {
		t.Fatalf("session after a refused PUT: %d %q", r.Status, r.Header.Get("Range"))
	}
	if r := n1.do("PUT", loc+"?digest="+Digest(layer2), layer2, nil); r.Status != http.StatusCreated {
		t.Fatalf("PUT with the blob: %d %s", r.Status, r.Body)
	}

	// A manifest naming a blob the repository lacks is refused.
	missing := ociManifest(config, []byte("never pushed"))
	if r := n1.putManifest(repo, "bad", missing); r.Status != http.StatusBadRequest || ociErrorCode(t, r) != "MANIFEST_BLOB_UNKNOWN" {
		t.Fatalf("manifest with a missing blob: %d %s", r.Status, r.Body)
	}

	m1 := ociManifest(config, layer1, layer2)
	r = n1.putManifest(repo, "1.0", m1)
	if r.Status != http.StatusCreated || r.Header.Get("Docker-Content-Digest") != Digest(m1) {
		t.Fatalf("PUT manifest: %d %s", r.Status, r.Body)
	}

	// Pull from node 3: the manifest by tag, then every blob it names.
	r = n3.do("GET", "/v2/"+repo+"/manifests/1.0", nil, http.Header{"Accept": {"application/vnd.oci.image.manifest.v1+json"}})
	if r.Status != http.StatusOK || Digest(r.Body) != Digest(m1) || r.Header.Get("Docker-Content-Digest") != Digest(m1) ||
		r.Header.Get("Content-Type") != "application/vnd.oci.image.manifest.v1+json" {
		t.Fatalf("GET manifest on node3: %d %v %s", r.Status, r.Header, r.Body)
	}
	var got struct {
		Config struct{ Digest string }
		Layers []struct{ Digest string }
	}
	r.JSON(t, &got)
	want := map[string][]byte{Digest(config): config, Digest(layer1): layer1, Digest(layer2): layer2}
	for _, d := range append([]string{got.Config.Digest}, got.Layers[0].Digest, got.Layers[1].Digest) {
		b := n3.do("GET", "/v2/"+repo+"/blobs/"+d, nil, nil)
		if b.Status != http.StatusOK || Digest(b.Body) != d || !bytes.Equal(b.Body, want[d]) {
			t.Fatalf("GET blob %s on node3: %d, %d bytes", d, b.Status, len(b.Body))
		}
	}
	// HEAD and a range of the big layer.
	if h := n3.do("HEAD", "/v2/"+repo+"/blobs/"+Digest(layer1), nil, nil); h.Status != http.StatusOK ||
		h.Header.Get("Content-Length") != fmt.Sprint(len(layer1)) {
		t.Fatalf("HEAD blob: %d %v", h.Status, h.Header)
	}
	part := n3.do("GET", "/v2/"+repo+"/blobs/"+Digest(layer1), nil, http.Header{"Range": {"bytes=100000-200000"}})
	if part.Status != http.StatusPartialContent || !bytes.Equal(part.Body, layer1[100000:200001]) {
		t.Fatalf("ranged GET: %d, %d bytes", part.Status, len(part.Body))
	}

	// Move the tag: node 1 pushes a second manifest under 1.0; node 2 and
	// node 3 answer the new one, the old stays by digest.
	m2 := ociManifest(config, layer2)
	if r := n1.putManifest(repo, "1.0", m2); r.Status != http.StatusCreated {
		t.Fatalf("PUT second manifest: %d %s", r.Status, r.Body)
	}
	for _, n := range []ociClient{n2, n3} {
		if r := n.do("GET", "/v2/"+repo+"/manifests/1.0", nil, nil); r.Status != http.StatusOK || Digest(r.Body) != Digest(m2) {
			t.Fatalf("moved tag on %s: %d %s", n.base, r.Status, r.Header.Get("Docker-Content-Digest"))
		}
	}
	if r := n3.do("GET", "/v2/"+repo+"/manifests/"+Digest(m1), nil, nil); r.Status != http.StatusOK || !bytes.Equal(r.Body, m1) {
		t.Fatalf("old manifest by digest: %d", r.Status)
	}
	if r := n1.putManifest(repo, "latest", m1); r.Status != http.StatusCreated {
		t.Fatalf("PUT latest: %d %s", r.Status, r.Body)
	}
	var tags struct {
		Name string
		Tags []string
	}
	r = n2.do("GET", "/v2/"+repo+"/tags/list", nil, nil)
	r.JSON(t, &tags)
	if tags.Name != repo || strings.Join(tags.Tags, ",") != "1.0,latest" {
		t.Fatalf("tags: %s", r.Body)
	}
	r = n2.do("GET", "/v2/"+repo+"/tags/list?n=1", nil, nil)
	r.JSON(t, &tags)
	if strings.Join(tags.Tags, ",") != "1.0" || !strings.Contains(r.Header.Get("Link"), "last=1.0") {
		t.Fatalf("first page of tags: %s %q", r.Body, r.Header.Get("Link"))
	}

	// Mount the big layer into another repository through node 2.
	r = n2.do("POST", "/v2/other/blobs/uploads/?mount="+Digest(layer1)+"&from="+repo, nil, nil)
	if r.Status != http.StatusCreated {
		t.Fatalf("mount: %d %s", r.Status, r.Body)
	}
	if b := n3.do("GET", "/v2/other/blobs/"+Digest(layer1), nil, nil); b.Status != http.StatusOK || !bytes.Equal(b.Body, layer1) {
		t.Fatalf("mounted blob on node3: %d", b.Status)
	}
	if b := n3.do("GET", "/v2/other/blobs/"+Digest(layer2), nil, nil); b.Status != http.StatusNotFound || ociErrorCode(t, b) != "BLOB_UNKNOWN" {
		t.Fatalf("blob never pushed to other: %d %s", b.Status, b.Body)
	}

	// Kill node 1, which took every push: node 3 still serves the whole
	// image, the big layer rebuilt from the survivors' shards.
	c.Kill(0)
	Eventually(t, Wait(), func() error {
		r := n3.do("GET", "/v2/"+repo+"/manifests/latest", nil, nil)
		if r.Status != http.StatusOK || Digest(r.Body) != Digest(m1) {
			return fmt.Errorf("manifest with node1 dead: %d", r.Status)
		}
		for d, b := range want {
			got := n3.do("GET", "/v2/"+repo+"/blobs/"+d, nil, nil)
			if got.Status != http.StatusOK || !bytes.Equal(got.Body, b) {
				return fmt.Errorf("blob %s with node1 dead: %d", d, got.Status)
			}
		}
		return nil
	})

	// Bad input gets the spec's codes.
	for _, tc := range []struct {
		method, path, code string
		status             int
	}{
		{"GET", "/v2/" + repo + "/blobs/sha256:abc", "DIGEST_INVALID", 400},
		{"GET", "/v2/" + repo + "/blobs/md5:" + strings.Repeat("0", 32), "DIGEST_INVALID", 400},
		{"GET", "/v2/Team/blobs/" + Digest(config), "NAME_INVALID", 400},
		{"GET", "/v2/a/../b/blobs/" + Digest(config), "NAME_INVALID", 400},
		{"GET", "/v2/" + repo + "/manifests/nope", "MANIFEST_UNKNOWN", 404},
		{"GET", "/v2/" + repo + "/blobs/uploads/" + strings.Repeat("0", 32), "BLOB_UPLOAD_UNKNOWN", 404},
		{"GET", "/v2/" + repo + "/blobs/uploads/../../x", "NAME_UNKNOWN", 404},
	} {
		r := n2.do(tc.method, tc.path, nil, nil)
		if r.Status != tc.status || ociErrorCode(t, r) != tc.code {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.path, r.Status, r.Body, tc.status, tc.code)
		}
	}
}

// With access control on, /v2/ answers docker login's way: 401 with a
// Basic challenge without credentials, 200 with a token's NAME:SECRET;
// a token's scopes apply to repository names as to artifact names.
func TestOCIAccessControl(t *testing.T) {
	c, admin := authCluster(t, 3)
	n1 := c.Nodes[0].URL
	ci := createToken(t, n1, admin, `{"name":"ci","owner":"build-bot","scopes":["push:myapp*","pull:myapp*"]}`)
	anon := ociClient{t: t, base: n1}
	r := anon.do("GET", "/v2/", nil, nil)
	host := strings.TrimPrefix(n1, "http://")
	if r.Status != http.StatusUnauthorized || ociErrorCode(t, r) != "UNAUTHORIZED" ||
		strings.Join(r.Header.Values("WWW-Authenticate"), "\n") != `Bearer realm="http://`+host+`/v2/token",service="pier"` {
		t.Fatalf("anonymous GET /v2/: %d %v %s", r.Status, r.Header, r.Body)
	}
	bad := ociClient{t: t, base: n1, user: "ci:wrong"}
	if r := bad.do("GET", "/v2/", nil, nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %d", r.Status)
	}
	var push ociClient
	Eventually(t, Wait(), func() error {
		push = ociClient{t: t, base: c.Nodes[2].URL, user: "ci:" + ci}
		if r := push.do("GET", "/v2/", nil, nil); r.Status != http.StatusOK {
			return fmt.Errorf("login on node3: %d", r.Status)
		}
		return nil
	})
	blob := []byte("layer")
	push.pushMonolithic("myapp", blob)
	if r := push.do("POST", "/v2/other/blobs/uploads/?digest="+Digest(blob), blob, nil); r.Status != http.StatusForbidden || ociErrorCode(t, r) != "DENIED" {
		t.Fatalf("push outside the scope: %d %s", r.Status, r.Body)
	}
	if r := push.do("DELETE", "/v2/myapp/blobs/"+Digest(blob), nil, nil); r.Status != http.StatusForbidden {
		t.Fatalf("delete without the scope: %d %s", r.Status, r.Body)
	}
	if r := anon.do("GET", "/v2/myapp/blobs/"+Digest(blob), nil, nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("anonymous pull: %d", r.Status)
	}
	if r := push.do("GET", "/v2/myapp/blobs/"+Digest(blob), nil, nil); r.Status != http.StatusOK || !bytes.Equal(r.Body, blob) {
		t.Fatalf("pull with the token: %d", r.Status)
	}

	// docker's token flow: a bearer from node 1's realm, with any user
	// name and the secret, works on node 3 for the scope asked and the
	// token has, and ends when the token is revoked on node 1.
	tokenURL := n1 + "/v2/token?service=pier&scope=repository:myapp:pull,push&scope=repository:other:pull,push"
	if r := (ociClient{t: t, user: "docker:wrong"}).do("GET", tokenURL, nil, nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("token with a wrong secret: %d %s", r.Status, r.Body)
	}
	r = (ociClient{t: t, user: "docker:" + ci}).do("GET", tokenURL, nil, nil)
	var tok struct {
		Token     string `json:"token"`
		ExpiresIn int    `json:"expires_in"`
	}
	if err := json.Unmarshal(r.Body, &tok); r.Status != http.StatusOK || err != nil || tok.Token == "" || tok.ExpiresIn <= 0 {
		t.Fatalf("token: %d %v %s", r.Status, err, r.Body)
	}
	n3 := c.Nodes[2].URL
	bearer := http.Header{"Authorization": {"Bearer " + tok.Token}}
	if r := anon.do("GET", n3+"/v2/myapp/blobs/"+Digest(blob), nil, bearer.Clone()); r.Status != http.StatusOK || !bytes.Equal(r.Body, blob) {
		t.Fatalf("pull with the bearer on node 3: %d %s", r.Status, r.Body)
	}
	if r := anon.do("POST", n3+"/v2/other/blobs/uploads/?digest="+Digest(blob), blob, bearer.Clone()); r.Status != http.StatusUnauthorized ||
		ociErrorCode(t, r) != "UNAUTHORIZED" || !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Fatalf("push with the bearer outside the token's scope: %d %v %s", r.Status, r.Header, r.Body)
	}
	if st := authed(t, "DELETE", n1+"/api/v1/tokens/ci", admin, nil); st != http.StatusNoContent {
		t.Fatalf("revoke: %d", st)
	}
	Eventually(t, Wait(), func() error {
		if r := anon.do("GET", n3+"/v2/myapp/blobs/"+Digest(blob), nil, bearer.Clone()); r.Status != http.StatusUnauthorized {
			return fmt.Errorf("node 3 answers the bearer of a revoked token with %d", r.Status)
		}
		return nil
	})
}

// An images retention policy on a repository: of three tagged manifests
// the oldest goes (keep-last 2), and with it the blobs only it named; a
// blob no manifest names goes once past the grace; a layer a kept manifest
// shares with nothing else stays; the kept image still pulls from another
// node. The nodes' clocks move two hours forward so the ages count.
func TestOCIRetention(t *testing.T) {
	var offset atomic.Int64
	c := New(t, 3, Options{Tune: func(_ int, cfg *server.Config) {
		cfg.Node.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	}})
	push := ociClient{t: t, base: c.Nodes[0].URL}
	cfg := func(i int) []byte { return []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","n":%d}`, i)) }
	l1, shared, orphan := patterned(70<<10, 1), patterned(90<<10, 2), patterned(1<<10, 3)
	for _, b := range [][]byte{cfg(1), cfg(2), cfg(3), l1, shared, orphan} {
		push.pushMonolithic("app", b)
	}
	manifests := [][]byte{ociManifest(cfg(1), l1), ociManifest(cfg(2), shared), ociManifest(cfg(3), shared)}
	for i, m := range manifests {
		if r := push.putManifest("app", fmt.Sprintf("v%d", i+1), m); r.Status != http.StatusCreated {
			t.Fatalf("manifest v%d: %d %s", i+1, r.Status, r.Body)
		}
	}
	policy := `{"prefix":"_oci/app/","images":true,"keep_last":2,"untagged_max_age":"1h","blob_grace":"1h"}`
	if r := Do(t, "PUT", c.Nodes[1].URL+"/api/v1/retention", strings.NewReader(policy), nil); r.Status != http.StatusOK {
		t.Fatalf("set policy: %d %s", r.Status, r.Body)
	}
	var run struct {
		Deleted []struct{ Name, Reason string }
	}
	// Now: the oldest manifest goes, but its blobs wait (they are new, and
	// so is a manifest of the repository).
	Do(t, "POST", c.Nodes[2].URL+"/api/v1/retention/run", nil, nil).JSON(t, &run)
	if len(run.Deleted) != 1 || run.Deleted[0].Name != "_oci/app/_manifests/sha256/"+strings.TrimPrefix(Digest(manifests[0]), "sha256:") {
		t.Fatalf("first run deleted %+v, want the manifest v1 alone", run.Deleted)
	}
	offset.Store(int64(2 * time.Hour))
	Do(t, "POST", c.Nodes[2].URL+"/api/v1/retention/run", nil, nil).JSON(t, &run)
	var got []string
	for _, d := range run.Deleted {
		got = append(got, strings.TrimPrefix(d.Name, "_oci/app/_blobs/sha256/"))
	}
	slices.Sort(got)
	want := []string{strings.TrimPrefix(Digest(cfg(1)), "sha256:"), strings.TrimPrefix(Digest(l1), "sha256:"), strings.TrimPrefix(Digest(orphan), "sha256:")}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("second run deleted %v, want the blobs of v1 and the orphan %v", got, want)
	}
	pull := ociClient{t: t, base: c.Nodes[2].URL}
	for _, b := range [][]byte{cfg(1), l1, orphan} {
		if r := pull.do("GET", "/v2/app/blobs/"+Digest(b), nil, nil); r.Status != http.StatusNotFound {
			t.Fatalf("a deleted blob answers %d", r.Status)
		}
	}
	if r := pull.do("GET", "/v2/app/manifests/v1", nil, nil); r.Status != http.StatusNotFound {
		t.Fatalf("the deleted manifest's tag answers %d", r.Status)
	}
	for i := 2; i <= 3; i++ {
		r := pull.do("GET", fmt.Sprintf("/v2/app/manifests/v%d", i), nil, http.Header{"Accept": {"application/vnd.oci.image.manifest.v1+json"}})
		if r.Status != http.StatusOK || !bytes.Equal(r.Body, manifests[i-1]) {
			t.Fatalf("kept manifest v%d: %d", i, r.Status)
		}
		for _, b := range [][]byte{cfg(i), shared} {
			if r := pull.do("GET", "/v2/app/blobs/"+Digest(b), nil, nil); r.Status != http.StatusOK || !bytes.Equal(r.Body, b) {
				t.Fatalf("a blob of v%d: %d", i, r.Status)
			}
		}
	}
}
