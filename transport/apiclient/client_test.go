package apiclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// deadAddr returns an address on which nothing listens: the listener is
// opened to reserve a port and closed again, so dialing it is refused
// immediately instead of timing out.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func newClient(t *testing.T, servers ...string) *Client {
	t.Helper()
	c, err := New(servers)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func testArtifact(name string) Artifact {
	return Artifact{
		Name:    name,
		Size:    5,
		Digest:  "sha256:" + strings.Repeat("ab", 32),
		Version: "1.2.3",
		Created: time.Date(2026, 11, 25, 19, 0, 0, 0, time.UTC),
		Labels:  map[string]string{"team": "core"},
		Tags:    []string{"production-ready"},
	}
}

func TestNewNormalisesServers(t *testing.T) {
	c, err := New([]string{"127.0.0.1:8081", "http://a:1/", " https://b/prefix/ "})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"http://127.0.0.1:8081", "http://a:1", "https://b/prefix"}
	if got := c.Servers(); !slices.Equal(got, want) {
		t.Fatalf("servers = %q, want %q", got, want)
	}
	for _, bad := range [][]string{nil, {""}, {"ftp://x"}, {"http://x/?q=1"}} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%q) succeeded", bad)
		}
	}
}

func TestFailoverToSecondServerWhenFirstIsDown(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path != "/api/v1/artifacts/team/app.jar" {
			http.NotFound(w, r)
			return
		}
		writeJSON(w, 200, testArtifact("team/app.jar"))
	}))
	defer srv.Close()

	c := newClient(t, deadAddr(t), srv.URL)
	art, err := c.Info(context.Background(), "team/app.jar", false)
	if err != nil {
		t.Fatal(err)
	}
	if art.Name != "team/app.jar" || art.Tags[0] != "production-ready" || art.Labels["team"] != "core" {
		t.Fatalf("unexpected artifact %+v", art)
	}
	if c.preferred.Load() != 1 {
		t.Fatalf("preferred = %d, want the second server remembered", c.preferred.Load())
	}
}

func TestFailoverOn503RemembersLastGoodServer(t *testing.T) {
	var firstHits, secondHits atomic.Int32
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		firstHits.Add(1)
		writeJSON(w, 503, map[string]string{"error": "no leader"})
	}))
	defer first.Close()
	second := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secondHits.Add(1)
		writeJSON(w, 200, MembersResponse{Leader: "node2", Members: []Member{{ID: "node2", State: "alive", Role: "leader"}}})
	}))
	defer second.Close()

	c := newClient(t, first.URL, second.URL)
	for range 3 {
		m, err := c.Members(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if m.Leader != "node2" {
			t.Fatalf("leader = %q", m.Leader)
		}
	}
	if firstHits.Load() != 1 || secondHits.Load() != 3 {
		t.Fatalf("hits: first=%d second=%d, want 1 and 3", firstHits.Load(), secondHits.Load())
	}
}

func TestAllServersUnavailable(t *testing.T) {
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 503, map[string]string{"error": "no leader"})
	}))
	defer busy.Close()

	c := newClient(t, deadAddr(t), busy.URL)
	_, err := c.Members(context.Background())
	if err == nil {
		t.Fatal("expected error")
	}
	if !IsUnavailable(err) {
		t.Fatalf("IsUnavailable false for %v", err)
	}
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 503 || ae.Message != "no leader" {
		t.Fatalf("503 not reachable through errors.As: %v", err)
	}
	if !strings.Contains(err.Error(), "all 2 servers failed") || !strings.Contains(err.Error(), "no leader") {
		t.Fatalf("unhelpful message: %v", err)
	}
}

