package clustertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The web UI in a real headless Chromium against a real cluster: list,
// search, pages, an artifact's page, its download compared byte for byte,
// and the cluster page. Screenshots go where the test logs.

// browserStep bounds each step in the browser: a cluster under -race on two
// cores answers in well under a second; the rest is headroom.
const browserStep = 30 * time.Second

// webArtifact is one pushed artifact and what the UI should show of it.
type webArtifact struct {
	name, version string
	labels, tags  []string
	content       []byte
}

func TestWebUI(t *testing.T) {
	start := time.Now()
	chromium := chromiumPath(t)
	c := New(t, 3, Options{})
	runWebUI(t, c, chromium, "")
	t.Logf("web UI test took %s", time.Since(start).Round(time.Millisecond))
}

// With access control on, the pages load without a token, the data asks for
// one, and everything works once the admin token is pasted in.
func TestWebUIWithAuth(t *testing.T) {
	start := time.Now()
	chromium := chromiumPath(t)
	c, secret := authCluster(t, 3)
	runWebUI(t, c, chromium, secret)
	t.Logf("web UI test took %s", time.Since(start).Round(time.Millisecond))
}

// chromiumPath finds a Chromium: $PIER_CHROMIUM, else the Debian package's
// binary. Without one the test skips, saying why.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PIER_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium found (apt-get install chromium, or set PIER_CHROMIUM): the web UI's browser test needs one")
	return ""
}

