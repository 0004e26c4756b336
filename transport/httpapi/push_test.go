package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
)

func TestPutCreatesThenRetriesAndConflicts(t *testing.T) {
	f := newFake()
	srv := serve(t, f)
	content := []byte("the bytes of myapp 1.2.3, verbatim")
	resp, body := do(t, "PUT", srv.URL+"/artifacts/team/my app/1.2.3.jar", bytes.NewReader(content), map[string]string{
		"X-Pier-Version": "1.2.3", "X-Pier-Commit": "abc123", "X-Pier-Label": "os=linux", "X-Pier-Tag": "staging",
	})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	if loc := resp.Header.Get("Location"); loc != "/artifacts/team/my%20app/1.2.3.jar" {
		t.Fatalf("Location %q", loc)
	}
	if et := resp.Header.Get("ETag"); et != `"`+sum(content)+`"` {
		t.Fatalf("ETag %q", et)
	}
	var v artifactView
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	if v.Name != "team/my app/1.2.3.jar" || v.Size != int64(len(content)) || v.Digest != sum(content) ||
		v.Version != "1.2.3" || v.Commit != "abc123" || v.Labels["os"] != "linux" || len(v.Tags) != 1 ||
		v.Created != "2026-12-05T12:00:01Z" {
		t.Fatalf("metadata %+v", v)
	}
	// A CI retry of the same bytes is a harmless success.
	resp, body = do(t, "PUT", srv.URL+"/artifacts/team/my app/1.2.3.jar", bytes.NewReader(content), nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Location") != "" {
		t.Fatalf("the same bytes again: %d %s, want 200 without Location", resp.StatusCode, body)
	}
	resp, body = do(t, "PUT", srv.URL+"/artifacts/team/my app/1.2.3.jar", strings.NewReader("other"), nil)
	wantError(t, resp, body, http.StatusConflict)
}

func TestPutRefusesBadHeadersBeforeTheBody(t *testing.T) {
	good := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name   string
		header http.Header
		status int
	}{
		{"label without =", http.Header{"X-Pier-Label": {"oslinux"}}, http.StatusBadRequest},
		{"label twice", http.Header{"X-Pier-Label": {"os=linux", "os=mac"}}, http.StatusBadRequest},
		{"two versions", http.Header{"X-Pier-Version": {"1", "2"}}, http.StatusBadRequest},
		{"two checksums", http.Header{"X-Checksum-Sha256": {good, good}}, http.StatusBadRequest},
		{"checksum not hex", http.Header{"X-Checksum-Sha256": {"xyz"}}, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			srv := serve(t, f)
			req, err := http.NewRequest("PUT", srv.URL+"/artifacts/x.bin", strings.NewReader("x"))
			if err != nil {
				t.Fatal(err)
			}
			req.Header = tc.header
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			wantError(t, resp, b, tc.status)
			if uploads, _, _ := f.counts(); uploads != 0 {
				t.Fatalf("the node was asked to push")
			}
		})
	}
}

func TestPutChecksum(t *testing.T) {
	f := newFake()
	srv := serve(t, f)
	content := []byte("checked bytes")
	// Bare hex and sha256:<hex>, any case, are both the client's word.
	hexSum := strings.ToUpper(strings.TrimPrefix(sum(content), "sha256:"))
	resp, b := do(t, "PUT", srv.URL+"/artifacts/c.bin", bytes.NewReader(content), map[string]string{"X-Checksum-Sha256": hexSum})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("matching checksum: %d %s", resp.StatusCode, b)
	}
	resp, b = do(t, "PUT", srv.URL+"/artifacts/d.bin", bytes.NewReader(content), map[string]string{"X-Checksum-Sha256": "sha256:" + strings.Repeat("0", 64)})
	wantError(t, resp, b, http.StatusBadRequest)
	if _, err := f.StatFresh(context.Background(), "d.bin"); err == nil {
		t.Fatal("a mismatching push was stored")
	}
}

