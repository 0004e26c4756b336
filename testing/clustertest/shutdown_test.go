package clustertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// TestNoWorkOutlivesShutdown kills every node while pulls and pushes are in
// the middle of their bodies, and checks that no goroutine of the node's
// packages is left and that nothing touched a shard store after it closed.
func TestNoWorkOutlivesShutdown(t *testing.T) {
	c := New(t, 3, Options{})
	big := make([]byte, 24<<20)
	rand.Read(big)
	if r := Do(t, "PUT", c.Nodes[0].URL+"/artifacts/big.bin", bytes.NewReader(big), nil); r.Status != http.StatusCreated {
		t.Fatalf("push: %d %s", r.Status, r.Body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), Wait())
	defer cancel()
	var clients sync.WaitGroup
	defer clients.Wait()
	started := make(chan struct{}, 12)
	// Pulls that read one buffer and then stop reading: their nodes are
	// left decoding into a full socket.
	for i := range 6 {
		url := c.Nodes[i%3].URL + "/artifacts/big.bin"
		clients.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				started <- struct{}{}
				return
			}
			defer resp.Body.Close()
			io.ReadFull(resp.Body, make([]byte, 64<<10))
			started <- struct{}{}
			<-ctx.Done()
		})
	}
	// Pushes whose body stops halfway: their nodes hold shard streams open.
	for i := range 6 {
		url := fmt.Sprintf("%s/artifacts/stalled-%d.bin", c.Nodes[i%3].URL, i)
		clients.Go(func() {
			pr, pw := io.Pipe()
			go func() {
				pw.Write(big[:8<<20])
				started <- struct{}{}
				<-ctx.Done()
				pw.CloseWithError(ctx.Err())
			}()
			req, _ := http.NewRequestWithContext(ctx, "PUT", url, pr)
			req.ContentLength = int64(len(big))
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	for range 12 {
		select {
		case <-started:
		case <-ctx.Done():
			t.Fatal("clients did not start in time")
		}
	}

	var stores []interface{ LateCalls() int64 }
	for i, n := range c.Nodes {
		stores = append(stores, n.Srv.Node.Shards())
		c.Kill(i)
	}
	cancel()
	clients.Wait()

	Eventually(t, Wait(), func() error {
		if g := ownGoroutines(); len(g) > 0 {
			return fmt.Errorf("%d goroutines of the node outlived it, the first:\n%s", len(g), g[0])
		}
		return nil
	})
	for i, s := range stores {
		if late := s.LateCalls(); late > 0 {
			t.Errorf("node%d: %d calls on its shard store after it closed", i+1, late)
		}
	}
}

// ownGoroutines returns the stacks of goroutines running code of the
// node's packages.
func ownGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "pier-registry/pier/cluster.") || strings.Contains(g, "pier-registry/pier/chunk") {
			out = append(out, g)
		}
	}
	return out
}
