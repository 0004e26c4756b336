package oci

import (
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
)

// storeBlob pushes body as repo's blob d through the node's push path. The
// node checks a sha256 digest itself (ExpectDigest); a sha512 is checked
// here, after the body is stored and before the commit (cluster.MoreMeta),
// so a mismatch binds nothing. size, when not -1, is the length the body
// must have.
func (g *Registry) storeBlob(r *http.Request, repo string, d digest, body io.Reader, size int64) error {
	m := cluster.PushMeta{Name: blobName(repo, d), Actor: g.gate.Actor(r)}
	var h hash.Hash
	if d.alg == "sha256" {
		m.ExpectDigest = d.String()
	} else {
		h = d.hasher()
		body = io.TeeReader(body, h)
	}
	cr := &countReader{r: body}
	check := func(*cluster.PushMeta) error {
		if size >= 0 && cr.n != size {
			return errf(http.StatusBadRequest, codeSizeInvalid, "blob is %d bytes, %d were announced", cr.n, size)
		}
		if h != nil && hex.EncodeToString(h.Sum(nil)) != d.hex {
			return errf(http.StatusBadRequest, codeDigestInvalid, "blob does not hash to %s", d)
		}
		return nil
	}
	if _, _, err := g.node.Upload(writeContext(r), m, cr, check); err != nil {
		return fmt.Errorf("push blob %s to %s: %w", d, repo, err)
	}
	return nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (g *Registry) getBlob(w http.ResponseWriter, r *http.Request, rt route) {
	d, err := parseDigest(rt.arg)
	if err != nil {
		g.fail(w, r, err, codeBlobUnknown)
		return
	}
	a, err := g.node.Stat(r.Context(), blobName(rt.repo, d))
	if err != nil {
		g.fail(w, r, fmt.Errorf("blob %s in %s: %w", d, rt.repo, err), codeBlobUnknown)
		return
	}
	g.serveContent(w, r, a, d, "application/octet-stream")
}

// serveContent answers a GET or HEAD of an artifact's bytes, one Range
// honoured.
func (g *Registry) serveContent(w http.ResponseWriter, r *http.Request, a fsm.Artifact, d digest, ctype string) {
	h := w.Header()
	h.Set("Docker-Content-Digest", d.String())
	h.Set("ETag", `"`+d.String()+`"`)
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", ctype)
	off, n, partial, ok := parseRange(r.Header.Get("Range"), a.Size)
	if !ok {
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", a.Size))
		writeError(w, r, http.StatusRequestedRangeNotSatisfiable, codeSizeInvalid, "range not satisfiable")
		return
	}
	status := http.StatusOK
	if partial {
		status = http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, a.Size))
	}
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	if r.Method == http.MethodHead || n == 0 {
		w.WriteHeader(status)
		return
	}
	rc, err := g.node.Open(r.Context(), a, off, n)
	if err != nil {
		h.Del("Content-Length")
		h.Del("Content-Range")
		g.fail(w, r, fmt.Errorf("open %s: %w", a.Name, err), codeBlobUnknown)
		return
	}
	defer rc.Close()
	w.WriteHeader(status)
	if _, err := io.Copy(w, rc); err != nil {
		// The status is out: all that is left is to cut the body short,
		// which the client sees as a length mismatch.
		g.log.Warn("oci read ended early", "name", a.Name, "error", err)
	}
}

