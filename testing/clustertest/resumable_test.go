package clustertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// The acceptance: a large upload cut at about half (the client goes
// away mid-body), the node that holds it restarted, HEAD reports what it
// stored, the rest goes up, and the artifact pulls with the right digest.
// The issue says 1 GiB; 96 MiB keeps CI's time sane and takes the same
// path (checkpoints every 32 MiB, the completion streams the part file).
func TestResumableUploadSurvivesCutAndRestart(t *testing.T) {
	const size = 96 << 20
	c := New(t, 3, Options{})
	i := (c.Leader() + 1) % 3 // a follower: the cluster keeps a leader while it restarts
	base := c.Nodes[i].URL
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{17}).Read(data)
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	t.Logf("the issue's 1 GiB upload takes this path; this test sends %d MiB through %s", size>>20, c.Nodes[i].ID)

	r := Do(t, http.MethodPost, base+"/api/v1/uploads?name=big/app.bin", nil, nil)
	if r.Status != http.StatusAccepted {
		t.Fatalf("POST: %d %s", r.Status, r.Body)
	}
	loc := r.Header.Get("Location")
	if loc == "" || r.Header.Get("Upload-Offset") != "0" {
		t.Fatalf("POST answered Location %q, Upload-Offset %q", loc, r.Header.Get("Upload-Offset"))
	}
	// Another node knows where the upload lives.
	if r := Do(t, http.MethodHead, c.Nodes[(i+1)%3].URL+loc, nil, nil); r.Status != http.StatusNotFound {
		t.Fatalf("HEAD on another node: %d", r.Status)
	}
	if r := Do(t, http.MethodPatch, c.Nodes[(i+1)%3].URL+loc, bytes.NewReader(data[:10]), http.Header{"Content-Range": {"bytes 0-9/*"}}); r.Status != http.StatusNotFound ||
		!bytes.Contains(r.Body, []byte(c.Nodes[i].ID)) {
		t.Fatalf("PATCH on another node: %d %s", r.Status, r.Body)
	}

	// The first PATCH declares the whole body and sends half, then its
	// client goes away.
	half := size / 2
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, base+loc, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Range", fmt.Sprintf("bytes 0-%d/*", size-1))
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("the cut PATCH was answered %d", resp.StatusCode)
		}
		done <- err
	}()
	start := time.Now()
	if _, err := pw.Write(data[:half]); err != nil {
		t.Fatal(err)
	}
	firstHalf := time.Since(start)
	cancel()
	pw.CloseWithError(context.Canceled)
	if err := <-done; err == nil {
		t.Fatal("the cut PATCH succeeded")
	}

	// Restart the node that holds the upload; it must still have it.
	c.Kill(i)
	c.Restart(i)
	c.WaitReady()
	r = Do(t, http.MethodHead, base+loc, nil, nil)
	if r.Status != http.StatusNoContent {
		t.Fatalf("HEAD after restart: %d", r.Status)
	}
	stored, err := strconv.ParseInt(r.Header.Get("Upload-Offset"), 10, 64)
	if err != nil || stored <= 0 || stored > int64(half) {
		t.Fatalf("after the cut and the restart the node stores %q bytes; want some of the %d sent (%v)", r.Header.Get("Upload-Offset"), half, err)
	}
	if want := fmt.Sprintf("0-%d", stored-1); r.Header.Get("Range") != want {
		t.Fatalf("HEAD Range %q, want %q", r.Header.Get("Range"), want)
	}
	t.Logf("cut after %d MiB sent (%.0f MB/s); the restarted node holds %d bytes", half>>20, float64(half)/1e6/firstHalf.Seconds(), stored)

	// A PATCH from the wrong offset is refused and changes nothing.
	r = Do(t, http.MethodPatch, base+loc, bytes.NewReader(data[:10]), http.Header{"Content-Range": {"bytes 0-9/*"}})
	if r.Status != http.StatusRequestedRangeNotSatisfiable || r.Header.Get("Upload-Offset") != strconv.FormatInt(stored, 10) {
		t.Fatalf("PATCH at 0: %d, Upload-Offset %q: %s", r.Status, r.Header.Get("Upload-Offset"), r.Body)
	}

	start = time.Now()
	r = Do(t, http.MethodPatch, base+loc, bytes.NewReader(data[stored:]), http.Header{"Content-Range": {fmt.Sprintf("bytes %d-%d/*", stored, size-1)}})
	if r.Status != http.StatusAccepted || r.Header.Get("Upload-Offset") != strconv.Itoa(size) {
		t.Fatalf("PATCH the rest: %d %s", r.Status, r.Body)
	}
	rest := time.Since(start)

	// A wrong digest binds nothing; the right one completes it.
	r = Do(t, http.MethodPut, base+loc+"?digest=sha256:"+hex.EncodeToString(make([]byte, 32)), nil, nil)
	if r.Status != http.StatusBadRequest {
		t.Fatalf("PUT with a wrong digest: %d %s", r.Status, r.Body)
	}
	if r := Do(t, http.MethodGet, base+"/api/v1/artifacts/big/app.bin", nil, nil); r.Status != http.StatusNotFound {
		t.Fatalf("a wrong digest bound the name: %d", r.Status)
	}
	start = time.Now()
	r = Do(t, http.MethodPut, base+loc+"?digest="+digest, nil, http.Header{"X-Pier-Version": {"1.0.0"}, "X-Pier-Label": {"os=linux"}})
	if r.Status != http.StatusCreated {
		t.Fatalf("PUT: %d %s", r.Status, r.Body)
	}
	complete := time.Since(start)
	t.Logf("resumed: %d MiB in %v (%.0f MB/s); completing as a push took %v (%.0f MB/s)",
		(size-stored)>>20, rest.Round(time.Millisecond), float64(int64(size)-stored)/1e6/rest.Seconds(),
		complete.Round(time.Millisecond), float64(size)/1e6/complete.Seconds())
	if r := Do(t, http.MethodHead, base+loc, nil, nil); r.Status != http.StatusNotFound {
		t.Fatalf("the completed upload is still there: %d", r.Status)
	}

	// Pulled from another node: the same bytes, with the metadata.
	other := c.Nodes[(i+2)%3].URL
	resp, err := http.Get(other + "/artifacts/big/app.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		t.Fatal(err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); resp.StatusCode != http.StatusOK || got != digest {
		t.Fatalf("pull: %d, digest %s, want %s", resp.StatusCode, got, digest)
	}
	var art struct {
		Version string            `json:"version"`
		Labels  map[string]string `json:"labels"`
	}
	Do(t, http.MethodGet, other+"/api/v1/artifacts/big/app.bin", nil, nil).JSON(t, &art)
	if art.Version != "1.0.0" || art.Labels["os"] != "linux" {
		t.Fatalf("metadata %+v", art)
	}
}