func runWebUI(t *testing.T, c *Cluster, chromium, secret string) {
	arts := pushForUI(t, c.Nodes[0].URL, secret)
	// Browse another node than the one pushed to: read-after-write.
	b := newBrowser(t, chromium, c.Nodes[1].URL)
	all := make([]string, 0, len(arts))
	for _, a := range arts {
		all = append(all, a.name)
	}

	b.do("open the list", chromedp.Navigate(b.base+"/"))
	if secret != "" {
		// The page itself is open; its data needs a token.
		const asks = `document.body.dataset.state === "auth" && document.getElementById("status").textContent.includes("needs a token")`
		b.wait("ask for a token", asks)
		b.do("log in with a wrong token",
			chromedp.SetValue(chromedp.ID("token"), "pier_not-a-token"),
			chromedp.Click(chromedp.CSS(`#login button[type="submit"]`)),
		)
		// Refused, it is dropped and the token box is back.
		b.wait("refuse the wrong token", asks+` && document.getElementById("status").textContent.includes("unknown or revoked")`+
			` && !document.getElementById("login").hidden && sessionStorage.length === 0`)
		b.do("log in",
			chromedp.SetValue(chromedp.ID("token"), secret),
			chromedp.Click(chromedp.CSS(`#login button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.ID("logout")),
		)
	}
	b.search(map[string]string{"size": "250"}, firstN(all, 250))
	b.screenshot("list")

	// Search: the API's prefix, label and tag, and the UI's own glob,
	// version and digest filters.
	b.search(map[string]string{"name": "myapp-*", "label": "os=linux"}, []string{"myapp-v1.2.3.jar"})
	b.search(map[string]string{"tag": "production-ready"}, []string{"myapp-v1.2.3.jar", "team/app/1.2/app.bin"})
	b.search(map[string]string{"tag": "staging-validated"}, []string{"myapp-v1.2.3.jar"})
	b.search(map[string]string{"version": "1.2.*"}, []string{"myapp-v1.2.3.jar", "myapp-v1.2.4.jar"})
	bin := arts[2]
	b.search(map[string]string{"digest": strings.TrimPrefix(Digest(bin.content), "sha256:")[:10]}, []string{bin.name})
	b.search(map[string]string{"name": "bulk-?5.txt"}, []string{"bulk-05.txt", "bulk-15.txt", "bulk-25.txt"})
	b.screenshot("search")

	// Pages: 27 bulk artifacts at 25 a page are 25, then 2, newest first.
	var bulk []string
	for _, n := range slices.Backward(all) {
		if strings.HasPrefix(n, "bulk-") {
			bulk = append(bulk, n)
		}
	}
	b.search(map[string]string{"name": "bulk-", "size": "25"}, bulk[:25])
	b.do("next page", chromedp.Click(chromedp.ID("next")))
	b.waitRows("page 2", bulk[25:])
	b.wait("no page 3", `document.getElementById("next").disabled && !document.getElementById("prev").disabled`)
	b.do("previous page", chromedp.Click(chromedp.ID("prev")))
	b.waitRows("page 1 again", bulk[:25])

	// An artifact's page, opened from the list.
	b.search(map[string]string{"name": "team/"}, []string{bin.name})
	b.do("open "+bin.name,
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#results tr[data-name=%q] a`, bin.name))),
		chromedp.WaitVisible(chromedp.ID("artifact")),
	)
	b.wait("artifact loaded", `document.body.dataset.page === "artifact" && document.body.dataset.state === "ready"`)
	page := b.eval("read the artifact page", `({
		digest: document.getElementById("a-digest").textContent,
		version: document.getElementById("a-version").textContent,
		tags: document.getElementById("a-tags").textContent,
		labels: [...document.querySelectorAll("#labels tbody tr")].map(r => r.cells[0].textContent + "=" + r.cells[1].textContent).join(","),
		history: [...document.querySelectorAll("#history tbody tr")].map(r => r.cells[1].textContent + ":" + r.cells[2].textContent).join(","),
		curl: document.getElementById("cmd-curl").value,
		pier: document.getElementById("cmd-pier").value,
	})`)
	want := map[string]string{
		"digest": Digest(bin.content), "version": bin.version, "tags": "production-ready",
		"labels": "arch=amd64,os=linux", "history": "production-ready:add",
		"curl": "curl -f" + map[bool]string{true: ` -H "Authorization: Bearer $PIER_TOKEN"`}[secret != ""] +
			" -O " + b.base + "/artifacts/" + bin.name,
		"pier": "pier pull --server " + strings.TrimPrefix(b.base, "http://") + " " + bin.name,
	}
	for k, w := range want {
		if page[k] != w {
			t.Errorf("artifact page %s = %q, want %q", k, page[k], w)
		}
	}
	b.screenshot("artifact")
	got := b.download(bin.name)
	if secret != "" {
		// Through fetch with the token, saved from a blob.
		b.wait("the download's status", `document.getElementById("download-status").textContent === "Saved 300.0 KiB."`)
	}
	if !bytes.Equal(got, bin.content) {
		t.Fatalf("downloaded %d bytes (%s), pushed %d (%s)", len(got), Digest(got), len(bin.content), Digest(bin.content))
	}

	// The cluster page: three members, a leader, every object fully
	// redundant.
	b.do("open the cluster page", chromedp.Navigate(b.base+"/ui/cluster"), chromedp.WaitVisible(chromedp.ID("cluster")))
	b.wait("three members", `document.body.dataset.state === "ready" && document.querySelectorAll("#members tbody tr[data-id]").length === 3`)
	cl := b.eval("read the cluster page", `({
		leader: document.getElementById("c-leader").textContent,
		marked: [...document.querySelectorAll("#members tbody tr")].filter(r => r.cells[0].textContent.endsWith("(leader)")).length + "",
		dcs: [...new Set([...document.querySelectorAll("#members tbody tr")].map(r => r.cells[1].textContent))].join(","),
		full: document.querySelector('#redundancy tr[data-state="full"]').cells[1].textContent,
		objects: document.getElementById("c-objects").textContent,
		disk: [...document.querySelectorAll("#members tbody tr")].every(r => r.cells[8].textContent.endsWith("B")) + "",
	})`)
	if cl["leader"] == "" || cl["leader"] == "none" || cl["marked"] != "1" || cl["dcs"] != "dc1" ||
		cl["full"] != cl["objects"] || cl["objects"] == "0" || cl["disk"] != "true" {
		t.Errorf("cluster page: %v", cl)
	}
	b.screenshot("cluster")
	if errs := b.errorsSeen(); len(errs) > 0 {
		t.Errorf("the pages logged errors: %q", errs)
	}
}

