package webui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func serve(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestPages(t *testing.T) {
	srv := serve(t)
	for _, tc := range []struct {
		path, page, want string
	}{
		{"/", "list", `id="search"`},
		{"/ui/artifact?name=team/app/1.2/app.jar", "artifact", `data-name="team/app/1.2/app.jar"`},
		{"/ui/cluster", "cluster", `id="members"`},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := get(t, srv.URL+tc.path)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Fatalf("Content-Type %q", ct)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
				t.Fatalf("Content-Security-Policy %q", csp)
			}
			for _, want := range []string{`data-page="` + tc.page + `"`, tc.want, `<label for="token">`, `src="/ui/static/app.js"`} {
				if !strings.Contains(body, want) {
					t.Fatalf("page lacks %s:\n%s", want, body)
				}
			}
		})
	}
}

// A name is text in the page, whatever it holds.
func TestArtifactNameIsEscaped(t *testing.T) {
	srv := serve(t)
	_, body := get(t, srv.URL+`/ui/artifact?name=%3Cscript%3Ealert(1)%3C%2Fscript%3E%22x`)
	if strings.Contains(body, "<script>alert") || strings.Contains(body, `"x"`) {
		t.Fatalf("name not escaped:\n%s", body)
	}
	if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Fatalf("escaped name missing:\n%s", body)
	}
}

func TestStatic(t *testing.T) {
	srv := serve(t)
	for path, ct := range map[string]string{
		"/ui/static/app.js":    "text/javascript; charset=utf-8",
		"/ui/static/style.css": "text/css; charset=utf-8",
	} {
		resp, body := get(t, srv.URL+path)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != ct || len(body) == 0 {
			t.Fatalf("%s: %d %q, %d bytes", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
	}
	for _, path := range []string{"/ui/static/", "/ui/static/missing.js", "/ui/elsewhere", "/index.html"} {
		if resp, _ := get(t, srv.URL+path); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%s: %d, want 404", path, resp.StatusCode)
		}
	}
}

// The script never turns data into markup: the one way a name or label
// could run as code in the page.
func TestScriptWritesTextOnly(t *testing.T) {
	b, err := files.ReadFile("static/app.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
		if strings.Contains(string(b), bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
}
