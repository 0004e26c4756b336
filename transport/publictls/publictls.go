// Package publictls holds the certificate the public API serves over
// HTTPS (--tls-cert, --tls-key). It is read again on demand (SIGHUP) and
// when either file changes, so certificates rotate without a restart; a
// pair that does not load leaves the one in use in place.
package publictls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// ErrNoCertificate marks a key pair that holds no usable certificate.
var ErrNoCertificate = errors.New("no certificate")

// Cert serves the current certificate of a PEM key pair.
type Cert struct {
	certFile, keyFile string
	log               hclog.Logger
	cur               atomic.Pointer[tls.Certificate]

	mu   sync.Mutex // serializes loads; guards seen
	seen [2]stamp   // what the files looked like at the last load
}

// stamp is what a poll compares: a rewrite changes the modification time
// or the size, and a rename over the file (how certbot and Kubernetes
// secrets rotate) changes both.
type stamp struct {
	mod  time.Time
	size int64
}

// Load reads the key pair once; it fails if the pair does not load.
func Load(certFile, keyFile string, log hclog.Logger) (*Cert, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	c := &Cert{certFile: certFile, keyFile: keyFile, log: log}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads the key pair again. On error the certificate in use stays.
func (c *Cert) Reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := [2]stamp{stampOf(c.certFile), stampOf(c.keyFile)}
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("load TLS key pair %s, %s: %w", c.certFile, c.keyFile, err)
	}
	if len(pair.Certificate) == 0 {
		return fmt.Errorf("load TLS key pair %s: %w", c.certFile, ErrNoCertificate)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return fmt.Errorf("parse certificate %s: %w", c.certFile, err)
	}
	pair.Leaf = leaf
	c.cur.Store(&pair)
	c.seen = seen
	c.log.Info("serving TLS certificate", "file", c.certFile, "subject", leaf.Subject.String(),
		"serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

// Current is the certificate in use.
func (c *Cert) Current() *tls.Certificate { return c.cur.Load() }

// Config is a server config that always hands out the current certificate.
func (c *Cert) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.cur.Load(), nil
		},
	}
}

// Changed reports whether either file differs from what the last load read.
func (c *Cert) Changed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return stampOf(c.certFile) != c.seen[0] || stampOf(c.keyFile) != c.seen[1]
}

// Watch reloads the pair whenever a poll every interval finds a file
// changed, until ctx ends. A pair caught half written fails to load and is
// tried again at the next change or poll, the old certificate serving
// meanwhile.
func (c *Cert) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	failed := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !c.Changed() && !failed {
			continue
		}
		err := c.Reload()
		if err != nil && !failed {
			c.log.Warn("TLS key pair changed but does not load; the old certificate stays", "error", err)
		}
		failed = err != nil
	}
}

func stampOf(path string) stamp {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}
	}
	return stamp{mod: fi.ModTime(), size: fi.Size()}
}
