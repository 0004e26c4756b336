package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
)

// put handles PUT /artifacts/{name...} with a raw body.
func (a *API) put(w http.ResponseWriter, r *http.Request, name string) {
	release, ok := a.admitPush(w, r, 0)
	if !ok {
		return
	}
	defer release()
	m, err := pushMeta(r, name)
	if err == nil {
		err = a.mayPush(r, m)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	body := a.watchBody(w, r)
	art, created, err := a.reg.Upload(writeContext(r), m, body, nil)
	if err != nil {
		a.fail(w, r, body.cause(err))
		return
	}
	a.created(w, art, created)
}

// writeContext is the context of a write (a push, a tag, a delete): the
// request's, but not ended when the connection's reader sees the client
// close its side. net/http reads on in the background once a body has
// ended (at once for a request without one) and cancels the request's
// context at EOF, so a client that half-closes after sending its whole
// request saw a push it completed fail (503: the commit's wait for the
// leader cut short) and a delete answered 499 whether or not it was
// committed. A client that goes away for good while its body comes fails
// the body's reads instead, and a stalled one is cut by the idle deadline;
// what remains once the body is in (storing, committing) is bounded by
// the node's own timeouts.
func writeContext(r *http.Request) context.Context {
	return context.WithoutCancel(r.Context())
}

func pushMeta(r *http.Request, name string) (cluster.PushMeta, error) {
	m := cluster.PushMeta{
		Name:  name,
		Tags:  r.Header.Values("X-Pier-Tag"),
		Actor: actor(r),
	}
	var err error
	if m.Version, err = single(r.Header, "X-Pier-Version"); err != nil {
		return m, err
	}
	if m.Commit, err = single(r.Header, "X-Pier-Commit"); err != nil {
		return m, err
	}
	for _, l := range r.Header.Values("X-Pier-Label") {
		if err := addLabel(&m, l); err != nil {
			return m, err
		}
	}
	sum, err := single(r.Header, "X-Checksum-Sha256")
	if err != nil {
		return m, err
	}
	if err := setExpect(&m, sum); err != nil {
		return m, err
	}
	return m, nil
}

// single returns the one value of a header that may be given once. Two
// checksums, or two versions, could be read two ways (net/http's Get takes
// the first, a proxy may keep the last), so they are refused.
func single(h http.Header, key string) (string, error) {
	vs := h.Values(key)
	if len(vs) > 1 {
		return "", fmt.Errorf("%w: header %s given %d times", errBadRequest, key, len(vs))
	}
	if len(vs) == 0 {
		return "", nil
	}
	return vs[0], nil
}

func addLabel(m *cluster.PushMeta, kv string) error {
	k, v, ok := strings.Cut(kv, "=")
	if !ok {
		return fmt.Errorf("%w: label %q is not key=value", fsm.ErrInvalid, kv)
	}
	if m.Labels == nil {
		m.Labels = map[string]string{}
	}
	if _, dup := m.Labels[k]; dup {
		return fmt.Errorf("%w: label %q given twice", fsm.ErrInvalid, k)
	}
	m.Labels[k] = v
	return nil
}

// setExpect accepts the client's checksum as bare hex or sha256:<hex>.
func setExpect(m *cluster.PushMeta, v string) error {
	if v == "" {
		return nil
	}
	v = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(v), fsm.DigestPrefix))
	m.ExpectDigest = fsm.DigestPrefix + v
	return fsm.ValidateDigest(m.ExpectDigest)
}

// upload handles POST /upload. Parts stream in order: fields before the
// file are known before any byte is stored, fields after it (curl sends
// them in the order given) are read once the file is stored and applied
// when the metadata is committed.
func (a *API) upload(w http.ResponseWriter, r *http.Request) {
	release, ok := a.admitPush(w, r, MultipartSlack)
	if !ok {
		return
	}
	defer release()
	body := a.watchBody(w, r)
	mr, err := r.MultipartReader()
	if err != nil {
		a.fail(w, r, fmt.Errorf("%w: expected a multipart/form-data body with a file field: %v", errBadRequest, err))
		return
	}
	f := &form{mr: mr, meta: cluster.PushMeta{Actor: actor(r)}, seen: map[string]bool{}}
	file, err := f.untilFile()
	if err != nil {
		a.fail(w, r, body.cause(err))
		return
	}
	if file == nil {
		a.fail(w, r, fmt.Errorf("%w: no file field in the form", errBadRequest))
		return
	}
	f.fileName = partFileName(file)
	if err := a.mayPush(r, f.withName()); err != nil {
		a.fail(w, r, err)
		return
	}
	// Fields after the file may rename the artifact or add tags: checked
	// again before the commit.
	more := func(m *cluster.PushMeta) error {
		if err := f.rest(m); err != nil {
			return err
		}
		return a.mayPush(r, *m)
	}
	art, created, err := a.reg.Upload(writeContext(r), f.withName(), file, more)
	if err != nil {
		a.fail(w, r, body.cause(err))
		return
	}
	a.created(w, art, created)
}

// created answers a committed push: 201 with the artifact's address when
// it created the binding, 200 when the same bytes were bound already.
func (a *API) created(w http.ResponseWriter, art fsm.Artifact, created bool) {
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", artifactURL(art.Name))
	}
	w.Header().Set("ETag", etag(art.Digest))
	writeJSON(w, status, a.view(art, nil))
}