func TestConflictIsReturnedNotFailedOver(t *testing.T) {
	var secondHits atomic.Int32
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		writeJSON(w, 409, map[string]string{"error": "app.jar is bound to other bytes"})
	}))
	defer first.Close()
	second := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secondHits.Add(1)
		writeJSON(w, 201, testArtifact("app.jar"))
	}))
	defer second.Close()

	c := newClient(t, first.URL, second.URL)
	_, _, err := c.Push(context.Background(), "app.jar", BytesBody([]byte("hello")), 5, PushOptions{})
	if !IsConflict(err) {
		t.Fatalf("want conflict, got %v", err)
	}
	var ae *APIError
	if !errors.As(err, &ae) || ae.Message != "app.jar is bound to other bytes" {
		t.Fatalf("APIError not parsed: %#v", err)
	}
	if IsNotFound(err) || IsUnavailable(err) {
		t.Fatal("conflict misclassified")
	}
	if !strings.Contains(err.Error(), "push app.jar to "+first.URL) {
		t.Fatalf("error lacks context: %v", err)
	}
	if secondHits.Load() != 0 {
		t.Fatal("a 409 must not be retried on another server")
	}
}

func TestPushSendsMetadataAndReopensBodyOnRetry(t *testing.T) {
	payload := []byte("artifact bytes")
	sum := sha256.Sum256(payload)
	hexSum := hex.EncodeToString(sum[:])

	// The first server drops the connection after reading the upload, the
	// way a node crashing mid-request would.
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer first.Close()

	type got struct {
		path, rawPath string
		header        http.Header
		body          []byte
		length        int64
	}
	var (
		mu   sync.Mutex
		seen got
	)
	second := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = got{r.URL.Path, r.URL.EscapedPath(), r.Header.Clone(), body, r.ContentLength}
		mu.Unlock()
		if r.Method != http.MethodPut {
			writeJSON(w, 405, map[string]string{"error": "method"})
			return
		}
		a := testArtifact("team/my app/1.0/app.jar")
		a.Digest = "sha256:" + hexSum
		writeJSON(w, 201, a)
	}))
	defer second.Close()

	var opens atomic.Int32
	body := func() (io.ReadCloser, error) {
		opens.Add(1)
		return io.NopCloser(bytes.NewReader(payload)), nil
	}
	var maxSent atomic.Int64
	c := newClient(t, first.URL, second.URL)
	art, created, err := c.Push(context.Background(), "team/my app/1.0/app.jar", body, int64(len(payload)), PushOptions{
		Version:  "1.0",
		Commit:   "abc123",
		Labels:   map[string]string{"os": "linux", "arch": "amd64"},
		Tags:     []string{"nightly", "candidate"},
		SHA256:   strings.ToUpper(hexSum),
		Progress: func(n int64) { maxSent.Store(max(maxSent.Load(), n)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if !created || art.Digest != "sha256:"+hexSum {
		t.Fatalf("created=%v art=%+v", created, art)
	}
	if n := opens.Load(); n < 2 {
		t.Fatalf("body opened %d times, want it reopened for the retry", n)
	}
	if maxSent.Load() != int64(len(payload)) {
		t.Fatalf("progress reported %d bytes, want %d", maxSent.Load(), len(payload))
	}

	mu.Lock()
	defer mu.Unlock()
	if seen.rawPath != "/artifacts/team/my%20app/1.0/app.jar" || seen.path != "/artifacts/team/my app/1.0/app.jar" {
		t.Fatalf("path %q (escaped %q)", seen.path, seen.rawPath)
	}
	if !bytes.Equal(seen.body, payload) || seen.length != int64(len(payload)) {
		t.Fatalf("body %q length %d", seen.body, seen.length)
	}
	h := seen.header
	if h.Get("X-Pier-Version") != "1.0" || h.Get("X-Pier-Commit") != "abc123" || h.Get("X-Checksum-Sha256") != hexSum {
		t.Fatalf("metadata headers wrong: %v", h)
	}
	labels := h.Values("X-Pier-Label")
	slices.Sort(labels)
	if !slices.Equal(labels, []string{"arch=amd64", "os=linux"}) {
		t.Fatalf("labels %q", labels)
	}
	if tags := h.Values("X-Pier-Tag"); !slices.Equal(tags, []string{"nightly", "candidate"}) {
		t.Fatalf("tags %q", tags)
	}
}

func TestPushAlreadyStoredIsNotCreated(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		writeJSON(w, 200, testArtifact("app.jar"))
	}))
	defer srv.Close()
	_, created, err := newClient(t, srv.URL).Push(context.Background(), "app.jar", BytesBody([]byte("hello")), 5, PushOptions{})
	if err != nil || created {
		t.Fatalf("created=%v err=%v", created, err)
	}
}

