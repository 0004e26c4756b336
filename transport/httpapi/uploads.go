package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
	"github.com/pier-registry/pier/transport/httpapi/uploads"
)

// Resumable uploads, in the shape of the OCI distribution spec's chunked
// blob uploads: POST opens one, PATCH appends at the offset the client
// gives (it must equal what is stored), HEAD tells what is stored, PUT
// with the digest completes it as a push through the node's normal path
// (Registry.Upload, with the stored bytes as the body), DELETE cancels.
// An upload lives on the node that took its POST (Options.Uploads, on its
// disk); the other nodes answer 404 naming that node.

const pathUploads = "/api/v1/uploads/"

// Upload-Offset is the exact number of bytes stored: Range's "0-<last>"
// cannot say 0 (the spec's registries answer "0-0" for 0 bytes and 1).
const headerUploadOffset = "Upload-Offset"

var (
	// errUploadsOff: the node was started without an upload store (501).
	errUploadsOff = errors.New("resumable uploads are not enabled on this node")
	// errBadContentRange: a PATCH without a usable Content-Range (400).
	errBadContentRange = errors.New("bad Content-Range")
)

// routeUploads mounts the resumable-upload endpoints.
func (a *API) routeUploads() {
	a.mux.HandleFunc("POST /api/v1/uploads", a.uploadCreate)
	a.mux.HandleFunc("PATCH "+pathUploads+"{id}", a.uploadAppend)
	a.mux.HandleFunc("HEAD "+pathUploads+"{id}", a.uploadStat)
	a.mux.HandleFunc("PUT "+pathUploads+"{id}", a.uploadComplete)
	a.mux.HandleFunc("DELETE "+pathUploads+"{id}", a.uploadCancel)
}

// uploadStore is the node's upload store, or answers 501 without one.
func (a *API) uploadStore(w http.ResponseWriter, r *http.Request) (*uploads.Store, bool) {
	if a.opts.Uploads == nil {
		a.fail(w, r, errUploadsOff)
		return nil, false
	}
	return a.opts.Uploads, true
}

// uploadNeed is what a request on an existing upload needs: push on the
// upload's name. An unknown id needs push on something; the handler then
// answers 404, so a stranger learns no more than a pusher.
func (a *API) uploadNeed(r *http.Request) need {
	if st := a.opts.Uploads; st != nil {
		if info, err := st.Stat(strings.TrimPrefix(r.URL.Path, pathUploads)); err == nil {
			return need{action: fsm.ActionPush, name: info.Name}
		}
	}
	return need{action: fsm.ActionPush, later: true}
}

// uploadHeaders tell the client where the upload is and what it holds.
func uploadHeaders(w http.ResponseWriter, info uploads.Info) {
	h := w.Header()
	h.Set("Location", pathUploads+info.ID)
	h.Set("Range", fmt.Sprintf("0-%d", max(info.Size-1, 0)))
	h.Set(headerUploadOffset, strconv.FormatInt(info.Size, 10))
	h.Set("Docker-Upload-UUID", info.ID)
}

// uploadView is the JSON of an upload.
type uploadView struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Location string    `json:"location"`
	Offset   int64     `json:"offset"`
	Expires  time.Time `json:"expires"`
}

