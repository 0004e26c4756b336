package objects

import "io"

// heldReader releases its hold on the node when closed, and ends the
// context its reads run under.
type heldReader struct {
	io.ReadCloser
	done func()
}

func (h heldReader) Close() error {
	err := h.ReadCloser.Close()
	h.done()
	return err
}

// heldWriterTo keeps the inner reader's WriteTo, which io.Copy uses to
// decode straight into a response or to reach sendfile(2).
type heldWriterTo struct{ heldReader }

func (h heldWriterTo) WriteTo(w io.Writer) (int64, error) {
	return h.ReadCloser.(io.WriterTo).WriteTo(w)
}

// held wraps r so that closing it runs done.
func held(r io.ReadCloser, done func()) io.ReadCloser {
	h := heldReader{ReadCloser: r, done: done}
	if _, ok := r.(io.WriterTo); ok {
		return heldWriterTo{h}
	}
	return h
}
