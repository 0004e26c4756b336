package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
)

// artifactView is the metadata JSON of the interface contract.
type artifactView struct {
	Name       string            `json:"name"`
	Size       int64             `json:"size"`
	Digest     string            `json:"digest"`
	Version    string            `json:"version"`
	Commit     string            `json:"commit"`
	Created    string            `json:"created"`
	Labels     map[string]string `json:"labels"`
	Tags       []string          `json:"tags"`
	TagHistory []fsm.TagEvent    `json:"tag_history,omitempty"`
	// Origin is the datacenter the artifact was pushed to, when it came
	// here by replication or from a bundle.
	Origin string `json:"origin,omitempty"`
}

// Originer tells the datacenter an artifact came from ("" for one pushed
// to this cluster). A registry without it shows no origin.
type Originer interface {
	Origin(name string) string
}

func (a *API) view(art fsm.Artifact, history []fsm.TagEvent) artifactView {
	v := artifactView{
		Name: art.Name, Size: art.Size, Digest: art.Digest, Version: art.Version, Commit: art.Commit,
		Created: art.Created.UTC().Format(time.RFC3339), Labels: art.Labels, Tags: art.Tags, TagHistory: history,
	}
	if o, ok := a.reg.(Originer); ok {
		v.Origin = o.Origin(art.Name)
	}
	return v
}

// PullThrougher serves pulls of names this cluster has never bound and
// another datacenter holds (cluster/pullthrough.go): the metadata, then
// the bytes, streamed while the node stores them. A registry without it
// answers 404.
type PullThrougher interface {
	PullThroughStat(ctx context.Context, name string) (fsm.Artifact, error)
	PullThroughOpen(ctx context.Context, a fsm.Artifact, off, n int64) (io.ReadCloser, error)
}

// opener opens n bytes of an artifact's content from off.
type opener func(ctx context.Context, a fsm.Artifact, off, n int64) (io.ReadCloser, error)

func etag(digest string) string { return `"` + digest + `"` }

// artifactURL escapes each segment of name but keeps its slashes.
func artifactURL(name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return pathArtifacts + strings.Join(segs, "/")
}

// download serves GET and HEAD of an artifact's bytes. http.ServeContent
// does Range, If-None-Match and HEAD; the content behind it is opened
// lazily at the offset it seeks to, so a range reads only what it needs and
// a HEAD or a 304 reads nothing.
func (a *API) download(w http.ResponseWriter, r *http.Request, name string) {
	art, err := a.reg.Stat(r.Context(), name)
	open := opener(a.reg.Open)
	if errors.Is(err, fsm.ErrNotFound) {
		if pt, ok := a.reg.(PullThrougher); ok {
			if rart, perr := pt.PullThroughStat(r.Context(), name); perr == nil {
				art, err, open = rart, nil, pt.PullThroughOpen
			}
		}
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("ETag", etag(art.Digest))
	ct := mime.TypeByExtension(path.Ext(art.Name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(art.Name)}))
	h.Set("X-Pier-Version", art.Version)
	if noCache(r) {
		r = r.WithContext(cluster.BypassPullCache(r.Context()))
	}
	if r.Method == http.MethodGet && plainGet(r) {
		a.sendWhole(w, r, art, open)
		return
	}
	c := &lazyContent{ctx: r.Context(), open: open, art: art}
	defer c.Close()
	hw := &heldHeader{w: w}
	http.ServeContent(hw, r, "", art.Created, c)
	a.finishPull(hw, r, art, c.err)
}

// noCache reports a request that asks for the bytes read from the shards,
// not from the node's pull cache.
func noCache(r *http.Request) bool {
	for _, v := range r.Header.Values("Cache-Control") {
		for _, d := range strings.Split(v, ",") {
			if d = strings.ToLower(strings.TrimSpace(d)); d == "no-cache" || d == "no-store" {
				return true
			}
		}
	}
	return r.Header.Get("Pragma") == "no-cache"
}

// plainGet reports a request for the whole body with no conditions, the
// common case, which needs none of http.ServeContent's machinery.
func plainGet(r *http.Request) bool {
	for _, k := range []string{"Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range"} {
		if _, ok := r.Header[k]; ok {
			return false
		}
	}
	return true
}

// sendWhole answers a plain GET. The content is opened before the status
// is sent, so what cannot be read gets a clean error; then it is written
// straight into the response (the reader's WriteTo, when it has one, sends
// whole blocks), without http.ServeContent's 32 KiB copy.
func (a *API) sendWhole(w http.ResponseWriter, r *http.Request, art fsm.Artifact, open opener) {
	h := w.Header()
	h.Set("Accept-Ranges", "bytes")
	h.Set("Last-Modified", art.Created.UTC().Format(http.TimeFormat))
	h.Set("Content-Length", strconv.FormatInt(art.Size, 10))
	var rc io.ReadCloser = io.NopCloser(strings.NewReader(""))
	if art.Size > 0 {
		var err error
		if rc, err = open(r.Context(), art, 0, art.Size); err != nil {
			dropContentHeaders(h)
			a.fail(w, r, err)
			return
		}
	}
	defer rc.Close()
	hw := &heldHeader{w: w}
	hw.WriteHeader(http.StatusOK)
	_, err := io.Copy(hw, rc)
	a.finishPull(hw, r, art, err)
}