// pushForUI pushes the artifacts the test looks for, to base.
func pushForUI(t *testing.T, base, secret string) []webArtifact {
	t.Helper()
	big := make([]byte, 300<<10) // above the small-object threshold: erasure coded
	rand.Read(big)
	arts := []webArtifact{
		{name: "myapp-v1.2.3.jar", version: "1.2.3", labels: []string{"os=linux"}, tags: []string{"staging-validated"}, content: []byte("hello pier\n")},
		{name: "myapp-v1.2.4.jar", version: "1.2.4", labels: []string{"os=windows"}, content: []byte("hello pier 1.2.4\n")},
		{name: "team/app/1.2/app.bin", version: "1.2", labels: []string{"os=linux", "arch=amd64"}, content: big},
		{name: "other.txt", content: []byte("no metadata")},
	}
	for i := range 27 {
		arts = append(arts, webArtifact{name: fmt.Sprintf("bulk-%02d.txt", i), content: fmt.Appendf(nil, "bulk %d", i)})
	}
	for _, a := range arts {
		h := http.Header{}
		if secret != "" {
			h.Set("Authorization", "Bearer "+secret)
		}
		if a.version != "" {
			h.Set("X-Pier-Version", a.version)
		}
		for _, l := range a.labels {
			h.Add("X-Pier-Label", l)
		}
		for _, tg := range a.tags {
			h.Add("X-Pier-Tag", tg)
		}
		if r := Do(t, http.MethodPut, base+"/artifacts/"+a.name, bytes.NewReader(a.content), h); r.Status != http.StatusCreated {
			t.Fatalf("push %s: %d %s", a.name, r.Status, r.Body)
		}
	}
	for _, name := range []string{"myapp-v1.2.3.jar", "team/app/1.2/app.bin"} {
		h := http.Header{}
		if secret != "" {
			h.Set("Authorization", "Bearer "+secret)
		}
		if r := Do(t, http.MethodPut, base+"/api/v1/tags/production-ready?name="+name, nil, h); r.Status != http.StatusOK {
			t.Fatalf("tag %s: %d %s", name, r.Status, r.Body)
		}
	}
	return arts
}

func firstN(s []string, n int) []string { return s[:min(n, len(s))] }

// uiBrowser is a headless Chromium on one node's UI.
type uiBrowser struct {
	t    *testing.T
	ctx  context.Context
	base string
	// downloads is where the browser saves files.
	downloads string

	mu sync.Mutex
	// pageErrors are the script exceptions and console errors the pages
	// raised: the UI must run clean, not merely show the right rows.
	pageErrors []string
}

func (b *uiBrowser) pageError(msg string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pageErrors = append(b.pageErrors, msg)
}

func (b *uiBrowser) errorsSeen() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.pageErrors)
}

// watchErrors records the pages' exceptions and error messages (a script
// error, a Content-Security-Policy violation), and proves it does on a
// planted one.
func (b *uiBrowser) watchErrors() {
	b.t.Helper()
	err := chromedp.Listen(b.ctx, func(ev any) {
		switch ev := ev.(type) {
		case *cdpruntime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.pageError(fmt.Sprintf("%s (%s:%d)", msg, d.URL, d.LineNumber+1))
		case *cdplog.EventEntryAdded:
			// Network errors are the API's answers, 401s the test provokes.
			if ev.Entry.Level == cdplog.EntryLevelError && ev.Entry.Source != cdplog.EntrySourceNetwork {
				b.pageError(ev.Entry.Text + " (" + ev.Entry.URL + ")")
			}
		}
	})
	if err != nil {
		b.t.Fatalf("listen to the browser: %v", err)
	}
	b.do("enable the page's log",
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{})
			return err
		}),
		chromedp.Evaluate[chromedp.Void](`setTimeout(() => { throw new Error("planted") }, 0)`))
	Eventually(b.t, browserStep, func() error {
		if errs := b.errorsSeen(); len(errs) != 1 || !strings.Contains(errs[0], "planted") {
			return fmt.Errorf("page errors %q, want the planted one", errs)
		}
		return nil
	})
	b.mu.Lock()
	b.pageErrors = nil
	b.mu.Unlock()
}

func newBrowser(t *testing.T, chromium, base string) *uiBrowser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		// As root in a container Chromium's sandbox cannot start.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 1000),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first Run starts the browser and lives as long as ctx, so it
	// gets no deadline of its own; the wait for it is bounded here.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start %s: %v", chromium, err)
		}
	case <-time.After(time.Minute):
		cancel()
		t.Fatalf("%s did not start within a minute", chromium)
	}
	b := &uiBrowser{t: t, ctx: ctx, base: base, downloads: t.TempDir()}
	b.do("allow downloads", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior:      browser.SetDownloadBehaviorBehaviorAllowAndName,
			DownloadPath:  b.downloads,
			EventsEnabled: new(true),
		})
		return err
	}))
	b.watchErrors()
	return b
}