func TestPushLocalReadErrorIsNotFailedOver(t *testing.T) {
	var hits atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		writeJSON(w, 201, testArtifact("x"))
	})
	first := httptest.NewServer(h)
	defer first.Close()
	second := httptest.NewServer(h)
	defer second.Close()

	readErr := errors.New("disk on fire")
	body := func() (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(strings.NewReader("abc"), iotestErrReader{readErr})), nil
	}
	_, _, err := newClient(t, first.URL, second.URL).Push(context.Background(), "x", body, 10, PushOptions{})
	if err == nil || IsUnavailable(err) {
		t.Fatalf("want a plain local error, got %v", err)
	}
	if hits.Load() > 1 {
		t.Fatalf("local read error was retried on %d servers", hits.Load())
	}
}

type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }

func TestPushRejectsBadMetadataLocally(t *testing.T) {
	c := newClient(t, deadAddr(t))
	for _, o := range []PushOptions{
		{Version: "1\r\nX-Evil: 1"},
		{Labels: map[string]string{"": "v"}},
		{Labels: map[string]string{"a=b": "v"}},
		{Tags: []string{""}},
	} {
		_, _, err := c.Push(context.Background(), "x", BytesBody(nil), 0, o)
		if err == nil || IsUnavailable(err) {
			t.Errorf("%+v: want local validation error, got %v", o, err)
		}
	}
	for _, name := range []string{"", "a//b", "../x", "a/./b", "/abs"} {
		if _, err := c.Info(context.Background(), name, false); err == nil || IsUnavailable(err) {
			t.Errorf("name %q: want local validation error, got %v", name, err)
		}
	}
}

func TestListAllFollowsPages(t *testing.T) {
	pages := map[string]ListPage{
		"":   {Artifacts: []Artifact{testArtifact("a3"), testArtifact("a2")}, NextPageToken: "p2"},
		"p2": {Artifacts: []Artifact{testArtifact("a1")}, NextPageToken: "p3"},
		"p3": {Artifacts: []Artifact{testArtifact("a0")}},
	}
	var queries []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/artifacts" {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		mu.Lock()
		queries = append(queries, q.Get("prefix")+"|"+q.Get("tag")+"|"+q.Get("label")+"|"+q.Get("limit"))
		mu.Unlock()
		p, ok := pages[q.Get("page_token")]
		if !ok {
			writeJSON(w, 400, map[string]string{"error": "bad token"})
			return
		}
		writeJSON(w, 200, p)
	}))
	defer srv.Close()

	c := newClient(t, srv.URL)
	var names []string
	for a, err := range c.ListAll(context.Background(), ListOptions{Prefix: "team/", Tag: "prod", Label: "os=linux", Limit: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, a.Name)
	}
	if !slices.Equal(names, []string{"a3", "a2", "a1", "a0"}) {
		t.Fatalf("names %q", names)
	}
	mu.Lock()
	got := slices.Clone(queries)
	mu.Unlock()
	for _, q := range got {
		if q != "team/|prod|os=linux|2" {
			t.Fatalf("filters not passed on every page: %q", got)
		}
	}
	if len(got) != 3 {
		t.Fatalf("%d requests, want 3", len(got))
	}

	// Breaking out of the loop early must not fetch further pages.
	mu.Lock()
	queries = nil
	mu.Unlock()
	for range c.ListAll(context.Background(), ListOptions{}) {
		break
	}
	mu.Lock()
	defer mu.Unlock()
	if len(queries) != 1 {
		t.Fatalf("early break fetched %d pages", len(queries))
	}
}

func TestListAllStopsOnRepeatedToken(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, ListPage{Artifacts: []Artifact{testArtifact("a")}, NextPageToken: "same"})
	}))
	defer srv.Close()
	var n int
	var lastErr error
	for _, err := range newClient(t, srv.URL).ListAll(context.Background(), ListOptions{}) {
		if err != nil {
			lastErr = err
			break
		}
		n++
	}
	if lastErr == nil || n != 2 {
		t.Fatalf("n=%d err=%v", n, lastErr)
	}
}

