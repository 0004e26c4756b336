package clustertest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"testing"
	"time"
)

// Response is a finished HTTP exchange.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test on error.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %q: %v", r.Body, err)
	}
}

// noRedirect keeps 302s visible to tests.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// ClientHost is the host that clients made by HTTPClient are on the
// cluster's network; Pause silences a node toward it too.
const ClientHost = "client"

// HTTPClient returns a client of the nodes' public API whose connections
// cross the cluster's network as ClientHost, so a paused node does not
// answer it. Every request ends after timeout, since one to a paused node
// would otherwise wait for the pause to end.
func (c *Cluster) HTTPClient(timeout time.Duration) *http.Client {
	tr := &http.Transport{
		DialContext:         c.Net.Host(ClientHost).DialContext,
		MaxIdleConnsPerHost: 16,
	}
	c.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: noRedirect.CheckRedirect,
	}
}

// Do sends one request and reads the whole answer.
func Do(t testing.TB, method, url string, body io.Reader, header http.Header) Response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// Upload posts a multipart form the way `curl -F file=@NAME` does, with
// extra fields first.
func Upload(t testing.TB, base, filename string, content []byte, fields ...[2]string) Response {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range fields {
		_ = mw.WriteField(f[0], f[1])
	}
	fw, err := mw.CreateFormFile("file", filename)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(content)
	mw.Close()
	return Do(t, http.MethodPost, base+"/upload", &buf, http.Header{"Content-Type": {mw.FormDataContentType()}})
}

// Digest returns the "sha256:<hex>" of b.
func Digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}