// formBody builds a multipart body; parts are name/value pairs, the "file"
// part's value being filename:content.
func formBody(t *testing.T, parts ...string) (io.Reader, map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for i := 0; i < len(parts); i += 2 {
		if parts[i] == "file" {
			name, content, _ := strings.Cut(parts[i+1], ":")
			fw, err := mw.CreateFormFile("file", name)
			if err != nil {
				t.Fatal(err)
			}
			fw.Write([]byte(content))
			continue
		}
		if err := mw.WriteField(parts[i], parts[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf, map[string]string{"Content-Type": mw.FormDataContentType()}
}

func TestUploadFieldsBeforeAndAfterTheFile(t *testing.T) {
	f := newFake()
	srv := serve(t, f)
	body, h := formBody(t, "version", "2.0.0", "label", "arch=amd64",
		"file", "svc-2.0.0.tar.gz:tarball",
		"label", "os=linux", "tag", "staging-validated", "commit", "c0ffee", "sha256", sum([]byte("tarball")))
	resp, b := do(t, "POST", srv.URL+"/upload", body, h)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Location") != "/artifacts/svc-2.0.0.tar.gz" {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	a, err := f.StatFresh(context.Background(), "svc-2.0.0.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	if a.Version != "2.0.0" || a.Commit != "c0ffee" || a.Labels["arch"] != "amd64" || a.Labels["os"] != "linux" ||
		!a.HasTag("staging-validated") {
		t.Fatalf("metadata of the upload: %+v", a)
	}
	if _, more, _ := f.counts(); more != 1 {
		t.Fatalf("the fields after the file were read %d times", more)
	}
	// The same again: 200.
	body, h = formBody(t, "file", "svc-2.0.0.tar.gz:tarball")
	if resp, b := do(t, "POST", srv.URL+"/upload", body, h); resp.StatusCode != http.StatusOK {
		t.Fatalf("the same upload again: %d %s", resp.StatusCode, b)
	}
}

func TestUploadNames(t *testing.T) {
	for _, tc := range []struct {
		name  string
		parts []string
		want  string
	}{
		{"filename", []string{"file", "a.bin:x"}, "a.bin"},
		// The filename is taken whole, as a PUT path would be.
		{"filename with a path", []string{"file", "team/app/1.2/y.txt:x"}, "team/app/1.2/y.txt"},
		{"name before the file", []string{"name", "b.bin", "file", "a.bin:x"}, "b.bin"},
		{"name after the file", []string{"file", "a.bin:x", "name", "c.bin"}, "c.bin"},
		{"empty name after the file", []string{"file", "a.bin:x", "name", ""}, "a.bin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			srv := serve(t, f)
			body, h := formBody(t, tc.parts...)
			resp, b := do(t, "POST", srv.URL+"/upload", body, h)
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("upload: %d %s", resp.StatusCode, b)
			}
			if _, err := f.StatFresh(context.Background(), tc.want); err != nil {
				t.Fatalf("not stored as %s: %v", tc.want, err)
			}
		})
	}
}

func TestUploadRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		parts  []string
		status int
	}{
		{"no file", []string{"name", "a.bin"}, http.StatusBadRequest},
		{"two files", []string{"file", "a.bin:x", "file", "b.bin:y"}, http.StatusBadRequest},
		{"unknown field", []string{"colour", "red", "file", "a.bin:x"}, http.StatusBadRequest},
		{"unknown field after the file", []string{"file", "a.bin:x", "colour", "red"}, http.StatusBadRequest},
		{"version twice", []string{"version", "1", "file", "a.bin:x", "version", "2"}, http.StatusBadRequest},
		{"bad label after the file", []string{"file", "a.bin:x", "label", "nokey"}, http.StatusBadRequest},
		{"bad name after the file", []string{"file", "a.bin:x", "name", "../etc/passwd"}, http.StatusBadRequest},
		{"path escaping filename", []string{"file", "../../etc/passwd:x"}, http.StatusBadRequest},
		{"checksum after the file", []string{"file", "a.bin:x", "sha256", strings.Repeat("0", 64)}, http.StatusBadRequest},
		{"field too long", []string{"version", strings.Repeat("v", maxField+1), "file", "a.bin:x"}, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			srv := serve(t, f)
			body, h := formBody(t, tc.parts...)
			resp, b := do(t, "POST", srv.URL+"/upload", body, h)
			wantError(t, resp, b, tc.status)
			if l, _, _ := f.List(context.Background(), fsm.Query{}); len(l) != 0 {
				t.Fatalf("a refused upload stored %v", l)
			}
		})
	}
	f := newFake()
	srv := serve(t, f)
	resp, b := do(t, "POST", srv.URL+"/upload", strings.NewReader("raw"), map[string]string{"Content-Type": "application/octet-stream"})
	wantError(t, resp, b, http.StatusBadRequest)
}

