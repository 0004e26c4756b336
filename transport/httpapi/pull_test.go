package httpapi

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/pier-registry/pier/cluster"
)

// pushed serves a fake holding one artifact.
func pushed(t *testing.T, name string, content []byte) (*fakeRegistry, string) {
	t.Helper()
	f := newFake()
	srv := serve(t, f)
	resp, b := do(t, "PUT", srv.URL+"/artifacts/"+name, bytes.NewReader(content), map[string]string{"X-Pier-Version": "1.2.3"})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %d %s", resp.StatusCode, b)
	}
	return f, srv.URL
}

func TestPullWhole(t *testing.T) {
	content := []byte("the bytes of app 1.2.3, verbatim")
	// No extension: the type is not guessed from the system's tables.
	_, url := pushed(t, "team/app/1.2.3/app", content)
	resp, got := do(t, "GET", url+"/artifacts/team/app/1.2.3/app", nil, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, content) {
		t.Fatalf("GET: %d %q", resp.StatusCode, got)
	}
	h := resp.Header
	for k, want := range map[string]string{
		"ETag":                `"` + sum(content) + `"`,
		"Content-Length":      strconv.Itoa(len(content)),
		"Accept-Ranges":       "bytes",
		"Last-Modified":       "Sat, 05 Dec 2026 12:00:01 GMT",
		"X-Pier-Version":      "1.2.3",
		"Content-Disposition": `attachment; filename=app`,
		"Content-Type":        "application/octet-stream",
	} {
		if h.Get(k) != want {
			t.Errorf("%s: %q, want %q", k, h.Get(k), want)
		}
	}
}

func TestPullRangeHeadAndConditional(t *testing.T) {
	content := []byte("0123456789abcdef")
	_, url := pushed(t, "r.bin", content)
	resp, got := do(t, "GET", url+"/artifacts/r.bin", nil, map[string]string{"Range": "bytes=4-8"})
	if resp.StatusCode != http.StatusPartialContent || string(got) != "45678" ||
		resp.Header.Get("Content-Range") != "bytes 4-8/16" {
		t.Fatalf("Range: %d %q %q", resp.StatusCode, got, resp.Header.Get("Content-Range"))
	}
	resp, got = do(t, "GET", url+"/artifacts/r.bin", nil, map[string]string{"Range": "bytes=-3"})
	if resp.StatusCode != http.StatusPartialContent || string(got) != "def" {
		t.Fatalf("suffix Range: %d %q", resp.StatusCode, got)
	}
	resp, _ = do(t, "GET", url+"/artifacts/r.bin", nil, map[string]string{"Range": "bytes=99-"})
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("Range past the end: %d", resp.StatusCode)
	}
	resp, got = do(t, "HEAD", url+"/artifacts/r.bin", nil, nil)
	if resp.StatusCode != http.StatusOK || len(got) != 0 || resp.ContentLength != int64(len(content)) {
		t.Fatalf("HEAD: %d, %d bytes, length %d", resp.StatusCode, len(got), resp.ContentLength)
	}
	resp, got = do(t, "GET", url+"/artifacts/r.bin", nil, map[string]string{"If-None-Match": `"` + sum(content) + `"`})
	if resp.StatusCode != http.StatusNotModified || len(got) != 0 {
		t.Fatalf("If-None-Match: %d %q", resp.StatusCode, got)
	}
}

// A read that fails before the first byte is a clean, retryable error,
// without the headers of the body it replaces.
func TestPullThatCannotStartIs503(t *testing.T) {
	f, url := pushed(t, "u.bin", []byte("unreadable"))
	f.failOpen = cluster.ErrUnavailable
	for _, hdr := range []map[string]string{nil, {"Range": "bytes=2-"}} {
		resp, b := do(t, "GET", url+"/artifacts/u.bin", nil, hdr)
		wantError(t, resp, b, http.StatusServiceUnavailable)
		if resp.Header.Get("Retry-After") == "" || resp.Header.Get("ETag") != "" || resp.Header.Get("Content-Range") != "" {
			t.Fatalf("headers of a failed pull (%v): %v", hdr, resp.Header)
		}
	}
}

// failingReader fails its first read.
type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

// A copy into the held header through ReadFrom (the path sendfile takes)
// still holds the status until the source gives its first byte.
func TestHeldHeaderReadFromHoldsStatusUntilFirstByte(t *testing.T) {
	rec := httptest.NewRecorder()
	hw := &heldHeader{w: rec}
	hw.WriteHeader(http.StatusPartialContent)
	boom := errors.New("shard gone")
	if n, err := hw.ReadFrom(failingReader{boom}); n != 0 || !errors.Is(err, boom) {
		t.Fatalf("ReadFrom of a failing source: %d, %v", n, err)
	}
	if hw.sent || rec.Body.Len() != 0 {
		t.Fatalf("status sent (%v) or body written (%d bytes) before the first byte", hw.sent, rec.Body.Len())
	}
	body := bytes.Repeat([]byte("pier"), 1000)
	if n, err := hw.ReadFrom(bytes.NewReader(body)); n != int64(len(body)) || err != nil {
		t.Fatalf("ReadFrom: %d, %v", n, err)
	}
	if !hw.sent || rec.Code != http.StatusPartialContent || !bytes.Equal(rec.Body.Bytes(), body) {
		t.Fatalf("after the bytes: sent %v, status %d, %d bytes", hw.sent, rec.Code, rec.Body.Len())
	}
}
