package clustertls

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"
)

// handshake runs one TLS handshake between a server holding server's keys
// and a client holding client's, over loopback TCP, and reports whether
// both sides accepted.
func handshake(t *testing.T, server, client *Credentials) bool {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		s := tls.Server(c, server.Server())
		err = s.Handshake()
		if err == nil {
			// TLS 1.3 servers verify the client certificate after the
			// client considers the handshake done; a byte confirms both.
			_, err = s.Write([]byte{1})
		}
		srvErr <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(c, client.Client())
	cliErr := tc.Handshake()
	if cliErr == nil {
		_, cliErr = io.ReadFull(tc, make([]byte, 1))
	}
	c.Close()
	return <-srvErr == nil && cliErr == nil
}

func creds(t *testing.T, send string, accept ...string) *Credentials {
	t.Helper()
	c, err := New("node", send, accept...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestKeyring(t *testing.T) {
	for _, tc := range []struct {
		name           string
		server, client *Credentials
		ok             bool
	}{
		{"same key", creds(t, "k1"), creds(t, "k1"), true},
		{"other key", creds(t, "k1"), creds(t, "k2"), false},
		{"server accepts the client's key", creds(t, "k1", "k2"), creds(t, "k2", "k1"), true},
		{"client holds only the server's accepted key", creds(t, "k2", "k1"), creds(t, "k1"), false},
		{"rotation step 1 against step 0", creds(t, "old", "new"), creds(t, "old"), true},
		{"rotation step 2 against step 1", creds(t, "new", "old"), creds(t, "old", "new"), true},
		{"rotation step 3 against step 2", creds(t, "new"), creds(t, "new", "old"), true},
		{"retired key after rotation", creds(t, "new"), creds(t, "old"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := handshake(t, tc.server, tc.client); got != tc.ok {
				t.Fatalf("handshake ok = %v, want %v", got, tc.ok)
			}
			if got := handshake(t, tc.client, tc.server); got != tc.ok {
				t.Fatalf("reversed: handshake ok = %v, want %v", got, tc.ok)
			}
		})
	}
	if _, err := New("node", ""); err == nil {
		t.Fatal("an empty key was taken")
	}
	if _, err := New("node", "k", ""); err == nil {
		t.Fatal("an empty accepted key was taken")
	}
}

// Two nodes derive the same CA from one key without exchanging anything.
func TestAuthorityIsDeterministic(t *testing.T) {
	a, _, err := authority("k")
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := authority("k")
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := authority("k2")
	if err != nil {
		t.Fatal(err)
	}
	if !a.Equal(b) || a.Equal(c) || a.Subject.CommonName == c.Subject.CommonName {
		t.Fatal("CAs are not a function of the key")
	}
}

// Demux hands TLS connections to one side and the rest to the other,
// byte for byte.
func TestDemux(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plain, secure := Demux(ln)
	defer plain.Close()
	k := creds(t, "k")
	secureLn := Listener(secure, k.Server(), nil)

	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			io.WriteString(c, "GET / HTTP/1.1\r\n\r\n")
			defer c.Close()
		}
		tc, err := tls.Dial("tcp", ln.Addr().String(), k.Client())
		if err == nil {
			io.WriteString(tc, "over tls\n")
			io.ReadAll(tc)
		}
	}()
	pc, err := plain.Accept()
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(pc).ReadString('\n')
	if line != "GET / HTTP/1.1\r\n" {
		t.Fatalf("plain side read %q", line)
	}
	pc.Close()
	sc, err := secureLn.Accept()
	if err != nil {
		t.Fatal(err)
	}
	line, _ = bufio.NewReader(sc).ReadString('\n')
	if line != "over tls\n" {
		t.Fatalf("secure side read %q", line)
	}
	sc.Close()
	if err := secureLn.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Accept(); err == nil {
		t.Fatal("accept after close")
	}
}

// A resumed session still carries the client's verified chain, which the
// peer service checks on every request.
func TestResumedSessionKeepsTheVerifiedChain(t *testing.T) {
	k := creds(t, "k")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl := Listener(ln, k.Server(), nil)
	defer sl.Close()
	cli := k.Client()
	for i := range 2 {
		done := make(chan struct{})
		go func() {
			defer close(done)
			c, err := tls.Dial("tcp", ln.Addr().String(), cli)
			if err == nil {
				// The ticket comes after the handshake: read to get it.
				_ = c.SetReadDeadline(time.Now().Add(time.Second))
				io.ReadAll(c)
				c.Close()
			}
		}()
		c, err := sl.Accept()
		if err != nil {
			t.Fatal(err)
		}
		st := c.(*tls.Conn).ConnectionState()
		if len(st.VerifiedChains) == 0 {
			t.Fatalf("connection %d (resumed %v): no verified chain", i, st.DidResume)
		}
		if i == 1 && !st.DidResume {
			t.Errorf("the second connection did not resume")
		}
		c.Write([]byte{1})
		c.Close()
		// The client stores the ticket as it reads; the next dial must
		// come after that.
		<-done
	}
}
