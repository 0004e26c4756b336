package peer

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// writeLog is a net.Conn that records the writes it gets.
type writeLog struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (w *writeLog) Write(b []byte) (int, error) {
	w.mu.Lock()
	w.writes = append(w.writes, bytes.Clone(b))
	w.mu.Unlock()
	return len(b), nil
}

func TestACoalescerSendsAWriteInFewSyscalls(t *testing.T) {
	under := &writeLog{}
	c := &coalescer{Conn: under}
	var want bytes.Buffer
	c.begin()
	for i := 0; i < 20; i++ { // 20 TLS records of 16 KiB
		rec := bytes.Repeat([]byte{byte(i)}, 16<<10)
		want.Write(rec)
		if n, err := c.Write(rec); n != len(rec) || err != nil {
			t.Fatalf("record %d: %d, %v", i, n, err)
		}
	}
	if err := c.end(); err != nil {
		t.Fatal(err)
	}
	if got := bytes.Join(under.writes, nil); !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("sent %d bytes, not the %d written in order", len(got), want.Len())
	}
	if len(under.writes) != 2 {
		t.Fatalf("%d writes reached the connection, want 2 (256 KiB, then the rest at the end)", len(under.writes))
	}

	// Outside a Write of the TLS connection (a handshake, an alert) each
	// write goes straight through.
	under.writes = nil
	c.Write([]byte("alert"))
	c.Write([]byte("another"))
	if len(under.writes) != 2 || string(under.writes[1]) != "another" {
		t.Fatalf("writes outside a span: %q", under.writes)
	}
}

// TestPeerConnectionsCarryBigBodiesIntact sends bodies of several sizes
// through the client's coalescing connections to a real peer server.
func TestPeerConnectionsCarryBigBodiesIntact(t *testing.T) {
	node := &bodyNode{}
	addr, c := serve(t, node, "key")
	for _, size := range []int{0, 1, 16 << 10, 300<<10 + 7, 5 << 20} {
		body := make([]byte, size)
		rand.Read(body)
		if err := c.PutShard(t.Context(), addr, id1, 0, false, bytes.NewReader(body)); err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		if got := node.last(); !bytes.Equal(got, body) {
			t.Fatalf("%d bytes sent, %d different bytes received", size, len(got))
		}
	}
	// A small call after the big ones, on the same pooled connection.
	if err := c.PutShard(t.Context(), addr, id1, 1, false, strings.NewReader("tail")); err != nil || string(node.last()) != "tail" {
		t.Fatalf("small body after big ones: %q, %v", node.last(), err)
	}
}

type bodyNode struct {
	shardNode
	mu  sync.Mutex
	got []byte
}

func (b *bodyNode) ReceiveShard(_ context.Context, id string, index int, parity bool, r io.Reader) (int64, error) {
	data, err := io.ReadAll(r)
	b.mu.Lock()
	b.got = data
	b.mu.Unlock()
	return int64(len(data)), err
}

func (b *bodyNode) last() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.got
}
