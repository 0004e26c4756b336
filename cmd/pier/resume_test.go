package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pier-registry/pier/testing/clustertest"
	"github.com/pier-registry/pier/transport/apiclient"
)

// cutProxy forwards TCP to a node and drops the first connection that
// carries a PATCH once it has forwarded cutAfter bytes of it: the dropped
// connection of a push on a flaky network.
type cutProxy struct {
	ln       net.Listener
	target   string
	cutAfter int64
	cut      atomic.Bool
	wg       sync.WaitGroup

	mu     sync.Mutex
	conns  []net.Conn // closed at cleanup: idle keep-alives would hold it 90 s
	closed bool
}

func newCutProxy(t *testing.T, target string, cutAfter int64) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, cutAfter: cutAfter}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		p.closed = true
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		if p.closed {
			c.Close() // accepted as the cleanup ran
		}
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.relay(c)
		}()
	}
}

func (p *cutProxy) relay(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	go func() {
		io.Copy(client, server)
		client.Close()
	}()
	buf := make([]byte, 64<<10)
	var n int64
	patch := false
	for {
		k, err := client.Read(buf)
		if k > 0 {
			if !patch && bytes.Contains(buf[:k], []byte("PATCH /api/v1/uploads/")) && !p.cut.Load() {
				patch = true
			}
			if patch {
				n += int64(k)
				if n >= p.cutAfter && p.cut.CompareAndSwap(false, true) {
					return // both sides closed: the connection dropped
				}
			}
			if _, werr := server.Write(buf[:k]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// pier push of a file above the resumable threshold goes on by itself after
// its connection drops mid-body: it asks the node what it stored and sends
// the rest, and the artifact has the file's digest.
func TestPushResumesAfterDroppedConnection(t *testing.T) {
	size := int64(apiclient.DefaultResumableThreshold + 4<<20)
	c := clustertest.New(t, 1, clustertest.Options{})
	proxy := newCutProxy(t, strings.TrimPrefix(c.Nodes[0].URL, "http://"), size/2)

	data := make([]byte, size)
	rand.NewChaCha8([32]byte{3}).Read(data)
	file := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])

	cli := newTestCLI(map[string]string{"PIER_SERVER": proxy.ln.Addr().String()})
	if code := cli.run(context.Background(), []string{"push", file, "--version", "2.0.0"}); code != 0 {
		t.Fatalf("exit %d: %s", code, cli.errOut)
	}
	if !proxy.cut.Load() {
		t.Fatal("the proxy never cut the PATCH")
	}
	if !strings.Contains(cli.out.String(), "created big.bin "+digest) {
		t.Fatalf("stdout %q", cli.out)
	}
	resp, err := http.Get(c.Nodes[0].URL + "/artifacts/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		t.Fatal(err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		t.Fatalf("pulled %s, want %s", got, digest)
	}
}