func (a *API) uploadCreate(w http.ResponseWriter, r *http.Request) {
	st, ok := a.uploadStore(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	if len(q["name"]) != 1 {
		a.fail(w, r, fmt.Errorf("%w: give the artifact's name once: POST %s?name=NAME", errBadRequest, strings.TrimSuffix(pathUploads, "/")))
		return
	}
	name := q.Get("name")
	if err := fsm.ValidateName(name); err != nil {
		a.fail(w, r, err)
		return
	}
	info, err := st.Create(name)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.Debug("upload opened", "id", info.ID, "name", name, "actor", actor(r))
	uploadHeaders(w, info)
	writeJSON(w, http.StatusAccepted, uploadView{ID: info.ID, Name: info.Name, Location: pathUploads + info.ID, Expires: info.Expires})
}

// uploadAppend handles PATCH: Content-Range "bytes a-b/*" (or the spec's
// bare "a-b") appends b-a+1 bytes at a.
func (a *API) uploadAppend(w http.ResponseWriter, r *http.Request) {
	st, ok := a.uploadStore(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	release, ok := a.admitPush(w, r, 0)
	if !ok {
		return
	}
	defer release()
	start, n, err := parseContentRange(r.Header.Values("Content-Range"))
	if err == nil && r.ContentLength >= 0 && r.ContentLength != n {
		err = fmt.Errorf("%w: Content-Length %d but Content-Range covers %d bytes", errBadContentRange, r.ContentLength, n)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	body := a.watchBody(w, r)
	info, err := st.Append(writeContext(r), id, start, body, n)
	if err != nil {
		if info.ID != "" {
			uploadHeaders(w, info)
		}
		a.fail(w, r, a.whereUpload(id, body.cause(err)))
		return
	}
	uploadHeaders(w, info)
	w.WriteHeader(http.StatusAccepted)
}

// parseContentRange reads a PATCH's one Content-Range: the first byte and
// the byte count.
func parseContentRange(vs []string) (start, n int64, err error) {
	if len(vs) != 1 {
		return 0, 0, fmt.Errorf("%w: a PATCH needs one Content-Range: bytes FIRST-LAST/*, got %d", errBadContentRange, len(vs))
	}
	v := strings.TrimSpace(vs[0])
	bad := fmt.Errorf("%w: %.64q is not bytes FIRST-LAST/* (or FIRST-LAST)", errBadContentRange, v)
	v = strings.TrimPrefix(v, "bytes ")
	rng, total, hasTotal := strings.Cut(v, "/")
	first, last, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, bad
	}
	a, err1 := strconv.ParseInt(first, 10, 64)
	b, err2 := strconv.ParseInt(last, 10, 64)
	if err1 != nil || err2 != nil || a < 0 || b < a || first[0] == '+' || last[0] == '+' {
		return 0, 0, bad
	}
	if hasTotal && total != "*" {
		t, err := strconv.ParseInt(total, 10, 64)
		if err != nil || t <= b {
			return 0, 0, bad
		}
	}
	return a, b - a + 1, nil
}

func (a *API) uploadStat(w http.ResponseWriter, r *http.Request) {
	st, ok := a.uploadStore(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	info, err := st.Stat(id)
	if err != nil {
		a.fail(w, r, a.whereUpload(id, err))
		return
	}
	uploadHeaders(w, info)
	w.Header().Set("Expires", info.Expires.UTC().Format(http.TimeFormat))
	w.WriteHeader(http.StatusNoContent)
}

// uploadComplete handles PUT ?digest=sha256:<hex>: the upload becomes a
// push of its bytes, with the metadata headers of PUT /artifacts.
func (a *API) uploadComplete(w http.ResponseWriter, r *http.Request) {
	st, ok := a.uploadStore(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	info, err := st.Stat(id)
	if err != nil {
		a.fail(w, r, a.whereUpload(id, err))
		return
	}
	if r.ContentLength != 0 {
		// Chunked bodies have length -1: refused as well, since the
		// bytes belong in a PATCH whose offset is checked.
		a.fail(w, r, fmt.Errorf("%w: a completing PUT carries no body; send the bytes with PATCH", errBadRequest))
		return
	}
	release, ok := a.admitPush(w, r, 0)
	if !ok {
		return
	}
	defer release()
	m, err := pushMeta(r, info.Name)
	if err == nil {
		err = a.completeDigest(r, &m)
	}
	if err == nil {
		err = a.mayPush(r, m)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var art fsm.Artifact
	var created bool
	err = st.Complete(id, m.ExpectDigest, func(body io.Reader, size int64) error {
		var err error
		art, created, err = a.reg.Upload(writeContext(r), m, body, nil)
		return err
	})
	if err != nil {
		a.fail(w, r, a.whereUpload(id, err))
		return
	}
	a.log.Debug("upload completed", "id", id, "name", art.Name, "digest", art.Digest, "created", created)
	a.created(w, art, created)
}

// completeDigest sets m's expected digest from the query's digest, which
// must be given once and agree with an X-Checksum-Sha256 if there is one.
func (a *API) completeDigest(r *http.Request, m *cluster.PushMeta) error {
	ds := r.URL.Query()["digest"]
	if len(ds) != 1 {
		return fmt.Errorf("%w: completing an upload needs ?digest=sha256:<hex> once", errBadRequest)
	}
	header := m.ExpectDigest
	m.ExpectDigest = ""
	if err := setExpect(m, ds[0]); err != nil {
		return err
	}
	if header != "" && header != m.ExpectDigest {
		return fmt.Errorf("%w: ?digest=%s and X-Checksum-Sha256 %s disagree", errBadRequest, m.ExpectDigest, header)
	}
	return nil
}

func (a *API) uploadCancel(w http.ResponseWriter, r *http.Request) {
	st, ok := a.uploadStore(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if err := st.Delete(id); err != nil {
		a.fail(w, r, a.whereUpload(id, err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// whereUpload adds to a 404 for an upload opened on another node which
// node that is, and its address when this node knows it.
func (a *API) whereUpload(id string, err error) error {
	if !errors.Is(err, uploads.ErrNotFound) {
		return err
	}
	node := uploads.NodeOf(id)
	if node == "" || node == a.opts.Uploads.Node() {
		return err
	}
	where := "node " + node
	_, members := a.reg.Members()
	for _, m := range members {
		if m.ID == node && m.HTTPAddr != "" {
			where += " (" + m.HTTPAddr + ")"
		}
	}
	return fmt.Errorf("%w: upload %s was opened on %s and lives there; send its requests to that node", uploads.ErrNotFound, id, where)
}