// parseRange reads one "bytes=a-b", "bytes=a-" or "bytes=-n" range. ok is
// false for a range that cannot be served; partial is false without one
// (or with one that is not a byte range, which HTTP says to ignore).
func parseRange(h string, size int64) (off, n int64, partial, ok bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if h == "" || !found || strings.Contains(spec, ",") {
		return 0, size, false, true
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, false
	}
	if first == "" {
		k, err := strconv.ParseInt(last, 10, 64)
		if err != nil || k <= 0 {
			return 0, 0, false, false
		}
		k = min(k, size)
		return size - k, k, true, size > 0
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil || start < 0 || start >= size {
		return 0, 0, false, false
	}
	end := size - 1
	if last != "" {
		if end, err = strconv.ParseInt(last, 10, 64); err != nil || end < start {
			return 0, 0, false, false
		}
		end = min(end, size-1)
	}
	return start, end - start + 1, true, true
}

func (g *Registry) deleteBlob(w http.ResponseWriter, r *http.Request, rt route) {
	d, err := parseDigest(rt.arg)
	if err != nil {
		g.fail(w, r, err, codeBlobUnknown)
		return
	}
	name := blobName(rt.repo, d)
	if _, err := g.node.Stat(r.Context(), name); err != nil {
		g.fail(w, r, fmt.Errorf("blob %s in %s: %w", d, rt.repo, err), codeBlobUnknown)
		return
	}
	if err := g.node.Delete(writeContext(r), name, g.gate.Actor(r)); err != nil {
		g.fail(w, r, fmt.Errorf("delete blob %s in %s: %w", d, rt.repo, err), codeBlobUnknown)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func blobLocation(repo string, d digest) string { return Prefix + repo + "/blobs/" + d.String() }

func created(w http.ResponseWriter, repo string, d digest) {
	w.Header().Set("Location", blobLocation(repo, d))
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// startUpload is POST /v2/<repo>/blobs/uploads/: a cross-repository mount
// (?mount=&from=), a monolithic upload (?digest=, the body is the blob), or
// a new session for chunks.
func (g *Registry) startUpload(w http.ResponseWriter, r *http.Request, rt route) {
	q := r.URL.Query()
	if m := q.Get("mount"); m != "" {
		d, err := parseDigest(m)
		if err != nil {
			g.fail(w, r, err, codeBlobUnknown)
			return
		}
		if ok := g.mount(w, r, rt.repo, d, q.Get("from")); ok {
			return
		}
		// Not mountable: the spec says to open a session instead.
	} else if ds := q.Get("digest"); ds != "" {
		d, err := parseDigest(ds)
		if err != nil {
			g.fail(w, r, err, codeBlobUnknown)
			return
		}
		if err := g.storeBlob(r, rt.repo, d, r.Body, r.ContentLength); err != nil {
			g.fail(w, r, err, codeBlobUnknown)
			return
		}
		created(w, rt.repo, d)
		return
	}
	id, err := g.uploads.create(rt.repo)
	if err != nil {
		g.fail(w, r, err, codeBlobUploadUnknown)
		return
	}
	g.accepted(w, rt.repo, id, 0, http.StatusAccepted)
}

// mount binds repo's blob d to the bytes from's blob d holds. It answers
// and returns true when it did (or when it failed for a reason a new
// session would not cure); false leaves the answer to the caller.
func (g *Registry) mount(w http.ResponseWriter, r *http.Request, repo string, d digest, from string) bool {
	if from == "" {
		from = g.mountSource(r, d)
	}
	if from == "" || validRepo(from) != nil {
		return false
	}
	if _, _, err := g.authorize(r, fsm.ActionPull, from, false); err != nil {
		return false // a mount the client may not read from is a plain upload
	}
	src, err := g.node.Stat(r.Context(), blobName(from, d))
	if err != nil {
		return false
	}
	rc, err := g.node.Open(r.Context(), src, 0, src.Size)
	if err != nil {
		g.fail(w, r, fmt.Errorf("mount %s from %s: %w", d, from, err), codeBlobUnknown)
		return true
	}
	defer rc.Close()
	// The bytes are stored already: the push shares the object and
	// writes no shard (cluster's dedup), but still hashes what it reads.
	if err := g.storeBlob(r, repo, d, rc, src.Size); err != nil {
		g.fail(w, r, err, codeBlobUnknown)
		return true
	}
	created(w, repo, d)
	return true
}

// accepted answers a session's state: where to send the next chunk and
// what it holds.
func (g *Registry) accepted(w http.ResponseWriter, repo, id string, size int64, status int) {
	h := w.Header()
	h.Set("Location", Prefix+repo+"/blobs/uploads/"+id)
	h.Set("Docker-Upload-UUID", id)
	h.Set("Range", fmt.Sprintf("0-%d", max(size-1, 0)))
	h.Set("Content-Length", "0")
	w.WriteHeader(status)
}

func (g *Registry) uploadStatus(w http.ResponseWriter, r *http.Request, rt route) {
	_, size, release, err := g.uploads.open(rt.arg, rt.repo)
	if err != nil {
		g.fail(w, r, err, codeBlobUploadUnknown)
		return
	}
	release()
	g.accepted(w, rt.repo, rt.arg, size, http.StatusNoContent)
}

func (g *Registry) cancelUpload(w http.ResponseWriter, r *http.Request, rt route) {
	_, _, release, err := g.uploads.open(rt.arg, rt.repo)
	if err != nil {
		g.fail(w, r, err, codeBlobUploadUnknown)
		return
	}
	g.uploads.remove(rt.arg)
	release()
	w.WriteHeader(http.StatusNoContent)
}

// appendChunk appends r's body to a session's data file at size, after
// checking its Content-Range against it. A chunk that fails part-way is
// cut off again, so a bad request leaves the session as it was.
func (g *Registry) appendChunk(r *http.Request, f *os.File, size int64) (int64, error) {
	want := int64(-1)
	if cr := r.Header.Get("Content-Range"); cr != "" {
		first, last, ok := strings.Cut(strings.TrimPrefix(cr, "bytes "), "-")
		start, err1 := strconv.ParseInt(first, 10, 64)
		end, err2 := strconv.ParseInt(last, 10, 64)
		if !ok || err1 != nil || err2 != nil || end < start {
			return size, errf(http.StatusBadRequest, codeBlobUploadInvalid, "malformed Content-Range %q", trim(cr))
		}
		if start != size {
			return size, errf(http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid, "chunk starts at %d, the upload holds %d bytes", start, size)
		}
		want = end - start + 1
	}
	if r.ContentLength >= 0 && want >= 0 && r.ContentLength != want {
		return size, errf(http.StatusBadRequest, codeSizeInvalid, "Content-Length %d does not match Content-Range (%d bytes)", r.ContentLength, want)
	}
	if want < 0 {
		want = r.ContentLength
	}
	if g.maxChunk > 0 && want > g.maxChunk {
		return size, errf(http.StatusRequestEntityTooLarge, codeSizeInvalid, "chunk over %d bytes", g.maxChunk)
	}
	body := io.Reader(r.Body)
	if g.maxChunk > 0 {
		body = io.LimitReader(body, g.maxChunk+1)
	}
	n, err := io.Copy(f, body)
	switch {
	case err == nil && want >= 0 && n != want:
		err = errf(http.StatusBadRequest, codeSizeInvalid, "chunk is %d bytes, %d were announced", n, want)
	case err == nil && g.maxChunk > 0 && n > g.maxChunk:
		err = errf(http.StatusRequestEntityTooLarge, codeSizeInvalid, "chunk over %d bytes", g.maxChunk)
	case errors.Is(err, io.ErrUnexpectedEOF):
		err = errf(http.StatusBadRequest, codeSizeInvalid, "chunk ended before its Content-Length")
	}
	if err != nil {
		if terr := f.Truncate(size); terr != nil {
			return size, fmt.Errorf("cut a failed chunk off: %w (after %w)", terr, err)
		}
		return size, fmt.Errorf("append chunk: %w", err)
	}
	return size + n, nil
}

func (g *Registry) patchUpload(w http.ResponseWriter, r *http.Request, rt route) {
	f, size, release, err := g.uploads.open(rt.arg, rt.repo)
	if err != nil {
		g.fail(w, r, err, codeBlobUploadUnknown)
		return
	}
	defer release()
	size, err = g.appendChunk(r, f, size)
	if err != nil {
		if status, _ := classify(err, ""); status == http.StatusRequestedRangeNotSatisfiable {
			w.Header().Set("Range", fmt.Sprintf("0-%d", max(size-1, 0)))
			w.Header().Set("Location", Prefix+rt.repo+"/blobs/uploads/"+rt.arg)
		}
		g.fail(w, r, err, codeBlobUploadUnknown)
		return
	}
	g.accepted(w, rt.repo, rt.arg, size, http.StatusAccepted)
}

// finishUpload is PUT ?digest=: the last chunk (possibly empty), then the
// whole blob pushed from the session's file. On any failure the session
// stays as it was before this request, so the client may retry.
func (g *Registry) finishUpload(w http.ResponseWriter, r *http.Request, rt route) {
	d, err := parseDigest(r.URL.Query().Get("digest"))
	if err != nil {
		g.fail(w, r, err, codeBlobUploadUnknown)
		return
	}
	f, size, release, err := g.uploads.open(rt.arg, rt.repo)
	if err != nil {
		g.fail(w, r, err, codeBlobUploadUnknown)
		return
	}
	defer release()
	total, err := g.appendChunk(r, f, size)
	if err != nil {
		g.fail(w, r, err, codeBlobUploadUnknown)
		return
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		g.fail(w, r, fmt.Errorf("upload %s: %w", rt.arg, err), codeBlobUploadUnknown)
		return
	}
	if err := g.storeBlob(r, rt.repo, d, io.LimitReader(f, total), total); err != nil {
		if terr := f.Truncate(size); terr != nil {
			g.log.Warn("cut a failed last chunk off", "upload", rt.arg, "error", terr)
		}
		g.fail(w, r, err, codeBlobUploadUnknown)
		return
	}
	g.uploads.remove(rt.arg)
	created(w, rt.repo, d)
}

// mountCandidates bounds how many repositories holding a blob an
// anonymous mount looks at: each one the client may not pull is a refusal
// in the audit log.
const mountCandidates = 4

// mountSource finds a repository to mount d from when the client named
// none (the spec's anonymous mount): a repository holding the blob that
// the client may pull, or "". It looks blobs up by name, not by the
// artifact's digest, which is SHA-256 whatever the blob's algorithm.
func (g *Registry) mountSource(r *http.Request, d digest) string {
	glob := namePrefix + "*" + blobsSegment + d.alg + "/" + d.hex
	arts, _, err := g.node.List(r.Context(), fsm.Query{Prefix: namePrefix, Glob: glob, Limit: fsm.MaxLimit})
	if err != nil {
		return ""
	}
	tried := 0
	for _, a := range arts {
		repo := repoOf(a.Name)
		if repo == "" || a.Name != blobName(repo, d) {
			continue // a manifest with these bytes, or not ours
		}
		if _, _, err := g.authorize(r, fsm.ActionPull, repo, false); err == nil {
			return repo
		}
		if tried++; tried == mountCandidates {
			break
		}
	}
	return ""
}
