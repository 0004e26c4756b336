// Package bundle is the format of `pier export` and `pier import`: a tar
// stream that carries artifacts, with the metadata a plain push cannot set
// (origin datacenter, original created time, tag history), from a cluster
// to another with no network link between them (a sneakernet mirror).
//
// A bundle is, in this order:
//
//	bundle.json           Info: format version, source datacenter, filter
//	artifacts/000001.json Header of the first artifact
//	artifacts/000001.bin  its bytes (exactly Header.Size of them)
//	...
//	manifest.json         Manifest: how many artifacts and bytes came before
//
// Artifact names live in the JSON headers, never in tar paths, so a bundle
// cannot make a reader write outside anything; a tar entry with any other
// path, out of order, or of the wrong size is refused. The manifest is
// last so that a truncated bundle (a copy cut short, a disk full at export)
// is told from a whole one: Reader.Next returns io.EOF only after a
// manifest that counts exactly what was read.
//
// The package checks shape and counts; the bytes' SHA-256 is checked by
// whoever consumes them (the import's write path hashes the stream and
// binds nothing unless it is Header.Digest; Verify does it for a file).
package bundle

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pier-registry/pier/fsm"
)

// Format is the bundle format version this package writes and reads.
const Format = 1

// Tar paths of a bundle.
const (
	infoPath     = "bundle.json"
	manifestPath = "manifest.json"
)

// maxJSON bounds a header entry: a header is metadata, not content.
const maxJSON = 4 << 20

// ErrCorrupt marks a bundle that is not one, or that was cut short: the
// reader stops there.
var ErrCorrupt = errors.New("corrupt bundle")

// Info opens a bundle: where and when it was made, and with what filter.
type Info struct {
	Format     int       `json:"format"`
	Datacenter string    `json:"datacenter"`
	Created    time.Time `json:"created"`
	Prefix     string    `json:"prefix,omitempty"`
	Since      time.Time `json:"since,omitzero"`
}

// Header describes one artifact of a bundle; its bytes follow it.
type Header struct {
	Name    string            `json:"name"`
	Digest  string            `json:"digest"`
	Size    int64             `json:"size"`
	Version string            `json:"version,omitempty"`
	Commit  string            `json:"commit,omitempty"`
	Created time.Time         `json:"created"`
	Labels  map[string]string `json:"labels,omitempty"`
	Tags    []string          `json:"tags,omitempty"`
	// Origin is the datacenter the artifact was pushed to: the source's
	// own datacenter for its local pushes.
	Origin  string         `json:"origin"`
	History []fsm.TagEvent `json:"history,omitempty"`
}

// Manifest closes a bundle.
type Manifest struct {
	Artifacts int   `json:"artifacts"`
	Bytes     int64 `json:"bytes"`
}

// Validate checks what a header says before anything is done with it.
func (h *Header) Validate() error {
	if err := fsm.ValidatePush(h.Name, h.Version, h.Commit, h.Labels, h.Tags); err != nil {
		return err
	}
	if err := fsm.ValidateDigest(h.Digest); err != nil {
		return err
	}
	if h.Size < 0 {
		return fmt.Errorf("%w: %s: negative size %d", fsm.ErrInvalid, h.Name, h.Size)
	}
	if h.Origin != "" {
		if err := fsm.ValidateDatacenter(h.Origin); err != nil {
			return err
		}
	}
	if h.Created.IsZero() {
		return fmt.Errorf("%w: %s: no created time", fsm.ErrInvalid, h.Name)
	}
	return nil
}

// Writer writes a bundle.
type Writer struct {
	tw *tar.Writer
	m  Manifest
	at time.Time
}

// NewWriter starts a bundle on w with its Info.
func NewWriter(w io.Writer, info Info) (*Writer, error) {
	info.Format = Format
	bw := &Writer{tw: tar.NewWriter(w), at: info.Created}
	if err := bw.json(infoPath, info); err != nil {
		return nil, err
	}
	return bw, nil
}

func (w *Writer) json(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("bundle: encode %s: %w", name, err)
	}
	if err := w.tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: w.at, Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("bundle: %s: %w", name, err)
	}
	if _, err := w.tw.Write(b); err != nil {
		return fmt.Errorf("bundle: %s: %w", name, err)
	}
	return nil
}

// Add writes an artifact's header and its h.Size bytes read from body. A
// body shorter than h.Size fails, and the bundle is left without its
// manifest: a reader sees it as truncated.
func (w *Writer) Add(h Header, body io.Reader) error {
	i := w.m.Artifacts + 1
	if err := w.json(entryPath(i, "json"), h); err != nil {
		return err
	}
	bin := entryPath(i, "bin")
	if err := w.tw.WriteHeader(&tar.Header{Name: bin, Mode: 0o644, Size: h.Size, ModTime: h.Created, Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("bundle: %s: %w", h.Name, err)
	}
	n, err := io.Copy(w.tw, io.LimitReader(body, h.Size))
	if err == nil && n < h.Size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return fmt.Errorf("bundle: bytes of %s (%d of %d): %w", h.Name, n, h.Size, err)
	}
	w.m.Artifacts = i
	w.m.Bytes += h.Size
	return nil
}

// Close writes the manifest and ends the tar stream; it does not close the
// underlying writer.
func (w *Writer) Close() (Manifest, error) {
	if err := w.json(manifestPath, w.m); err != nil {
		return w.m, err
	}
	if err := w.tw.Close(); err != nil {
		return w.m, fmt.Errorf("bundle: %w", err)
	}
	return w.m, nil
}

