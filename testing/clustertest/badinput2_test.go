package clustertest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pier-registry/pier/transport/httpapi"
	"github.com/pier-registry/pier/transport/server"
)

// TestBadInputNames: an upload's filename is its name whole, held to the
// rule of a PUT path, and a name has one spelling (NFC), so café.txt
// typed two ways cannot be two artifacts.
func TestBadInputNames(t *testing.T) {
	c := New(t, 3, Options{})
	u := c.Nodes[0].URL

	// A filename with directories is that path, not its last segment.
	r := uploadRaw(t, u, "team/app/1.2/y.txt", []byte("why"))
	if r.Status != http.StatusCreated {
		t.Fatalf("upload team/app/1.2/y.txt: %d %s", r.Status, r.Body)
	}
	var art struct{ Name string }
	r.JSON(t, &art)
	if art.Name != "team/app/1.2/y.txt" {
		t.Fatalf("upload team/app/1.2/y.txt bound %q", art.Name)
	}
	pullEverywhere(t, c, "team/app/1.2/y.txt", []byte("why"))
	// A name field given first wins over any filename, even one that could
	// not be a name.
	r = uploadRaw(t, u, "../../renamed.bin", []byte("renamed"), [2]string{"name", "renamed/by/field.bin"})
	if r.Status != http.StatusCreated {
		t.Fatalf("upload with a name field: %d %s", r.Status, r.Body)
	}
	pullEverywhere(t, c, "renamed/by/field.bin", []byte("renamed"))

	const nfc, nfd = "caf\u00e9.txt", "cafe\u0301.txt"
	if r := Do(t, "PUT", u+artifactPath(nfc), strings.NewReader("composed"), nil); r.Status != http.StatusCreated {
		t.Fatalf("PUT NFC %q: %d %s", nfc, r.Status, r.Body)
	}
	for _, i := range c.Running() {
		if err := c.Nodes[i].Srv.Node.Barrier(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshotState(t, c)

	refused := []struct {
		what string
		do   func() Response
	}{
		{"upload ../../etc/passwd", func() Response { return uploadRaw(t, u, "../../etc/passwd", []byte("root")) }},
		{"upload a/../../b", func() Response { return uploadRaw(t, u, "a/../../b", []byte("b")) }},
		{"upload C:\\x.jar", func() Response { return uploadRaw(t, u, `C:\x.jar`, []byte("x")) }},
		{"PUT NFD", func() Response { return Do(t, "PUT", u+artifactPath(nfd), strings.NewReader("decomposed"), nil) }},
		{"upload NFD", func() Response { return uploadRaw(t, u, nfd, []byte("decomposed")) }},
		{"upload NFD name field", func() Response {
			return uploadRaw(t, u, "x.bin", []byte("decomposed"), [2]string{"name", nfd})
		}},
		{"GET NFD", func() Response { return Do(t, "GET", u+artifactPath(nfd), nil, nil) }},
		{"tag NFD", func() Response {
			return Do(t, "PUT", u+"/api/v1/tags/prod?name="+url.QueryEscape(nfd), nil, nil)
		}},
		{"PUT right-to-left override", func() Response {
			return Do(t, "PUT", u+artifactPath("invoice\u202egpj.exe"), strings.NewReader("x"), nil)
		}},
		{"upload zero-width space", func() Response { return uploadRaw(t, u, "app\u200b.jar", []byte("x")) }},
	}
	for _, tc := range refused {
		r := tc.do()
		if r.Status != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", tc.what, r.Status, r.Body)
			continue
		}
		var e struct{ Error string }
		if err := json.Unmarshal(r.Body, &e); err != nil || e.Error == "" {
			t.Errorf("%s: error body is not JSON with an error: %q", tc.what, r.Body)
		}
		if strings.Contains(tc.what, "NFD") && !strings.Contains(e.Error, "NFC") {
			t.Errorf("%s: error %q does not say the name must be NFC", tc.what, e.Error)
		}
	}
	for _, name := range []string{"passwd", "etc/passwd", "b", "x.jar", "renamed.bin", "y.txt"} {
		if r := Do(t, "GET", u+"/api/v1/artifacts/"+name, nil, nil); r.Status != http.StatusNotFound {
			t.Errorf("%s: %d %s, want 404", name, r.Status, r.Body)
		}
	}
	assertUnchanged(t, c, before)
	pullEverywhere(t, c, nfc, []byte("composed"))
}

// TestBadInputBodies: a push whose client half-closes after its body
// commits; a declared length over the maximum is refused before the body
// is read; a stalled body is cut; one client cannot hold every upload slot.
func TestBadInputBodies(t *testing.T) {
	const maxObject = 1 << 20
	c := New(t, 3, Options{Tune: func(_ int, cfg *server.Config) { cfg.Node.MaxObjectSize = maxObject }})
	u := c.Nodes[1].URL
	node := c.Nodes[1].Srv.Node

	t.Run("half-close after the body", func(t *testing.T) {
		big := bytes.Repeat([]byte("h"), 300<<10) // over the small-object size
		for _, tc := range []struct {
			name string
			body []byte
		}{{"half/small.bin", []byte("small")}, {"half/empty.bin", nil}, {"half/big.bin", big}} {
			rc := dialRaw(t, u)
			rc.write(head("PUT", artifactPath(tc.name), int64(len(tc.body))), tc.body)
			rc.closeWrite()
			if r := rc.response(Wait()); r.Status != http.StatusCreated {
				t.Fatalf("PUT %s then half-close: %d %s, want 201", tc.name, r.Status, r.Body)
			}
			pullEverywhere(t, c, tc.name, tc.body)
		}
		body, ctype := form("half/upload.bin", []byte("uploaded"))
		rc := dialRaw(t, u)
		rc.write(head("POST", "/upload", int64(len(body)), "Content-Type: "+ctype), body)
		rc.closeWrite()
		if r := rc.response(Wait()); r.Status != http.StatusCreated {
			t.Fatalf("upload then half-close: %d %s, want 201", r.Status, r.Body)
		}
		pullEverywhere(t, c, "half/upload.bin", []byte("uploaded"))

		// Writes without a body: net/http's background read sees the EOF
		// at once.
		// The background read races the handler: a few rounds of each.
		for _, tc := range []struct {
			method, path string
			rounds, want int
		}{
			{"PUT", "/api/v1/tags/prod?name=half/small.bin", 5, http.StatusOK},
			{"DELETE", "/api/v1/tags/prod?name=half/small.bin", 5, http.StatusOK},
			{"DELETE", "/api/v1/artifacts/half/empty.bin", 1, http.StatusNoContent},
		} {
			for range tc.rounds {
				rc := dialRaw(t, u)
				rc.write(head(tc.method, tc.path, 0))
				rc.closeWrite()
				if r := rc.response(Wait()); r.Status != tc.want {
					t.Fatalf("%s %s then half-close: %d %s, want %d", tc.method, tc.path, r.Status, r.Body, tc.want)
				}
			}
		}
		if r := Do(t, "GET", u+"/artifacts/half/empty.bin", nil, nil); r.Status != http.StatusNotFound {
			t.Fatalf("deleted half/empty.bin: %d, want 404", r.Status)
		}
	})

	// The limits are options of the API; this one serves node 2 with
	// short ones.
	limited := apiServer(t, c, node, httpapi.Options{
		MaxObjectSize: maxObject, BodyIdleTimeout: 300 * time.Millisecond, MaxUploadsPerClient: 2,
	})

	t.Run("a body that keeps coming is not cut", func(t *testing.T) {
		// 12 pieces 100 ms apart: longer in all than the idle time, never
		// idle that long.
		piece := bytes.Repeat([]byte("s"), 1000)
		rc := dialRaw(t, limited)
		rc.write(head("PUT", "/artifacts/slow/steady.bin", 12*int64(len(piece))))
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for range 12 {
			<-tick.C
			rc.write(piece)
		}
		if r := rc.response(Wait()); r.Status != http.StatusCreated {
			t.Fatalf("slow steady PUT: %d %s, want 201", r.Status, r.Body)
		}
		pullEverywhere(t, c, "slow/steady.bin", bytes.Repeat(piece, 12))
	})

	for _, i := range c.Running() {
		if err := c.Nodes[i].Srv.Node.Barrier(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshotState(t, c)

	t.Run("declared length over the maximum", func(t *testing.T) {
		_, ctype := form("t.bin", nil)
		for _, tc := range []struct {
			what string
			head []byte
		}{
			{"PUT", head("PUT", "/artifacts/too/big.bin", maxObject+1)},
			{"PUT expecting 100-continue", head("PUT", "/artifacts/too/big.bin", maxObject+1, "Expect: 100-continue")},
			{"upload", head("POST", "/upload", maxObject+httpapi.MultipartSlack+1, "Content-Type: "+ctype)},
		} {
			// Only the head is sent: the answer must come without the body.
			rc := dialRaw(t, limited)
			rc.write(tc.head)
			r := rc.response(5 * time.Second)
			if r.Status != http.StatusRequestEntityTooLarge {
				t.Fatalf("%s: %d %s, want 413", tc.what, r.Status, r.Body)
			}
			wantJSONError(t, tc.what, r)
		}
	})

	t.Run("stalled body", func(t *testing.T) {
		body, ctype := form("stalled/upload.bin", bytes.Repeat([]byte("u"), 50000))
		for _, tc := range []struct {
			what string
			head []byte
			sent []byte
		}{
			{"PUT", head("PUT", "/artifacts/stalled/put.bin", 100000), bytes.Repeat([]byte("p"), 5000)},
			{"PUT before any byte", head("PUT", "/artifacts/stalled/none.bin", 100000), nil},
			{"upload", head("POST", "/upload", int64(len(body)), "Content-Type: "+ctype), body[:len(body)/2]},
		} {
			rc := dialRaw(t, limited)
			start := time.Now()
			rc.write(tc.head, tc.sent)
			r := rc.response(Wait())
			if r.Status != http.StatusRequestTimeout {
				t.Fatalf("%s: %d %s, want 408", tc.what, r.Status, r.Body)
			}
			wantJSONError(t, tc.what, r)
			if took := time.Since(start); took < 300*time.Millisecond {
				t.Fatalf("%s: cut after %s, before the idle time", tc.what, took)
			}
		}
	})

	t.Run("uploads per client", func(t *testing.T) {
		// Its own API: the stalled pushes that hold the slots must not be
		// cut by the idle time while the test runs.
		api := apiServer(t, c, node, httpapi.Options{MaxUploadsPerClient: 2})
		var holders []*rawConn
		for i := range 2 {
			rc := dialRaw(t, api)
			rc.write(head("PUT", fmt.Sprintf("/artifacts/held/%d.bin", i), 1000, "Expect: 100-continue"))
			// 100 Continue comes when the handler reads the body: it holds
			// its slot then.
			if r := rc.response(Wait()); r.Status != http.StatusContinue {
				t.Fatalf("push %d: %d %s, want 100 Continue", i, r.Status, r.Body)
			}
			holders = append(holders, rc)
		}
		for _, tc := range []struct {
			what string
			head []byte
		}{
			{"PUT", head("PUT", "/artifacts/held/third.bin", 5, "Expect: 100-continue")},
			{"upload", head("POST", "/upload", 5, "Expect: 100-continue", "Content-Type: multipart/form-data; boundary=X")},
		} {
			rc := dialRaw(t, api)
			rc.write(tc.head)
			r := rc.response(5 * time.Second)
			if r.Status != http.StatusTooManyRequests {
				t.Fatalf("third %s: %d %s, want 429", tc.what, r.Status, r.Body)
			}
			wantJSONError(t, tc.what, r)
			if r.Header.Get("Retry-After") == "" {
				t.Fatalf("third %s: 429 without Retry-After", tc.what)
			}
		}
		// Other clients' requests and reads are not counted.
		if r := Do(t, "GET", api+"/api/v1/artifacts", nil, nil); r.Status != http.StatusOK {
			t.Fatalf("list while the slots are held: %d %s", r.Status, r.Body)
		}
		for _, h := range holders {
			h.c.Close()
		}
		// The slots come back when the held pushes end: a bad name is then
		// refused for itself, not for the limit.
		Eventually(t, Wait(), func() error {
			if r := rawRequest(t, api, "PUT", "/artifacts/a//b", []byte("x"), nil); r.Status != http.StatusBadRequest {
				return fmt.Errorf("after the holders left: %d %s", r.Status, r.Body)
			}
			return nil
		})
	})

	for _, name := range []string{"too/big.bin", "stalled/put.bin", "stalled/none.bin", "stalled/upload.bin", "held/0.bin", "held/third.bin"} {
		if r := Do(t, "GET", u+"/api/v1/artifacts/"+name, nil, nil); r.Status != http.StatusNotFound {
			t.Errorf("%s: %d %s, want 404", name, r.Status, r.Body)
		}
	}
	assertUnchanged(t, c, before)
}

// assertUnchanged waits until every node's state is before again: a
// refused push's shards are deleted in the background.
func assertUnchanged(t *testing.T, c *Cluster, before string) {
	t.Helper()
	for _, i := range c.Running() {
		if err := c.Nodes[i].Srv.Node.Barrier(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	Eventually(t, Wait(), func() error {
		if after := snapshotState(t, c); after != before {
			return fmt.Errorf("bad input changed state:\nbefore %s\nafter  %s", before, after)
		}
		return nil
	})
}

func wantJSONError(t *testing.T, what string, r Response) {
	t.Helper()
	var e struct{ Error string }
	if err := json.Unmarshal(r.Body, &e); err != nil || e.Error == "" {
		t.Fatalf("%s: error body is not JSON with an error: %q", what, r.Body)
	}
}

// apiServer serves the public API of one node of c with opts, on a
// listener of its own.
func apiServer(t *testing.T, c *Cluster, reg httpapi.Registry, opts httpapi.Options) string {
	t.Helper()
	log := hclog.New(&hclog.LoggerOptions{Name: "api", Level: hclog.Warn, Output: c.logW})
	s := httptest.NewServer(httpapi.New(reg, log, opts))
	t.Cleanup(s.Close)
	return s.URL
}

// artifactPath is the escaped path of a name under /artifacts/.
func artifactPath(name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = urlPathEscape(s)
	}
	return "/artifacts/" + strings.Join(segs, "/")
}

func urlPathEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// form is a multipart upload of content under filename, written as sent:
// mime/multipart's CreateFormFile would keep it, but a reader's
// Part.FileName would not.
func form(filename string, content []byte, fields ...[2]string) (body []byte, contentType string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range fields {
		_ = mw.WriteField(f[0], f[1])
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename="%s"`, quoteEscaper.Replace(filename)))
	h.Set("Content-Type", "application/octet-stream")
	fw, _ := mw.CreatePart(h)
	fw.Write(content)
	mw.Close()
	return buf.Bytes(), mw.FormDataContentType()
}

var quoteEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// uploadRaw posts form(filename, content, fields...) to base.
func uploadRaw(t *testing.T, base, filename string, content []byte, fields ...[2]string) Response {
	t.Helper()
	body, ctype := form(filename, content, fields...)
	return Do(t, http.MethodPost, base+"/upload", bytes.NewReader(body), http.Header{"Content-Type": {ctype}})
}

// head is a request head with a Content-Length and extra header lines.
func head(method, path string, length int64, extra ...string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: pier\r\nContent-Length: %d\r\n", method, path, length)
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// rawConn is a client connection written by hand, for what net/http's
// client does not do: stall a body, half-close, send a head alone.
type rawConn struct {
	t  *testing.T
	c  *net.TCPConn
	br *bufio.Reader
}

func dialRaw(t *testing.T, base string) *rawConn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawConn{t: t, c: conn.(*net.TCPConn), br: bufio.NewReader(conn)}
}

func (rc *rawConn) write(parts ...[]byte) {
	rc.t.Helper()
	for _, p := range parts {
		if _, err := rc.c.Write(p); err != nil {
			rc.t.Fatalf("write: %v", err)
		}
	}
}

func (rc *rawConn) closeWrite() {
	rc.t.Helper()
	if err := rc.c.CloseWrite(); err != nil {
		rc.t.Fatalf("half-close: %v", err)
	}
}

// response reads the next response (an interim 100 Continue too), failing
// the test if none comes within d.
func (rc *rawConn) response(d time.Duration) Response {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		rc.t.Fatalf("no response within %s: %v", d, err)
	}
	defer resp.Body.Close()
	var b []byte
	if resp.StatusCode != http.StatusContinue {
		b, err = io.ReadAll(resp.Body)
		if err != nil {
			rc.t.Fatalf("read response body: %v", err)
		}
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}
