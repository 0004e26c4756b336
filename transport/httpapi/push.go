package httpapi

import (
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
)

// maxField bounds a non-file multipart field; metadata is small. All the
// fields of a form together get MultipartSlack.
const maxField = 64 << 10

// put handles PUT /artifacts/{name...} with a raw body.
func (a *API) put(w http.ResponseWriter, r *http.Request, name string) {
	release, ok := a.admitPush(w, r, 0)
	if !ok {
		return
	}
	defer release()
	m, err := pushMeta(r, name)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ctx := writeContext(r)
	if err := a.reg.CheckPush(ctx, m); err != nil {
		a.fail(w, r, err)
		return
	}
	body := a.watchBody(w, r)
	s, err := a.reg.StoreBody(ctx, body, m.ExpectDigest)
	if err != nil {
		a.fail(w, r, body.cause(fmt.Errorf("store %s: %w", name, err)))
		return
	}
	a.reg.Release(s, a.commit(ctx, w, r, m, s))
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
// them in the order given) are applied when the metadata is committed.
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
	ctx := writeContext(r)
	m := cluster.PushMeta{Actor: actor(r)}
	var stored *cluster.Stored
	committed := false
	defer func() {
		if stored != nil {
			a.reg.Release(*stored, committed)
		}
	}()
	abort := func(err error) { a.fail(w, r, body.cause(err)) }
	fileName := ""
	seen := map[string]bool{}
	fieldBytes := 0
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			abort(fmt.Errorf("%w: read multipart body: %w", errBadRequest, err))
			return
		}
		field := part.FormName()
		if field == "file" {
			if stored != nil {
				abort(fmt.Errorf("%w: more than one file field", errBadRequest))
				return
			}
			fileName = partFileName(part)
			check := m
			if check.Name == "" {
				check.Name = fileName
			}
			if err := a.reg.CheckPush(ctx, check); err != nil {
				abort(err)
				return
			}
			s, err := a.reg.StoreBody(ctx, part, m.ExpectDigest)
			if err != nil {
				abort(fmt.Errorf("store %s: %w", check.Name, err))
				return
			}
			stored = &s
			continue
		}
		b, err := io.ReadAll(io.LimitReader(part, maxField+1))
		if err != nil {
			abort(fmt.Errorf("%w: read field %q: %w", errBadRequest, field, err))
			return
		}
		if len(b) > maxField {
			abort(fmt.Errorf("%w: field %q longer than %d bytes", errBadRequest, field, maxField))
			return
		}
		if fieldBytes += len(b); fieldBytes > MultipartSlack {
			abort(fmt.Errorf("%w: the form's fields are over %d bytes in all", cluster.ErrTooLarge, MultipartSlack))
			return
		}
		switch field {
		case "name", "version", "commit", "sha256":
			if seen[field] {
				abort(fmt.Errorf("%w: field %q given twice", errBadRequest, field))
				return
			}
			seen[field] = true
		}
		v := string(b)
		switch field {
		case "name":
			m.Name = v
		case "version":
			m.Version = v
		case "commit":
			m.Commit = v
		case "tag":
			m.Tags = append(m.Tags, v)
		case "label":
			err = addLabel(&m, v)
		case "sha256":
			err = setExpect(&m, v)
		default:
			err = fmt.Errorf("%w: unknown field %q (want file, name, version, commit, label, tag, sha256)", errBadRequest, field)
		}
		if err != nil {
			abort(err)
			return
		}
	}
	if stored == nil {
		a.fail(w, r, fmt.Errorf("%w: no file field in the form", errBadRequest))
		return
	}
	if m.Name == "" {
		m.Name = fileName
	}
	if err := fsm.ValidatePush(m.Name, m.Version, m.Commit, m.Labels, m.Tags); err != nil {
		abort(err)
		return
	}
	committed = a.commit(ctx, w, r, m, *stored)
}

// partFileName is the filename parameter of a part as the client sent it,
// whole: the artifact name, held to the same rule as a PUT path.
// multipart.Part.FileName keeps only the last element (filepath.Base), so
// "../../etc/passwd" would become "passwd" and "team/app/1.2/y.txt"
// "y.txt".
func partFileName(p *multipart.Part) string {
	_, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
	if err != nil {
		return ""
	}
	return params["filename"]
}

// commit binds stored content to its name, answers 201 or 200, and reports
// whether it committed. The caller releases the stored content afterwards.
func (a *API) commit(ctx context.Context, w http.ResponseWriter, r *http.Request, m cluster.PushMeta, s cluster.Stored) bool {
	art, created, err := a.reg.Commit(ctx, m, s)
	if err != nil {
		a.fail(w, r, fmt.Errorf("commit %s: %w", m.Name, err))
		return false
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", artifactURL(art.Name))
	}
	w.Header().Set("ETag", etag(art.Digest))
	writeJSON(w, status, view(art, nil))
	return true
}