func entryPath(i int, ext string) string { return fmt.Sprintf("artifacts/%06d.%s", i, ext) }

// Reader reads a bundle entry by entry.
type Reader struct {
	tr   *tar.Reader
	info Info
	n    int
	seen Manifest
	done bool
}

// NewReader reads a bundle's Info from r.
func NewReader(r io.Reader) (*Reader, error) {
	br := &Reader{tr: tar.NewReader(r)}
	if err := br.json(infoPath, &br.info); err != nil {
		return nil, err
	}
	if br.info.Format != Format {
		return nil, fmt.Errorf("%w: format %d, this build reads %d", ErrCorrupt, br.info.Format, Format)
	}
	if br.info.Datacenter != "" {
		if err := fsm.ValidateDatacenter(br.info.Datacenter); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
	}
	return br, nil
}

// Info is what the bundle says of itself.
func (r *Reader) Info() Info { return r.info }

// next reads the next tar header and refuses it unless it is a regular
// file with one of the paths want.
func (r *Reader) next(want ...string) (*tar.Header, error) {
	th, err := r.tr.Next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%w: after %d artifacts, expected %s: %w", ErrCorrupt, r.n, want[0], err)
	}
	for _, w := range want {
		if th.Name == w {
			if th.Typeflag != tar.TypeReg {
				return nil, fmt.Errorf("%w: %s is not a regular file", ErrCorrupt, th.Name)
			}
			return th, nil
		}
	}
	return nil, fmt.Errorf("%w: unexpected entry %q after %d artifacts, expected %s", ErrCorrupt, th.Name, r.n, want[0])
}

func (r *Reader) json(path string, v any) error {
	th, err := r.next(path)
	if err != nil {
		return err
	}
	return r.decode(th, v)
}

func (r *Reader) decode(th *tar.Header, v any) error {
	if th.Size > maxJSON {
		return fmt.Errorf("%w: %s is %d bytes", ErrCorrupt, th.Name, th.Size)
	}
	b, err := io.ReadAll(r.tr)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, th.Name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, th.Name, err)
	}
	return nil
}

// Next returns the next artifact's header and a reader of its bytes, valid
// until the next call (what is not read is skipped). A header that does not
// validate is an error of that entry (errors.Is fsm.ErrInvalid): its bytes
// are skipped and Next may be called again. At the manifest, Next returns
// io.EOF when the manifest counts what was read, and ErrCorrupt otherwise;
// a stream that ends early is ErrCorrupt. After ErrCorrupt the bundle
// cannot be read further.
func (r *Reader) Next() (Header, io.Reader, error) {
	if r.done {
		return Header{}, nil, io.EOF
	}
	th, err := r.next(entryPath(r.n+1, "json"), manifestPath)
	if err != nil {
		return Header{}, nil, err
	}
	if th.Name == manifestPath {
		var m Manifest
		if err := r.decode(th, &m); err != nil {
			return Header{}, nil, err
		}
		if m != r.seen {
			return Header{}, nil, fmt.Errorf("%w: manifest says %d artifacts of %d bytes, the bundle holds %d of %d",
				ErrCorrupt, m.Artifacts, m.Bytes, r.seen.Artifacts, r.seen.Bytes)
		}
		r.done = true
		return Header{}, nil, io.EOF
	}
	r.n++
	var h Header
	if err := r.decode(th, &h); err != nil {
		return Header{}, nil, err
	}
	bin, err := r.next(entryPath(r.n, "bin"))
	if err != nil {
		return Header{}, nil, err
	}
	if bin.Size != h.Size {
		return Header{}, nil, fmt.Errorf("%w: %s: header says %d bytes, entry holds %d", ErrCorrupt, h.Name, h.Size, bin.Size)
	}
	r.seen.Artifacts++
	r.seen.Bytes += h.Size
	if err := h.Validate(); err != nil {
		return h, nil, fmt.Errorf("entry %d: %w", r.n, err)
	}
	return h, &exact{r: r.tr, left: h.Size}, nil
}

// exact reads an entry's bytes and turns a short entry (a truncated
// stream) into io.ErrUnexpectedEOF rather than a clean end.
type exact struct {
	r    io.Reader
	left int64
}

func (e *exact) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if errors.Is(err, io.EOF) && e.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return n, err
}

// Verify reads a whole bundle and checks each artifact's SHA-256 against
// its header and the manifest against the entries: what `pier export`
// runs over the bundle it writes, so a bundle that leaves is known whole.
// each, when set, is called after each verified artifact.
func Verify(r io.Reader, each func(Header)) (Info, Manifest, error) {
	br, err := NewReader(r)
	if err != nil {
		return Info{}, Manifest{}, err
	}
	for {
		h, body, err := br.Next()
		if errors.Is(err, io.EOF) {
			return br.info, br.seen, nil
		}
		if err != nil {
			return br.info, br.seen, err
		}
		sum := sha256.New()
		if _, err := io.Copy(sum, body); err != nil {
			return br.info, br.seen, fmt.Errorf("%s: %w", h.Name, err)
		}
		if got := "sha256:" + hex.EncodeToString(sum.Sum(nil)); got != h.Digest {
			return br.info, br.seen, fmt.Errorf("%w: %s: bytes hash to %s, header says %s", ErrCorrupt, h.Name, got, h.Digest)
		}
		if each != nil {
			each(h)
		}
	}
}