// Fields over MultipartSlack in all are a 413, each under maxField.
func TestUploadFieldsTooLargeInAll(t *testing.T) {
	parts := []string{"file", "a.bin:x"}
	for i := 0; i*maxField <= MultipartSlack; i++ {
		parts = append(parts, "tag", strings.Repeat("t", maxField))
	}
	body, h := formBody(t, parts...)
	resp, b := do(t, "POST", serve(t, newFake()).URL+"/upload", body, h)
	wantError(t, resp, b, http.StatusRequestEntityTooLarge)
}

func TestDeclaredLengthOverTheLimitIs413BeforeTheNode(t *testing.T) {
	f := newFake()
	srv := serve(t, f, Options{MaxObjectSize: 4})
	resp, b := do(t, "PUT", srv.URL+"/artifacts/big.bin", strings.NewReader("12345"), nil)
	wantError(t, resp, b, http.StatusRequestEntityTooLarge)
	if uploads, _, _ := f.counts(); uploads != 0 {
		t.Fatal("the node was asked to push")
	}
	// An upload may carry the form around the file besides the limit.
	body, h := formBody(t, "file", "small.bin:1234")
	if resp, b := do(t, "POST", srv.URL+"/upload", body, h); resp.StatusCode != http.StatusCreated {
		t.Fatalf("an upload of 4 bytes: %d %s", resp.StatusCode, b)
	}
}

func TestTooManyUploadsFromOneClient(t *testing.T) {
	f := newFake()
	f.uploading = make(chan cluster.PushMeta)
	f.proceed = make(chan struct{})
	srv := serve(t, f, Options{MaxUploadsPerClient: 1})
	done := make(chan int)
	go func() {
		resp, err := http.Post(srv.URL+"/upload", "multipart/form-data; boundary=x",
			strings.NewReader("--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n\r\nx\r\n--x--\r\n"))
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	<-f.uploading // the first push holds the client's one slot
	resp, b := do(t, "PUT", srv.URL+"/artifacts/b.bin", strings.NewReader("y"), nil)
	wantError(t, resp, b, http.StatusTooManyRequests)
	if resp.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	f.proceed <- struct{}{}
	if status := <-done; status != http.StatusCreated {
		t.Fatalf("the first push: %d", status)
	}
	// Its slot is free again.
	go func() { <-f.uploading; f.proceed <- struct{}{} }()
	if resp, b := do(t, "PUT", srv.URL+"/artifacts/b.bin", strings.NewReader("y"), nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("after the first push: %d %s", resp.StatusCode, b)
	}
}

// stalledBody sends some bytes, then nothing until the test ends.
type stalledBody struct {
	sent bool
	stop <-chan struct{}
}

func (s *stalledBody) Read(p []byte) (int, error) {
	if !s.sent {
		s.sent = true
		return copy(p, "the start of a body"), nil
	}
	<-s.stop
	return 0, io.EOF
}

func TestStalledBodyIs408(t *testing.T) {
	f := newFake()
	srv := serve(t, f, Options{BodyIdleTimeout: 50 * time.Millisecond})
	stop := make(chan struct{})
	defer close(stop)
	req, err := http.NewRequest("PUT", srv.URL+"/artifacts/slow.bin", &stalledBody{stop: stop})
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 1 << 20
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantError(t, resp, b, http.StatusRequestTimeout)
}
