package bundle

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// sample writes a bundle of two artifacts.
func sample(t *testing.T) ([]byte, map[string][]byte) {
	t.Helper()
	bodies := map[string][]byte{"a/one.bin": []byte("first artifact"), "a/two.bin": bytes.Repeat([]byte("2"), 5000)}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Info{Datacenter: "dc1", Created: t0, Prefix: "a/"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a/one.bin", "a/two.bin"} {
		b := bodies[name]
		h := Header{Name: name, Digest: digest(b), Size: int64(len(b)), Version: "1.0", Created: t0, Origin: "dc1",
			Labels: map[string]string{"team": "core"}, Tags: []string{"prod"}}
		if err := w.Add(h, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	if m, err := w.Close(); err != nil || m.Artifacts != 2 {
		t.Fatalf("close: %+v %v", m, err)
	}
	return buf.Bytes(), bodies
}

func TestRoundTrip(t *testing.T) {
	b, bodies := sample(t)
	got := map[string]bool{}
	info, m, err := Verify(bytes.NewReader(b), func(h Header) { got[h.Name] = h.Labels["team"] == "core" && h.Created.Equal(t0) })
	if err != nil || info.Datacenter != "dc1" || m.Artifacts != 2 || m.Bytes != int64(len(bodies["a/one.bin"])+5000) {
		t.Fatalf("verify: %+v %+v %v", info, m, err)
	}
	if !got["a/one.bin"] || !got["a/two.bin"] {
		t.Fatalf("headers %v", got)
	}
}

// A bundle cut anywhere before its manifest's end is corrupt, never a
// clean end.
func TestTruncatedIsCorrupt(t *testing.T) {
	b, _ := sample(t)
	for _, cut := range []int{0, 100, 600, 1600, 3000, len(b) - 1600, len(b) - 2000} {
		_, _, err := Verify(bytes.NewReader(b[:cut]), nil)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("cut at %d of %d: %v", cut, len(b), err)
		}
	}
}

func TestWrongDigestIsCorrupt(t *testing.T) {
	b, _ := sample(t)
	i := bytes.Index(b, []byte("first artifact"))
	b[i] = 'F'
	_, _, err := Verify(bytes.NewReader(b), nil)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "a/one.bin") {
		t.Fatalf("flipped byte: %v", err)
	}
}

// Entries with other paths (a "../" path, a link) are refused.
func TestForeignEntryRefused(t *testing.T) {
	for _, hdr := range []*tar.Header{
		{Name: "../etc/passwd", Size: 1, Typeflag: tar.TypeReg},
		{Name: "artifacts/000001.json", Linkname: "/etc/passwd", Typeflag: tar.TypeSymlink},
	} {
		var buf bytes.Buffer
		w, _ := NewWriter(&buf, Info{Datacenter: "dc1", Created: t0})
		if err := w.tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Size > 0 {
			w.tw.Write([]byte("x"))
		}
		w.tw.Close()
		r, err := NewReader(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.Next(); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%q: %v", hdr.Name, err)
		}
	}
}

// A header with a bad name is that entry's error; the reader goes on.
func TestBadHeaderSkipped(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, Info{Datacenter: "dc1", Created: t0})
	for _, name := range []string{"../escape.bin", "ok.bin"} {
		if err := w.Add(Header{Name: name, Digest: digest([]byte("x")), Size: 1, Created: t0}, strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	r, err := NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if h, _, err := r.Next(); err == nil || errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad name %q: %v", h.Name, err)
	}
	if h, body, err := r.Next(); err != nil || h.Name != "ok.bin" {
		t.Fatalf("next: %+v %v", h, err)
	} else if b, _ := io.ReadAll(body); string(b) != "x" {
		t.Fatalf("body %q", b)
	}
	if _, _, err := r.Next(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
}