func TestLatestReadsLocation(t *testing.T) {
	var fetchedBytes atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/api/v1/latest":
			if r.URL.Query().Get("tag") == "none" {
				writeJSON(w, 404, map[string]string{"error": "no artifact matches"})
				return
			}
			if r.URL.Query().Get("prefix") != "team/" || r.URL.Query().Get("tag") != "prod" {
				writeJSON(w, 400, map[string]string{"error": "filters missing"})
				return
			}
			w.Header().Set("Location", "/artifacts/team/my%20app/1.0/app.jar")
			w.WriteHeader(http.StatusFound)
		default:
			fetchedBytes.Store(true)
			w.Write([]byte("bytes"))
		}
	}))
	defer srv.Close()

	c := newClient(t, srv.URL)
	name, err := c.Latest(context.Background(), "team/", "prod")
	if err != nil {
		t.Fatal(err)
	}
	if name != "team/my app/1.0/app.jar" {
		t.Fatalf("name %q", name)
	}
	if fetchedBytes.Load() {
		t.Fatal("redirect was followed")
	}
	if _, err := c.Latest(context.Background(), "", "none"); !IsNotFound(err) {
		t.Fatalf("want not found, got %v", err)
	}
}

func TestNameFromLocation(t *testing.T) {
	for _, tc := range []struct{ server, loc, want string }{
		{"http://a:1", "/artifacts/x/y.jar", "x/y.jar"},
		{"http://a:1", "http://b:2/artifacts/x%2By.jar", "x+y.jar"},
		{"https://p/pier", "/pier/artifacts/x", "x"},
		{"https://p/pier", "/artifacts/x", "x"},
	} {
		got, err := nameFromLocation(tc.server, tc.loc)
		if err != nil || got != tc.want {
			t.Errorf("nameFromLocation(%q, %q) = %q, %v; want %q", tc.server, tc.loc, got, err, tc.want)
		}
	}
	for _, loc := range []string{"", "/other/x", "/artifacts/"} {
		if _, err := nameFromLocation("http://a", loc); err == nil {
			t.Errorf("Location %q accepted", loc)
		}
	}
}

func TestGetStreamsBody(t *testing.T) {
	payload := "hello, world"
	sum := sha256.Sum256([]byte(payload))
	etag := `"sha256:` + hex.EncodeToString(sum[:]) + `"`
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.EscapedPath() != "/artifacts/dir/file%231.bin" {
			writeJSON(w, 404, map[string]string{"error": "no such artifact " + r.URL.EscapedPath()})
			return
		}
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
		w.Header().Set("Last-Modified", "Wed, 25 Nov 2026 19:00:00 GMT")
		w.Header().Set("Content-Type", "application/octet-stream")
		io.WriteString(w, payload[:5])
		w.(http.Flusher).Flush()
		// The rest is only written once the client has read the first
		// part, which it can only do if Get hands back the live stream.
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, payload[5:])
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := newClient(t, srv.URL)
	rc, info, err := c.Get(ctx, "dir/file#1.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if info.Size != int64(len(payload)) || info.Digest != "sha256:"+hex.EncodeToString(sum[:]) || info.Server != srv.URL {
		t.Fatalf("info %+v", info)
	}
	if !info.LastModified.Equal(time.Date(2026, 11, 25, 19, 0, 0, 0, time.UTC)) {
		t.Fatalf("last modified %v", info.LastModified)
	}
	first := make([]byte, 5)
	if _, err := io.ReadFull(rc, first); err != nil {
		t.Fatal(err)
	}
	close(release)
	rest, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if string(first)+string(rest) != payload {
		t.Fatalf("body %q", string(first)+string(rest))
	}

	if _, _, err := c.Get(ctx, "missing"); !IsNotFound(err) {
		t.Fatalf("want not found, got %v", err)
	}
}