// do runs steps within browserStep; on failure it keeps a screenshot and
// says what the page showed.
func (b *uiBrowser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.failed(what, err)
	}
}

// wait polls a JavaScript condition until it holds, within browserStep.
func (b *uiBrowser) wait(what, cond string) {
	b.t.Helper()
	b.do(what, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(browserStep)))
}

func (b *uiBrowser) eval(what, expr string) map[string]string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](expr))
	if err != nil {
		b.failed(what, err)
	}
	return v
}

const rowNames = `[...document.querySelectorAll("#results tbody tr[data-name]")].map(r => r.dataset.name)`

// search fills the search form (fields not given are emptied), submits it
// and waits for exactly want, in any order.
func (b *uiBrowser) search(fields map[string]string, want []string) {
	b.t.Helper()
	values := map[string]string{"size": "50"}
	for _, k := range []string{"name", "label", "tag", "version", "digest"} {
		values[k] = ""
	}
	maps.Copy(values, fields)
	js, _ := json.Marshal(values)
	what := fmt.Sprintf("search %v", fields)
	// Set in one script: chromedp's SetValue reports a failure for "".
	b.do(what,
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](fmt.Sprintf(
				`Object.entries(%s).every(([k, v]) => (document.getElementById("q-" + k).value = v) === v)`, js))(ctx, t)
			return err
		}),
		chromedp.Click(chromedp.CSS(`#search button[type="submit"]`)))
	b.waitRows(what, want)
}

// waitRows waits until the list is loaded and shows exactly want.
func (b *uiBrowser) waitRows(what string, want []string) {
	b.t.Helper()
	sorted := slices.Sorted(slices.Values(want))
	js, _ := json.Marshal(sorted)
	lit, _ := json.Marshal(string(js))
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	cond := fmt.Sprintf(`document.body.dataset.state === "ready" && JSON.stringify(%s.sort()) === %s`, rowNames, lit)
	if err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(browserStep))); err != nil {
		rows, _ := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](rowNames))
		b.failed(what, fmt.Errorf("rows %q, want %q: %w", rows, sorted, err))
	}
}

// download clicks the artifact page's download button and returns the
// bytes the browser saved.
func (b *uiBrowser) download(name string) []byte {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	// Subscribed before the click, so no event is missed.
	progress := chromedp.Events(ctx, browser.DownloadProgress)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("download"))); err != nil {
		b.failed("download "+name, err)
	}
	for ev, err := range progress {
		if err != nil {
			b.failed("download "+name, err)
		}
		switch ev.State {
		case browser.DownloadProgressStateCompleted:
			got, err := os.ReadFile(filepath.Join(b.downloads, ev.GUID))
			if err != nil {
				b.t.Fatalf("read the download of %s: %v", name, err)
			}
			return got
		case browser.DownloadProgressStateCanceled:
			b.failed("download "+name, fmt.Errorf("the browser canceled it"))
		}
	}
	b.failed("download "+name, fmt.Errorf("no completed download: %w", ctx.Err()))
	return nil
}

// screenshot saves the page as a PNG under $PIER_TEST_ARTIFACTS, or
// pier-webui-screenshots in the temp dir, and logs where.
func (b *uiBrowser) screenshot(what string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", what, err)
		return
	}
	dir := os.Getenv("PIER_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "pier-webui-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Logf("screenshot %s: %v", what, err)
		return
	}
	file := filepath.Join(dir, strings.ReplaceAll(b.t.Name(), "/", "_")+"-"+what+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", what, err)
		return
	}
	b.t.Logf("screenshot of %s: %s", what, file)
}

// failed ends the test with what the page showed and a screenshot of it.
func (b *uiBrowser) failed(what string, err error) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	shown, _ := chromedp.Run(ctx, chromedp.Evaluate[string](
		`location.href + " state=" + document.body.dataset.state + " status=" + document.getElementById("status").textContent`))
	b.screenshot("failed")
	b.t.Fatalf("%s: %v (page: %s)", what, err, shown)
}