// finishPull ends a pull whose status went through hw: it sends the status
// still held when the body is empty, answers with an error when the read
// failed before the first byte, and otherwise can only log the failure.
func (a *API) finishPull(hw *heldHeader, r *http.Request, art fsm.Artifact, err error) {
	switch {
	case err == nil || r.Context().Err() != nil:
		hw.flush()
	case !hw.sent:
		dropContentHeaders(hw.w.Header())
		a.fail(hw.w, r, err)
	default:
		// Headers are gone already; the client sees a short body, which
		// its Content-Length check reports.
		a.log.Warn("pull failed mid-stream", "name", art.Name, "error", err)
	}
}

// dropContentHeaders removes the headers that describe an artifact's body,
// before an error answer takes its place.
func dropContentHeaders(h http.Header) {
	for _, k := range []string{"Content-Length", "Content-Range", "Accept-Ranges", "Last-Modified",
		"ETag", "Content-Disposition", "X-Pier-Version"} {
		h.Del(k)
	}
}

// heldHeader holds back the status until the first byte of the body. A big
// object's first stripe is read and verified before anything is written,
// so a read that fails there still gets a clean, retryable error instead
// of a success status followed by a body that ends before it starts.
type heldHeader struct {
	w    http.ResponseWriter
	code int // held status; 0 when none
	sent bool
}

func (h *heldHeader) Header() http.Header { return h.w.Header() }

func (h *heldHeader) WriteHeader(code int) {
	if h.sent || h.code != 0 {
		return
	}
	h.code = code
}

func (h *heldHeader) Write(p []byte) (int, error) {
	h.flush()
	return h.w.Write(p)
}

// ReadFrom hands a section of a file (chunk.Section's form) to
// the response's own ReadFrom, which is sendfile on a plain-HTTP
// connection, once the status is sent. Any other source is copied through
// Write, which holds the status until a first byte was read: a read that
// fails at once still gets its error.
func (h *heldHeader) ReadFrom(src io.Reader) (int64, error) {
	if lr, ok := src.(*io.LimitedReader); ok {
		if _, ok := lr.R.(*os.File); ok {
			h.flush()
			return readFrom(h.w, src)
		}
	}
	return io.Copy(struct{ io.Writer }{h}, src)
}

// flush sends the held status, if any, once.
func (h *heldHeader) flush() {
	if h.sent {
		return
	}
	h.sent = true
	if h.code != 0 {
		h.w.WriteHeader(h.code)
	}
}

// lazyContent is the io.ReadSeeker http.ServeContent wants, over content
// that may live on another node.
type lazyContent struct {
	ctx  context.Context
	open opener
	art  fsm.Artifact
	off  int64
	rc   io.ReadCloser
	err  error
}

func (c *lazyContent) Seek(offset int64, whence int) (int64, error) {
	var next int64
	switch whence {
	case io.SeekStart:
		next = offset
	case io.SeekCurrent:
		next = c.off + offset
	case io.SeekEnd:
		next = c.art.Size + offset
	}
	if next < 0 {
		return 0, errors.New("seek before start")
	}
	if next != c.off {
		c.Close()
		c.off = next
	}
	return next, nil
}

func (c *lazyContent) Read(p []byte) (int, error) {
	if c.off >= c.art.Size {
		return 0, io.EOF
	}
	if c.rc == nil {
		rc, err := c.open(c.ctx, c.art, c.off, c.art.Size-c.off)
		if err != nil {
			c.err = err
			return 0, err
		}
		c.rc = rc
	}
	n, err := c.rc.Read(p)
	c.off += int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

func (c *lazyContent) Close() {
	if c.rc != nil {
		c.rc.Close()
		c.rc = nil
	}
}

// info serves GET /api/v1/artifacts/{name...}: current metadata, tags
// included, on every node.
func (a *API) info(w http.ResponseWriter, r *http.Request, name string) {
	art, err := a.reg.StatFresh(r.Context(), name)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var hist []fsm.TagEvent
	if v := r.URL.Query().Get("history"); v == "true" || v == "1" {
		hist = a.reg.History(name)
	}
	w.Header().Set("ETag", etag(art.Digest))
	writeJSON(w, http.StatusOK, a.view(art, hist))
}

// remove serves DELETE of an artifact: the name stays bound to its digest.
func (a *API) remove(w http.ResponseWriter, r *http.Request, name string) {
	if err := fsm.ValidateNameShape(name); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.reg.Delete(writeContext(r), name, actor(r)); err != nil {
		a.fail(w, r, fmt.Errorf("delete %s: %w", name, fsm.ExplainMissing(name, err)))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
