package netsplit

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// listen accepts connections on 127.0.0.1 and hands them to the test;
// tests own the address through Register.
func listen(t *testing.T) (string, <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 16)
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
		for c := range accepted {
			c.Close()
		}
	})
	go func() {
		defer close(done)
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	return ln.Addr().String(), accepted
}

// echoServer writes back what it reads on every connection.
func echoServer(t *testing.T) string {
	t.Helper()
	addr, accepted := listen(t)
	go func() {
		for c := range accepted {
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return addr
}

func dial(t *testing.T, h *Host, addr string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c, err := h.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("%s dials %s: %v", h.Name(), addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads it back within a deadline.
func roundTrip(c net.Conn, msg string) error {
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if string(got) != msg {
		return errors.New("echo returned " + string(got))
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestCutRefusesDialsAndClosesConnections(t *testing.T) {
	nw := New()
	b, c := echoServer(t), echoServer(t)
	nw.Register("b", b)
	nw.Register("c", c)
	a := nw.Host("a")
	toB, toC := dial(t, a, b), dial(t, a, c)
	if err := roundTrip(toB, "before"); err != nil {
		t.Fatalf("open link: %v", err)
	}

	nw.Set("a", "b", Cut)
	if _, err := toB.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on a connection across a new cut: %v, want it closed", err)
	}
	_, err := a.DialContext(t.Context(), "tcp", b)
	if !errors.Is(err, ErrRefused) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial across a cut: %v, want refused", err)
	}
	// The cut is one link, both ways; others stay up.
	if err := roundTrip(dial(t, nw.Host("c"), b), "c to b"); err != nil {
		t.Fatalf("link c-b during the a-b cut: %v", err)
	}
	if got := nw.Fault("b", "a"); got != Cut {
		t.Fatalf("link b-a is %s, want cut", got)
	}
	if err := roundTrip(toC, "unaffected"); err != nil {
		t.Fatalf("link a-c during the a-b cut: %v", err)
	}
	if s := nw.Stats(); s.Refused != 1 || s.Closed != 1 {
		t.Fatalf("stats %+v, want 1 refused and 1 closed", s)
	}

	nw.Heal()
	if err := roundTrip(dial(t, a, b), "after"); err != nil {
		t.Fatalf("healed link: %v", err)
	}
}

func TestBlackholeStallsUntilHealed(t *testing.T) {
	nw := New()
	b, accepted := listen(t)
	nw.Register("b", b)
	a := nw.Host("a")
	conn := dial(t, a, b)
	server := <-accepted

	// The accepting end is not wrapped and still writes; what it sends
	// after the link went dark must not reach the reader.
	conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	read := make(chan error, 1)
	go func() {
		n, err := conn.Read(make([]byte, 64))
		if n > 0 {
			err = errors.New("read data across a blackhole")
		}
		read <- err
	}()
	nw.Partition(Blackhole, []string{"a"}, []string{"b"})
	if _, err := server.Write([]byte("sent into the dark")); err != nil {
		t.Fatal(err)
	}
	if err := <-read; !isTimeout(err) {
		t.Fatalf("read across a blackhole: %v, want a timeout", err)
	}
	conn.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := conn.Write([]byte("lost?")); !isTimeout(err) {
		t.Fatalf("write across a blackhole: %v, want a timeout", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := a.DialContext(ctx, "tcp", b); !isTimeout(err) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("dial across a blackhole: %v, want a timeout", err)
	}
	if s := nw.Stats(); s.TimedOut != 1 || s.Closed != 0 {
		t.Fatalf("stats %+v: want 1 dial timed out and no connection closed", s)
	}

	// A dial waiting on the blackhole goes on once it heals, and the
	// stalled connection delivers what was held back.
	dialed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := a.DialContext(ctx, "tcp", b)
		if err == nil {
			c.Close()
		}
		dialed <- err
	}()
	nw.Heal()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len("sent into the dark"))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != "sent into the dark" {
		t.Fatalf("held bytes after healing: %q, %v", got, err)
	}
	if _, err := conn.Write([]byte("back")); err != nil {
		t.Fatalf("write after healing: %v", err)
	}
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(server, got[:4]); err != nil || string(got[:4]) != "back" {
		t.Fatalf("server read after healing: %q, %v", got[:4], err)
	}
	if err := <-dialed; err != nil {
		t.Fatalf("dial begun during the blackhole: %v", err)
	}
}

func TestBlackholeThenCutClosesStalledConnections(t *testing.T) {
	nw := New()
	b := echoServer(t)
	nw.Register("b", b)
	conn := dial(t, nw.Host("a"), b)
	nw.Set("a", "b", Blackhole)
	// Bounded, so that a cut that closes nothing fails the test.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	read := make(chan error, 1)
	go func() {
		_, err := conn.Read(make([]byte, 1))
		read <- err
	}()
	nw.Set("a", "b", Cut)
	if err := <-read; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("stalled read after the link was cut: %v, want closed", err)
	}
}

func gossip(t *testing.T, nw *Network, name string) (*Gossip, string) {
	t.Helper()
	// Port 0 gives TCP a port; memberlist then binds UDP to the same one.
	g, err := nw.Host(name).Gossip("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Shutdown() })
	ip, port, err := g.FinalAdvertiseAddr("127.0.0.1", g.inner.GetAutoBindPort())
	if err != nil {
		t.Fatal(err)
	}
	addr := (&net.UDPAddr{IP: ip, Port: port}).String()
	nw.Register(name, addr)
	return g, addr
}

// next returns the next packet g delivers.
func next(t *testing.T, g *Gossip) string {
	t.Helper()
	select {
	case p := <-g.PacketCh():
		return string(p.Buf)
	case <-time.After(5 * time.Second):
		t.Fatal("no packet within 5s")
		return ""
	}
}

func TestGossipPacketsAndStreamsObeyFaults(t *testing.T) {
	nw := New()
	a, _ := gossip(t, nw, "a")
	b, bAddr := gossip(t, nw, "b")

	if _, err := a.WriteTo([]byte("one"), bAddr); err != nil {
		t.Fatal(err)
	}
	if got := next(t, b); got != "one" {
		t.Fatalf("got %q", got)
	}

	nw.Set("a", "b", Cut)
	if _, err := a.WriteTo([]byte("dropped"), bAddr); err != nil {
		t.Fatalf("a packet over a cut link fails silently, as UDP does: %v", err)
	}
	if _, err := a.DialTimeout(bAddr, time.Second); !errors.Is(err, ErrRefused) {
		t.Fatalf("gossip stream over a cut link: %v, want refused", err)
	}
	// A sender outside the network is dropped on receipt.
	raw, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	nw.Register("a", raw.LocalAddr().String())
	udpB, _ := net.ResolveUDPAddr("udp", bAddr)
	if _, err := raw.WriteTo([]byte("dropped on receipt"), udpB); err != nil {
		t.Fatal(err)
	}
	// The drop on receipt is counted once the packet got there.
	deadline := time.Now().Add(5 * time.Second)
	for nw.Stats().Dropped < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if s := nw.Stats(); s.Dropped != 2 {
		t.Fatalf("stats %+v, want 2 packets dropped", s)
	}

	nw.Heal()
	if _, err := a.WriteTo([]byte("two"), bAddr); err != nil {
		t.Fatal(err)
	}
	// The first packet b delivers after healing is the one sent after it:
	// nothing sent across the cut arrived.
	if got := next(t, b); got != "two" {
		t.Fatalf("first packet after healing: %q, want \"two\"", got)
	}
	c, err := a.DialTimeout(bAddr, time.Second)
	if err != nil {
		t.Fatalf("gossip stream after healing: %v", err)
	}
	c.Close()
	// Taken off b's queue, or its listener would block its shutdown.
	(<-b.StreamCh()).Close()
}
