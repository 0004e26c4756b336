package objects

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func queued(frames ...string) chan *[]byte {
	ch := make(chan *[]byte, len(frames))
	for _, f := range frames {
		b := getFrame(len(f))
		*b = append(*b, f...)
		ch <- b
	}
	close(ch)
	return ch
}

// TestFrameStreamReadsTheFramesInOrder checks both ways of reading a
// sink's frames: Read in pieces smaller than a frame (a local shard) and
// WriteTo (an upload).
func TestFrameStreamReadsTheFramesInOrder(t *testing.T) {
	frames := []string{"first frame|", "second|", "x", "the header, last"}
	want := "first frame|second|xthe header, last"

	var got bytes.Buffer
	if _, err := io.CopyBuffer(&got, struct{ io.Reader }{&frameStream{frames: queued(frames...)}}, make([]byte, 5)); err != nil || got.String() != want {
		t.Fatalf("Read: %q, %v; want %q", got.String(), err, want)
	}
	got.Reset()
	if n, err := (&frameStream{frames: queued(frames...)}).WriteTo(&got); err != nil || got.String() != want || n != int64(len(want)) {
		t.Fatalf("WriteTo: %q (%d bytes), %v; want %q", got.String(), n, err, want)
	}
}

// writeCounter fails the test if net/http stops handing a request body to
// its WriteTo: that is what saves a copy of every shard byte.
type writeCounter struct {
	*frameStream
	writeTos int
}

func (w *writeCounter) WriteTo(dst io.Writer) (int64, error) {
	w.writeTos++
	return w.frameStream.WriteTo(dst)
}

func TestAnUploadWritesItsFramesWithWriteTo(t *testing.T) {
	var got bytes.Buffer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(&got, r.Body)
	}))
	defer srv.Close()
	body := &writeCounter{frameStream: &frameStream{frames: queued("a frame", "another", "header")}}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPut, srv.URL, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got.String() != "a frameanotherheader" {
		t.Fatalf("server got %q", got.String())
	}
	if body.writeTos != 1 {
		t.Fatalf("net/http called WriteTo %d times, want 1 (it read the body through Read instead)", body.writeTos)
	}
}
