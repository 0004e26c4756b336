package httpapi

import (
	"fmt"
	"io"
	"mime"
	"mime/multipart"

	"github.com/pier-registry/pier/cluster"
)

// maxField bounds a non-file multipart field; metadata is small. All the
// fields of a form together get MultipartSlack.
const maxField = 64 << 10

// form reads the parts of POST /upload in the order they come: the fields
// before the file part, then (once the node has stored the file) the ones
// after it. It holds the metadata read so far.
type form struct {
	mr         *multipart.Reader
	meta       cluster.PushMeta
	fileName   string // the file part's filename, the default name
	seen       map[string]bool
	fieldBytes int
}

// untilFile reads the fields before the file part and returns that part,
// or nil when the form has none.
func (f *form) untilFile() (*multipart.Part, error) {
	for {
		part, err := f.next()
		if part == nil || err != nil {
			return nil, err
		}
		if part.FormName() == "file" {
			return part, nil
		}
		if err := f.field(part); err != nil {
			return nil, err
		}
	}
}

// rest reads the fields after the file part; it is the push's
// cluster.MoreMeta, so the node calls it once the file is stored. It sets
// all of *m from the form, the fields before the file included.
func (f *form) rest(m *cluster.PushMeta) error {
	for {
		part, err := f.next()
		if err != nil {
			return err
		}
		if part == nil {
			break
		}
		if part.FormName() == "file" {
			return fmt.Errorf("%w: more than one file field", errBadRequest)
		}
		if err := f.field(part); err != nil {
			return err
		}
	}
	*m = f.withName()
	return nil
}

// next is the next part, or nil at the end of the form.
func (f *form) next() (*multipart.Part, error) {
	part, err := f.mr.NextPart()
	if err == io.EOF {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read multipart body: %w", errBadRequest, err)
	}
	return part, nil
}

// withName is the metadata read so far, named after the file unless a
// name field said otherwise.
func (f *form) withName() cluster.PushMeta {
	m := f.meta
	if m.Name == "" {
		m.Name = f.fileName
	}
	return m
}

// field reads one non-file field into the metadata.
func (f *form) field(part *multipart.Part) error {
	field := part.FormName()
	b, err := io.ReadAll(io.LimitReader(part, maxField+1))
	if err != nil {
		return fmt.Errorf("%w: read field %q: %w", errBadRequest, field, err)
	}
	if len(b) > maxField {
		return fmt.Errorf("%w: field %q longer than %d bytes", errBadRequest, field, maxField)
	}
	if f.fieldBytes += len(b); f.fieldBytes > MultipartSlack {
		return fmt.Errorf("%w: the form's fields are over %d bytes in all", cluster.ErrTooLarge, MultipartSlack)
	}
	switch field {
	case "name", "version", "commit", "sha256":
		if f.seen[field] {
			return fmt.Errorf("%w: field %q given twice", errBadRequest, field)
		}
		f.seen[field] = true
	}
	v := string(b)
	m := &f.meta
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
		return addLabel(m, v)
	case "sha256":
		return setExpect(m, v)
	default:
		return fmt.Errorf("%w: unknown field %q (want file, name, version, commit, label, tag, sha256)", errBadRequest, field)
	}
	return nil
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
