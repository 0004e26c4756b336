package publictls

import (
	"context"
	"crypto/tls"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pier-registry/pier/testing/testcerts"
)

// served handshakes with cfg as a client trusting ca would, and returns
// the serial of the certificate the server presented.
func served(t *testing.T, cfg *tls.Config, ca *testcerts.CA) *big.Int {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srv := tls.Server(a, cfg)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = srv.Handshake()
	}()
	cl := tls.Client(b, &tls.Config{RootCAs: ca.Pool, ServerName: "localhost"})
	err := cl.Handshake()
	b.Close()
	wg.Wait()
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return cl.ConnectionState().PeerCertificates[0].SerialNumber
}

func TestReloadKeepsTheOldPairWhenTheNewOneIsBroken(t *testing.T) {
	ca := testcerts.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := ca.Issue(t, certFile, keyFile)
	c, err := Load(certFile, keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.Config()
	if got := served(t, cfg, ca); got.Cmp(first) != 0 {
		t.Fatalf("served serial %v, want %v", got, first)
	}

	second := ca.Issue(t, certFile, keyFile)
	if !c.Changed() {
		t.Fatal("a rewritten pair is not seen as changed")
	}
	if err := c.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := served(t, cfg, ca); got.Cmp(second) != 0 {
		t.Fatalf("after reload served serial %v, want %v", got, second)
	}

	if err := os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(); err == nil {
		t.Fatal("a broken certificate loaded")
	}
	if got := served(t, cfg, ca); got.Cmp(second) != 0 {
		t.Fatalf("after a failed reload served serial %v, want the old %v", got, second)
	}
}

func TestLoadRefusesAMissingOrMismatchedPair(t *testing.T) {
	ca := testcerts.NewCA(t)
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "none.crt"), filepath.Join(dir, "none.key"), nil); err == nil {
		t.Fatal("a missing pair loaded")
	}
	ca.Issue(t, filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key"))
	ca.Issue(t, filepath.Join(dir, "b.crt"), filepath.Join(dir, "b.key"))
	if _, err := Load(filepath.Join(dir, "a.crt"), filepath.Join(dir, "b.key"), nil); err == nil {
		t.Fatal("a certificate with another certificate's key loaded")
	}
}

func TestWatchPicksUpARotatedPair(t *testing.T) {
	ca := testcerts.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca.Issue(t, certFile, keyFile)
	c, err := Load(certFile, keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Watch(ctx, 10*time.Millisecond)
	}()
	defer func() { cancel(); <-done }()

	want := ca.Issue(t, certFile, keyFile)
	deadline := time.Now().Add(10 * time.Second)
	for c.Current().Leaf.SerialNumber.Cmp(want) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("still serving serial %v, want %v", c.Current().Leaf.SerialNumber, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