func TestHead(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"sha256:`+strings.Repeat("0", 64)+`"`)
		w.Header().Set("Content-Length", "1234")
		if r.Method != http.MethodHead {
			w.Write(make([]byte, 1234))
		}
	}))
	defer srv.Close()
	info, err := newClient(t, srv.URL).Head(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != 1234 || info.Digest != "sha256:"+strings.Repeat("0", 64) {
		t.Fatalf("info %+v", info)
	}
}

func TestTagUntagDelete(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls = append(calls, r.Method+" "+r.URL.EscapedPath()+"?"+r.URL.RawQuery)
		mu.Unlock()
		switch {
		case strings.HasPrefix(r.URL.Path, "/api/v1/tags/"):
			if r.URL.Query().Get("name") == "missing" {
				writeJSON(w, 404, map[string]string{"error": "no such artifact"})
				return
			}
			writeJSON(w, 200, testArtifact(r.URL.Query().Get("name")))
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	c := newClient(t, srv.URL)
	ctx := context.Background()
	if a, err := c.Tag(ctx, "a b/c.jar", "prod ready"); err != nil || a.Name != "a b/c.jar" {
		t.Fatalf("tag: %+v %v", a, err)
	}
	if _, err := c.Untag(ctx, "a b/c.jar", "prod ready"); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "a b/c.jar"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Tag(ctx, "missing", "x"); !IsNotFound(err) {
		t.Fatalf("want not found, got %v", err)
	}
	want := []string{
		"PUT /api/v1/tags/prod%20ready?name=a+b%2Fc.jar",
		"DELETE /api/v1/tags/prod%20ready?name=a+b%2Fc.jar",
		"DELETE /api/v1/artifacts/a%20b/c.jar?",
		"PUT /api/v1/tags/x?name=missing",
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(calls, want) {
		t.Fatalf("calls\n%q\nwant\n%q", calls, want)
	}
}

func TestNonJSONErrorBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "forbidden by proxy", http.StatusForbidden)
	}))
	defer srv.Close()
	_, err := newClient(t, srv.URL).Info(context.Background(), "x", true)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 403 || ae.Message != "forbidden by proxy" {
		t.Fatalf("got %#v", err)
	}
}

func TestInfoHistory(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := testArtifact("x")
		if r.URL.Query().Get("history") == "true" {
			a.TagHistory = []TagEvent{{Tag: "prod", Action: "add", Actor: "ci", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
		}
		writeJSON(w, 200, a)
	}))
	defer srv.Close()
	a, err := newClient(t, srv.URL).Info(context.Background(), "x", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.TagHistory) != 1 || a.TagHistory[0].Actor != "ci" || a.TagHistory[0].Action != "add" {
		t.Fatalf("history %+v", a.TagHistory)
	}
}

func TestCancelledContextIsNotFailedOver(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var secondHits atomic.Int32
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cancel()
		<-r.Context().Done()
	}))
	defer first.Close()
	second := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secondHits.Add(1)
		writeJSON(w, 200, MembersResponse{})
	}))
	defer second.Close()

	_, err := newClient(t, first.URL, second.URL).Members(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	if secondHits.Load() != 0 {
		t.Fatal("cancelled request was retried")
	}
}

func TestResponseHeaderTimeoutFailsOver(t *testing.T) {
	stuck := make(chan struct{})
	defer close(stuck)
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stuck:
		case <-r.Context().Done():
		}
	}))
	defer first.Close()
	second := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, MembersResponse{Leader: "n2"})
	}))
	defer second.Close()

	// Long enough for the second server to answer on a loaded machine (50
	// ms was not); the first never answers, so it times out regardless.
	c, err := New([]string{first.URL, second.URL}, WithResponseHeaderTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Members(context.Background())
	if err != nil || m.Leader != "n2" {
		t.Fatalf("m=%+v err=%v", m, err)
	}
}

func TestDigestFromETag(t *testing.T) {
	h := strings.Repeat("aB", 32)
	for etag, want := range map[string]string{
		`"sha256:` + h + `"`:   "sha256:" + strings.ToLower(h),
		`W/"sha256:` + h + `"`: "sha256:" + strings.ToLower(h),
		`"md5:abc"`:            "",
		`"sha256:xyz"`:         "",
		"":                     "",
	} {
		if got := digestFromETag(etag); got != want {
			t.Errorf("digestFromETag(%q) = %q, want %q", etag, got, want)
		}
	}
}

func ExampleClient_Push() {
	c, err := New([]string{"node1:8081", "node2:8081"})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = c // c.Push(ctx, "team/app/1.0/app.jar", FileBody("app.jar"), size, PushOptions{SHA256: hexDigest})
	fmt.Println(c.Servers())
	// Output: [http://node1:8081 http://node2:8081]
}
