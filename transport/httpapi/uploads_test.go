package httpapi

import (
	"testing"

	"github.com/pier-registry/pier/transport/httpapi/uploads"
)

// testUploads is an upload store in a temp dir, closed when the test ends.
func testUploads(t *testing.T) *uploads.Store {
	t.Helper()
	st, err := uploads.Open(uploads.Config{Dir: t.TempDir(), Node: "node1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}
