package clustertest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"testing"
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
