package clustertest

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/pier-registry/pier/transport/server"
)

// A deployment wave through one node: concurrent pulls of an object the
// node never served decode it once between them, a later pull is served
// from the node's disk without reading a shard from a peer, and ranges
// come from the cached copy too.
func TestPullCacheDecodesOnceForAWave(t *testing.T) {
	// Not held in memory: the entry's file is read, so its rot shows.
	c := New(t, 3, Options{Tune: func(_ int, cfg *server.Config) {
		cfg.Node.PullCacheSize, cfg.Node.PullCachePinMemory = 64<<20, -1
	}})
	body := bigBytes(21, 6<<20+12345)
	put(t, c.Nodes[0].URL, "wave.bin", body)
	n := c.Nodes[2].Srv.Node
	url := c.Nodes[2].URL + "/artifacts/wave.bin"
	before := n.Stats()

	const clients = 8
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := Do(t, "GET", url, nil, nil)
			if r.Status != http.StatusOK || !bytes.Equal(r.Body, body) {
				errs <- fmt.Errorf("wave pull: %d, %d bytes, digest %s", r.Status, len(r.Body), Digest(r.Body))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	wave := n.Stats()
	// One decode reads at most the object's bytes from peers (less the
	// node's own shard); eight would read about eight times that.
	if read := wave.PeerReadBytes - before.PeerReadBytes; read > int64(len(body))*3/2 {
		t.Fatalf("%d clients made the node read %d bytes from peers for a %d-byte object: more than one decode", clients, read, len(body))
	}
	Eventually(t, Wait(), func() error {
		if st := n.Stats(); st.PullCacheFills != 1 || st.PullCacheBytes != int64(len(body)) {
			return fmt.Errorf("pull cache: %d fills, %d bytes; want 1 fill of %d bytes", st.PullCacheFills, st.PullCacheBytes, len(body))
		}
		return nil
	})

	hot := n.Stats()
	if r := Do(t, "GET", url, nil, nil); r.Status != http.StatusOK || !bytes.Equal(r.Body, body) {
		t.Fatalf("hot pull: %d, %d bytes", r.Status, len(r.Body))
	}
	r := Do(t, "GET", url, nil, http.Header{"Range": {"bytes=5000000-5999999"}})
	if r.Status != http.StatusPartialContent || !bytes.Equal(r.Body, body[5000000:6000000]) {
		t.Fatalf("hot range pull: %d, %d bytes", r.Status, len(r.Body))
	}
	after := n.Stats()
	if after.PeerReadBytes != hot.PeerReadBytes {
		t.Fatalf("hot pulls read %d bytes from peers", after.PeerReadBytes-hot.PeerReadBytes)
	}
	// Cache-Control: no-cache reads the shards.
	if r := Do(t, "GET", url, nil, http.Header{"Cache-Control": {"no-cache"}}); r.Status != http.StatusOK || !bytes.Equal(r.Body, body) {
		t.Fatalf("no-cache pull: %d, %d bytes", r.Status, len(r.Body))
	}
	if st := n.Stats(); st.PeerReadBytes == after.PeerReadBytes || st.PullCacheHits != after.PullCacheHits {
		t.Fatalf("a no-cache pull was served from the pull cache (%d hits, %d bytes from peers)",
			st.PullCacheHits-after.PullCacheHits, st.PeerReadBytes-after.PeerReadBytes)
	}
	if after.PullCacheHits < hot.PullCacheHits+2 {
		t.Fatalf("pull cache hits %d -> %d, want 2 more", hot.PullCacheHits, after.PullCacheHits)
	}

	// A cache file that rots on disk is dropped, and the pull goes on
	// from the shards with the right bytes.
	files, err := filepath.Glob(filepath.Join(c.Nodes[2].cfg.Node.DataDir, "pullcache", "[0-9a-f]*"))
	if err != nil || len(files) != 1 {
		t.Fatalf("pull cache files: %v %v", files, err)
	}
	rot(t, files[0], 3<<20+5)
	if r := Do(t, "GET", url, nil, nil); r.Status != http.StatusOK || !bytes.Equal(r.Body, body) {
		t.Fatalf("pull over a rotted cache file: %d, %d bytes, digest %s", r.Status, len(r.Body), Digest(r.Body))
	}
	if st := n.Stats(); st.PullCacheCorrupt != 1 {
		t.Fatalf("%d corrupt pull cache entries counted, want 1", st.PullCacheCorrupt)
	}
	// The next pull fills the cache again.
	if r := Do(t, "GET", url, nil, nil); r.Status != http.StatusOK || !bytes.Equal(r.Body, body) {
		t.Fatalf("pull after the rot: %d, %d bytes", r.Status, len(r.Body))
	}
	Eventually(t, Wait(), func() error {
		if st := n.Stats(); st.PullCacheFills != 2 {
			return fmt.Errorf("%d pull cache fills, want 2", st.PullCacheFills)
		}
		return nil
	})
	after = n.Stats()

	// A deleted name is not served from the cache, and a name bound to
	// the same bytes is.
	put(t, c.Nodes[0].URL, "wave-copy.bin", body)
	if r := Do(t, "DELETE", c.Nodes[0].URL+"/artifacts/wave.bin", nil, nil); r.Status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	// Pulls may answer from a node's state a moment old (cluster.Stat).
	Eventually(t, Wait(), func() error {
		if r := Do(t, "GET", url, nil, nil); r.Status != http.StatusNotFound && r.Status != http.StatusGone {
			return fmt.Errorf("pull of a deleted name: %d", r.Status)
		}
		return nil
	})
	if r := Do(t, "GET", c.Nodes[2].URL+"/artifacts/wave-copy.bin", nil, nil); r.Status != http.StatusOK || !bytes.Equal(r.Body, body) {
		t.Fatalf("pull of the same bytes under another name: %d, %d bytes", r.Status, len(r.Body))
	}
	if st := n.Stats(); st.PeerReadBytes != after.PeerReadBytes {
		t.Fatalf("the same bytes under another name were decoded again (%d bytes from peers)", st.PeerReadBytes-after.PeerReadBytes)
	}
}

// rot flips one byte of the file at path.
func rot(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}
